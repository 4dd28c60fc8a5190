import { api, ApiError, published, userNamed } from '../api.js'
import { clearErrors, confirmAction, doneButton, field, formatDate, h, replace, showErrors, time, whileBusy } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'

const DAY = 86400
const EXPIRY_CHOICES = /** @type {[string, string][]} */ ([
  ['', 'The longest allowed'],
  [String(DAY), '1 day'],
  [String(7 * DAY), '7 days'],
  [String(30 * DAY), '30 days'],
  [String(90 * DAY), '90 days'],
  [String(365 * DAY), '1 year'],
  ['date', 'On a date…'],
])

/**
 * My tokens: create one (its value is shown once, with a copy button), see mine with their scope, last use and
 * expiry, and revoke them.
 * @param {import('../app.js').PageContext} context
 */
export async function myTokensPage(context) {
  const tokens = tokensTable({ path: 'tokens/', query: { user: context.me.id }, showOwner: false, empty: 'You have no tokens.', pageParam: 'page' })
  await tokens.reload()
  const created = h('div', { class: 'created-slot' })
  const form = createTokenForm(async (token) => {
    showNewToken(created, token, form)
    await tokens.reload(false)
  })
  return h('div', { class: 'stack' },
    h('section', { class: 'panel', 'aria-labelledby': 'create-token-heading' },
      h('h2', { id: 'create-token-heading' }, 'Create a token'),
      h('p', { class: 'muted' }, 'A token lets a program call the API as you: send it as ', h('code', null, 'Authorization: Bearer <token>'), '.'),
      context.me.external ? h('p', { class: 'muted' }, 'Your account comes from an external directory: you can create tokens only while an administrator allows external users to.') : null,
      form,
      created),
    h('section', { 'aria-labelledby': 'my-tokens-heading' },
      h('h2', { id: 'my-tokens-heading' }, 'My tokens'),
      tokens.element))
}

/**
 * All tokens (superusers): filter by user, revoke one, all of a user, or every token.
 * @param {import('../app.js').PageContext} context
 */
export async function allTokensPage(context) {
  const userId = context.query.get('user') || ''
  // The address's filter holds even when it names no user (one deleted since): the list is then empty, never everyone's.
  /** @type {any} */
  let owner = null
  if (userId) {
    owner = await api(`users/${encodeURIComponent(userId)}/`).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null
      throw error
    })
  }
  const empty = owner ? `${owner.username} has no tokens.` : userId ? `There is no user #${userId}.` : 'There are no tokens.'
  const tokens = tokensTable({ path: 'tokens/', query: { user: userId }, showOwner: true, empty, pageParam: 'page' })
  await tokens.reload()

  const filter = /** @type {HTMLFormElement} */ (h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Filter by user' },
    field({ label: 'User', name: 'username', value: owner?.username ?? '', placeholder: 'username' }),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Filter'),
      userId ? h('a', { class: 'button secondary', href: published('/ui/admin/tokens') }, 'Show all') : null)))
  filter.addEventListener('submit', async (event) => {
    event.preventDefault()
    const username = String(new FormData(filter).get('username') || '').trim()
    if (!username) return context.navigate('/ui/admin/tokens')
    try {
      const found = await userNamed(username)
      if (!found) return showErrors(filter, new ApiError(400, { errors: { username: ['No user with this username.'] } }))
      context.navigate(`/ui/admin/tokens?user=${found.id}`)
    } catch (error) {
      showErrors(filter, error)
    }
  })

  const revokeOwners = owner
    ? h('button', {
        type: 'button',
        class: 'danger',
        onclick: (/** @type {Event} */ e) => revokeMany(/** @type {HTMLButtonElement} */ (e.currentTarget), { user: owner.id }, `Revoke every token of ${owner.username}? Programs using them stop working at once.`, tokens),
      }, `Revoke all tokens of ${owner.username}`)
    : null
  const revokeEverything = h('button', {
    type: 'button',
    class: 'danger',
    onclick: (/** @type {Event} */ e) => revokeMany(/** @type {HTMLButtonElement} */ (e.currentTarget), { all: true }, 'Revoke every token of every user? Every program using a token stops working at once.', tokens),
  }, 'Revoke all tokens')

  return h('div', { class: 'stack' },
    filter,
    tokens.element,
    h('section', { class: 'panel danger-zone', 'aria-labelledby': 'revoke-heading' },
      h('h2', { id: 'revoke-heading' }, 'Revoke in bulk'),
      h('div', { class: 'actions' }, revokeOwners, revokeEverything)))
}

/**
 * @param {HTMLButtonElement} button
 * @param {{user: number} | {all: true}} body
 * @param {string} question
 * @param {{reload: (keepPage?: boolean) => Promise<void>, element: HTMLElement}} table
 */
async function revokeMany(button, body, question, table) {
  if (!(await confirmAction(question, 'Revoke'))) return
  await changeThenReload(button, async () => revokedMessage(await api('tokens/revoke/', { method: 'POST', body })), table, false)
}

/**
 * "3 tokens revoked." from the answer of tokens/revoke/.
 * @param {{revoked: number}} result
 */
export function revokedMessage(result) {
  return `${result.revoked} token${result.revoked === 1 ? '' : 's'} revoked.`
}

/**
 * The token list used by every page that shows tokens: the list at `path` of the API, newest first, so that a token
 * just made heads the first page however many there are (the API's own order, the platform's, is oldest first).
 * @param {{path: string, query?: Record<string, string | number>, showOwner: boolean, empty: string, pageParam: string}} spec
 */
export function tokensTable(spec) {
  /** @type {import('../table.js').Column[]} */
  const columns = [
    ...(spec.showOwner ? [{ label: 'User', cell: (/** @type {any} */ t) => h('a', { href: published(`/ui/admin/users/${t.user}`) }, t.summary_fields?.user?.username ?? `#${t.user}`) }] : []),
    { label: 'Description', cell: (t) => t.description || h('span', { class: 'muted' }, 'No description') },
    { label: 'Scope', cell: (t) => h('span', { class: `badge ${t.scope}` }, t.scope === 'read' ? 'Read' : 'Write') },
    { label: 'Created', cell: (t) => time(t.created) },
    { label: 'Last used', cell: (t) => time(t.last_used, 'Never') },
    { label: 'Expires', cell: (t) => Date.parse(t.expires) <= Date.now() ? h('span', { class: 'badge off' }, 'Expired') : time(t.expires) },
    {
      label: 'Actions',
      class: 'actions-cell',
      cell: (t) => h('button', {
        type: 'button',
        class: 'danger small',
        'aria-label': `Revoke token ${t.description || t.id}`,
        onclick: (/** @type {Event} */ e) => revokeOne(/** @type {HTMLButtonElement} */ (e.currentTarget), t),
      }, 'Revoke'),
    },
  ]
  const load = (/** @type {number} */ page) => api(spec.path, { query: { ...spec.query, page, order_by: '-created,-id' } })
  const table = pagedTable({ caption: 'Tokens', columns, load, empty: spec.empty, pageParam: spec.pageParam })

  /**
   * @param {HTMLButtonElement} button
   * @param {any} token
   */
  async function revokeOne(button, token) {
    const name = token.description ? `"${token.description}"` : 'this token'
    if (!(await confirmAction(`Revoke ${name}? Programs using it stop working at once.`, 'Revoke'))) return
    await changeThenReload(button, async () => {
      await api(`tokens/${token.id}/`, { method: 'DELETE' })
      return 'Token revoked.'
    }, table)
  }

  return table
}

/**
 * @param {(token: any) => Promise<void>} onCreated
 */
function createTokenForm(onCreated) {
  const dateField = field({ label: 'Expiry date', name: 'expires', type: 'date', help: 'The token stops working at the end of this day.' })
  dateField.hidden = true
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid' },
    field({ label: 'Description', name: 'description', placeholder: 'e.g. backup script on host-7', help: 'What the token is for, so you know which one to revoke.' }),
    field({ label: 'Scope', name: 'scope', type: 'select', value: 'write', options: [['write', 'Write: read and change'], ['read', 'Read: GET requests only']] }),
    field({ label: 'Expires', name: 'expires_in', type: 'select', value: '', options: EXPIRY_CHOICES }),
    dateField,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create token'))))
  const expirySelect = /** @type {HTMLSelectElement} */ (form.elements.namedItem('expires_in'))
  expirySelect.addEventListener('change', () => {
    dateField.hidden = expirySelect.value !== 'date'
  })
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const data = new FormData(form)
    /** @type {Record<string, unknown>} */
    const body = { description: String(data.get('description') || '').trim(), scope: data.get('scope') }
    const expiry = String(data.get('expires_in') || '')
    if (expiry === 'date') {
      const day = String(data.get('expires') || '')
      if (!day) return showErrors(form, new ApiError(400, { errors: { expires: ['Choose a date.'] } }))
      const [year, month, date] = day.split('-').map(Number)
      body.expires = new Date(year, month - 1, date, 23, 59, 59).toISOString()
    } else if (expiry) {
      body.expires_in = Number(expiry)
    }
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      const token = await whileBusy(button, () => api('tokens/', { method: 'POST', body }))
      form.reset()
      dateField.hidden = true
      await onCreated(token)
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}

/**
 * The new token's value, shown this once with a copy button; it lives only in this page's memory.
 * @param {HTMLElement} slot
 * @param {any} token
 * @param {HTMLFormElement} form the form that made it
 */
function showNewToken(slot, token, form) {
  const value = /** @type {HTMLInputElement} */ (h('input', { id: 'new-token-value', type: 'text', readonly: true, value: token.token, 'aria-label': 'New token value', spellcheck: 'false' }))
  const copied = h('span', { class: 'copy-status', role: 'status' })
  const copy = h('button', {
    type: 'button',
    onclick: async () => {
      value.select()
      try {
        await navigator.clipboard.writeText(value.value)
        replace(copied, 'Copied.')
      } catch {
        replace(copied, document.execCommand('copy') ? 'Copied.' : 'Select the text and copy it yourself.')
      }
    },
  }, 'Copy')
  replace(slot, h('div', { class: 'new-token', role: 'region', 'aria-labelledby': 'new-token-heading' },
    h('h3', { id: 'new-token-heading' }, 'Your new token'),
    h('p', null, h('strong', null, 'Copy it now: it will not be shown again.'), ` Scope: ${token.scope}; expires ${formatDate(token.expires)}.`),
    h('div', { class: 'copy-row' }, value, copy),
    copied,
    h('div', { class: 'actions' }, doneButton(slot, form))))
  value.focus()
  value.select()
}
