import { api, published } from '../api.js'
import { clearErrors, confirmAction, field, h, messageOf, showErrors, time, toast, whileBusy } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'
import { fact, sourceName } from './account.js'
import { accessSummary } from './access.js'
import { sessionsTable } from './sessions.js'
import { revokedMessage, tokensTable } from './tokens.js'

/**
 * Users (superusers): find by username or source, open one to edit it.
 * @param {import('../app.js').PageContext} context
 */
export async function usersPage(context) {
  const username = context.query.get('username') || ''
  const source = context.query.get('source') || ''
  const table = pagedTable({
    caption: 'Users',
    empty: username || source ? 'No user matches.' : 'There are no users.',
    load: (page) => api('users/', { query: { page, username, source } }),
    columns: [
      { label: 'Username', cell: (u) => h('a', { href: published(`/ui/admin/users/${u.id}`) }, u.username) },
      { label: 'Name', cell: (u) => [u.first_name, u.last_name].filter(Boolean).join(' ') || '—' },
      { label: 'Email', cell: (u) => u.email || '—' },
      { label: 'Source', cell: (u) => sourceName(u.source) },
      { label: 'Role', cell: (u) => (u.is_superuser ? h('span', { class: 'badge write' }, 'Superuser') : 'User') },
      { label: 'Status', cell: (u) => (u.is_active ? h('span', { class: 'badge on' }, 'Active') : h('span', { class: 'badge off' }, 'Disabled')) },
      { label: 'Last login', cell: (u) => time(u.last_login, 'Never') },
    ],
  })
  await table.reload()

  const filter = /** @type {HTMLFormElement} */ (h('form', { class: 'inline-form', 'aria-label': 'Find users' },
    field({ label: 'Username', name: 'username', value: username, placeholder: 'exact username' }),
    field({ label: 'Source', name: 'source', type: 'select', value: source, options: [['', 'Any'], ['local', 'Local'], ['ldap', 'LDAP'], ['sso', 'Single sign-on']] }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Find'))))
  filter.addEventListener('submit', (event) => {
    event.preventDefault()
    const query = new URLSearchParams()
    for (const [key, value] of new FormData(filter)) if (String(value).trim()) query.set(key, String(value).trim())
    context.navigate(`/ui/admin/users${query.size ? `?${query}` : ''}`)
  })

  return h('div', { class: 'stack' },
    h('div', { class: 'toolbar' }, filter, h('a', { class: 'button', href: published('/ui/admin/users/new') }, 'New user')),
    table.element)
}

/**
 * One user (superusers): edit, disable, make superuser, set the password, delete; the user's tokens and sessions.
 * `new` creates one.
 * @param {import('../app.js').PageContext} context
 */
export async function userPage(context) {
  const id = context.params[0]
  if (id === 'new') {
    context.setTitle('New user')
    return userForm(context, null)
  }
  const user = await api(`users/${id}/`)
  context.setTitle(`User ${user.username}`)
  const isMe = user.id === context.me.id
  const tokens = tokensTable({ load: (page) => api(`users/${user.id}/tokens/`, { query: { page } }), showOwner: false, empty: 'No tokens.' })
  const sessions = sessionsTable({ load: (page) => api(`users/${user.id}/sessions/`, { query: { page } }), endUrl: (s) => `sessions/${s.id}/`, showUser: false, empty: 'No sessions.' })
  await Promise.all([tokens.reload(), sessions.reload()])

  return h('div', { class: 'stack' },
    h('dl', { class: 'facts' },
      fact('Source', sourceName(user.source)),
      fact('Created', time(user.created)),
      fact('Last login', time(user.last_login, 'Never'))),
    userForm(context, user),
    await accessSummary(user.id, 'Teams, organizations and services'),
    user.source === 'local' ? passwordForm(user) : h('p', { class: 'muted' }, `The password of this account is managed by its ${sourceName(user.source).toLowerCase()}.`),
    h('section', { 'aria-labelledby': 'user-tokens-heading' }, h('h2', { id: 'user-tokens-heading' }, 'Tokens'), tokens.element,
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        class: 'danger',
        onclick: async (/** @type {Event} */ e) => {
          const button = /** @type {HTMLButtonElement} */ (e.currentTarget)
          if (!(await confirmAction(`Revoke every token of ${user.username}?`, 'Revoke'))) return
          await changeThenReload(button, async () => revokedMessage(await api('tokens/revoke/', { method: 'POST', body: { user: user.id } })), tokens, false)
        },
      }, 'Revoke all tokens of this user'))),
    h('section', { 'aria-labelledby': 'user-sessions-heading' }, h('h2', { id: 'user-sessions-heading' }, 'Sessions'), sessions.element,
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        class: 'danger',
        onclick: async (/** @type {Event} */ e) => {
          const button = /** @type {HTMLButtonElement} */ (e.currentTarget)
          const question = isMe ? 'End all your sessions, this one too? You will have to log in again.' : `End every session of ${user.username}?`
          if (!(await confirmAction(question, 'End sessions'))) return
          await changeThenReload(button, async () => {
            await api(`users/${user.id}/sessions/`, { method: 'DELETE' })
            return 'Sessions ended.'
          }, sessions, false)
        },
      }, 'End all sessions of this user'))),
    isMe ? null : h('section', { class: 'panel danger-zone', 'aria-labelledby': 'delete-heading' },
      h('h2', { id: 'delete-heading' }, 'Delete user'),
      h('p', null, 'Deleting the account ends its sessions and revokes its tokens. To keep its history, disable it instead.'),
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        class: 'danger',
        onclick: async (/** @type {Event} */ e) => {
          const button = /** @type {HTMLButtonElement} */ (e.currentTarget)
          if (!(await confirmAction(`Delete the user ${user.username}? This cannot be undone.`, 'Delete'))) return
          try {
            await whileBusy(button, () => api(`users/${user.id}/`, { method: 'DELETE' }))
            toast(`User ${user.username} deleted.`)
            context.navigate('/ui/admin/users')
          } catch (error) {
            toast(messageOf(error), 'error')
          }
        },
      }, 'Delete user'))))
}

/**
 * @param {import('../app.js').PageContext} context
 * @param {any} user the user to edit, or null to create one
 */
function userForm(context, user) {
  const creating = user === null
  const external = !creating && user.source !== 'local'
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-label': creating ? 'New user' : 'Account' },
    field({ label: 'Username', name: 'username', value: user?.username, required: true, autocomplete: 'off' }),
    creating ? field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'new-password', help: 'Leave empty for an account that cannot log in with a password.' }) : null,
    field({ label: 'First name', name: 'first_name', value: user?.first_name, autocomplete: 'off' }),
    field({ label: 'Last name', name: 'last_name', value: user?.last_name, autocomplete: 'off' }),
    field({ label: 'Email', name: 'email', type: 'email', value: user?.email, autocomplete: 'off' }),
    field({ label: 'Active (may log in and use tokens)', name: 'is_active', type: 'checkbox', value: creating ? true : user.is_active, help: external ? undefined : 'Turn off to disable the account: its sessions end and its credentials stop working.' }),
    field({ label: 'Superuser (may administer the gateway)', name: 'is_superuser', type: 'checkbox', value: user?.is_superuser }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, creating ? 'Create user' : 'Save'))))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const data = new FormData(form)
    /** @type {Record<string, unknown>} */
    const body = {
      username: String(data.get('username') || '').trim(),
      first_name: String(data.get('first_name') || ''),
      last_name: String(data.get('last_name') || ''),
      email: String(data.get('email') || '').trim(),
      is_active: data.has('is_active'),
      is_superuser: data.has('is_superuser'),
    }
    if (creating && data.get('password')) body.password = String(data.get('password'))
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      const saved = await whileBusy(button, () => api(creating ? 'users/' : `users/${user.id}/`, { method: creating ? 'POST' : 'PATCH', body }))
      toast(creating ? `User ${saved.username} created.` : 'Saved.')
      if (creating) context.navigate(`/ui/admin/users/${saved.id}`)
      else context.setTitle(`User ${saved.username}`)
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}

/** @param {any} user */
function passwordForm(user) {
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-labelledby': 'password-heading' },
    h('h2', { id: 'password-heading' }, 'Set password'),
    // Names the account the new password is for: without it, a password manager offers to save it as the signed-in
    // administrator's own.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', 'aria-label': 'Username', value: user.username, readonly: true, hidden: true }),
    field({ label: 'New password', name: 'password', type: 'password', autocomplete: 'new-password', help: 'The user\'s sessions end and basic credentials with the old password stop working.' }),
    field({ label: 'Also revoke the user\'s personal tokens', name: 'revoke_tokens', type: 'checkbox', value: false }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Set password'))))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const data = new FormData(form)
    const password = String(data.get('password') || '')
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      await whileBusy(button, () => api(`users/${user.id}/`, { method: 'PATCH', body: { password, revoke_tokens: data.get('revoke_tokens') !== null } }))
      form.reset()
      toast('Password set.')
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}
