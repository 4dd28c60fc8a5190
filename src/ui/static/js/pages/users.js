import { api, ApiError, published } from '../api.js'
import { clearErrors, confirmAction, field, h, messageOf, showErrors, time, toast, whileBusy } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'
import { fact, sourceName } from './account.js'
import { accessSummary, mayCreate, organizationChoice, usersHome } from './access.js'
import { mayChangeUser } from '../permissions.js'
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
    pageParam: 'page',
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
 * One user: edit, disable, make superuser, set the password, delete; the user's tokens and sessions. `new` creates
 * one. An organization admin gets the form and the user's access alone: the API lets them change their members'
 * records and create users, nothing more of what this page shows a superuser.
 * @param {import('../app.js').PageContext} context
 */
export async function userPage(context) {
  const id = context.params[0]
  if (id === 'new') {
    context.setTitle('New user')
    if (!context.me.is_superuser && !(await mayCreate('users/'))) {
      return h('p', { class: 'notice' }, 'Superusers and organization admins create users. Your account is neither.')
    }
    return userForm(context, null)
  }
  const user = await api(`users/${id}/`)
  context.setTitle(`User ${user.username}`)
  const facts = h('dl', { class: 'facts' },
    fact('Source', sourceName(user.source)),
    fact('Created', time(user.created)),
    fact('Last login', time(user.last_login, 'Never')))
  if (!context.me.is_superuser) {
    const access = await api(`users/${user.id}/access/`)
    // A record the API would refuse to change is shown, not offered as a form.
    const record = await mayChangeUser(context.me, user, access) ? userForm(context, user) : readOnlyRecord(user)
    return h('div', { class: 'stack' }, facts, record, await accessSummary(user.id, 'Teams, organizations and services', access))
  }
  const isMe = user.id === context.me.id
  const tokens = tokensTable({ path: `users/${user.id}/tokens/`, showOwner: false, empty: 'No tokens.', pageParam: 'tokens_page' })
  const sessions = sessionsTable({ load: (page) => api(`users/${user.id}/sessions/`, { query: { page } }), endUrl: (s) => `sessions/${s.id}/`, showUser: false, empty: 'No sessions.', pageParam: 'sessions_page' })
  // A new password ends the user's sessions (and their tokens, if asked), and so does disabling the account.
  const showEnded = async () => {
    await Promise.all([tokens.reload(), sessions.reload()])
  }
  await showEnded()

  return h('div', { class: 'stack' },
    facts,
    userForm(context, user, showEnded),
    await accessSummary(user.id, 'Teams, organizations and services'),
    user.source === 'local' ? passwordForm(user, showEnded) : h('p', { class: 'muted' }, `The password of this account is managed by its ${sourceName(user.source).toLowerCase()}.`),
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
 * A record the signed-in user may see but not change.
 * @param {any} user
 */
function readOnlyRecord(user) {
  return h('section', { class: 'panel', 'aria-label': 'Account' },
    h('dl', { class: 'facts' },
      fact('Username', user.username),
      fact('Name', [user.first_name, user.last_name].filter(Boolean).join(' ') || '—'),
      fact('Email', user.email || '—'),
      fact('Status', user.is_active ? 'Active' : 'Disabled')),
    h('p', { class: 'muted', dataset: { note: 'not-yours' } }, 'You may see this account but not change it: an organization admin changes a user whose roles are all in the organizations they administer, and never a superuser. A superuser changes any account.'))
}

/** Who sets a directory or single sign-on account's names and e-mail address again at every sign-in. */
const SOURCE_OWNERS = { ldap: 'the LDAP directory', sso: 'the single sign-on provider' }

/**
 * The account's fields, as the users API lets the signed-in user change them (docs/access.md): a directory or single
 * sign-on account's names and e-mail address are its source's, shown read-only and never sent; such an account, once
 * disabled, is enabled again by a superuser alone; only a superuser renames an account or makes a superuser. A
 * refusal is the form's error, and the form is drawn again from what the API saved.
 * @param {import('../app.js').PageContext} context
 * @param {any} user the user to edit, or null to create one
 * @param {() => Promise<void>} [onSaved] shows again what a change may have ended
 * @returns {HTMLFormElement}
 */
function userForm(context, user, onSaved) {
  const creating = user === null
  const superuser = context.me.is_superuser
  const owner = creating ? undefined : /** @type {Record<string, string>} */ (SOURCE_OWNERS)[user.source]
  const ownedNote = owner ? h('p', { class: 'help', id: `source-owned-${user.id}`, dataset: { note: 'source-owned' } }, `The names and email of this account come from ${owner}, which sets them again at every sign-in: change them there.`) : null
  const owned = (/** @type {HTMLElement} */ wrapper) => {
    if (!ownedNote) return wrapper
    wrapper.querySelector('input')?.setAttribute('aria-describedby', ownedNote.id)
    return wrapper
  }
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-label': creating ? 'New user' : 'Account' },
    field({ label: 'Username', name: 'username', value: user?.username, required: true, autocomplete: 'off', readonly: !creating && !superuser, help: !creating && !superuser ? 'Access rules name users by it: a superuser renames an account.' : undefined }),
    creating ? field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'new-password', help: 'Leave empty for an account that cannot log in with a password.' }) : null,
    ownedNote,
    owned(field({ label: 'First name', name: 'first_name', value: user?.first_name, autocomplete: 'off', readonly: Boolean(owner) })),
    owned(field({ label: 'Last name', name: 'last_name', value: user?.last_name, autocomplete: 'off', readonly: Boolean(owner) })),
    owned(field({ label: 'Email', name: 'email', type: 'email', value: user?.email, autocomplete: 'off', readonly: Boolean(owner) })),
    field({ label: 'Active (may log in and use tokens)', name: 'is_active', type: 'checkbox', value: creating ? true : user.is_active, disabled: Boolean(owner) && !superuser && !user.is_active, help: activeHelp(user, owner, superuser) }),
    superuser ? field({ label: 'Superuser (may administer the gateway)', name: 'is_superuser', type: 'checkbox', value: user?.is_superuser }) : null,
    creating ? organizationChoice('Makes the new user a member of it (an organization you administer); leave empty for none.') : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, creating ? 'Create user' : 'Save'))))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const data = new FormData(form)
    const active = /** @type {HTMLInputElement} */ (form.querySelector('[data-field=is_active] input'))
    /** @type {Record<string, unknown>} */
    const body = { is_active: active.checked }
    if (creating || superuser) body.username = String(data.get('username') || '').trim()
    if (!owner) Object.assign(body, { first_name: String(data.get('first_name') || ''), last_name: String(data.get('last_name') || ''), email: String(data.get('email') || '').trim() })
    if (superuser) body.is_superuser = data.has('is_superuser')
    if (creating && data.get('password')) body.password = String(data.get('password'))
    const typed = /** @type {HTMLInputElement | null} */ (form.querySelector('[data-field=organization] [role=combobox]'))?.value.trim()
    if (creating && typed && !data.get('organization')) {
      return showErrors(form, new ApiError(400, { errors: { organization: ['Choose the organization from the list, or leave the box empty for none.'] } }))
    }
    if (creating && data.get('organization')) body.organizations = [Number(data.get('organization'))]
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      const saved = await whileBusy(button, () => api(creating ? 'users/' : `users/${user.id}/`, { method: creating ? 'POST' : 'PATCH', body }))
      toast(creating ? `User ${saved.username} created.` : 'Saved.')
      if (saved.id === context.me.id) context.updateMe(saved)
      if (creating) return context.navigate(`${usersHome(context.me)}/${saved.id}`)
      context.setTitle(`User ${saved.username}`)
      // What the switches allow now follows the saved account (a member disabled here is enabled by a superuser alone).
      await onSaved?.()
      const redrawn = userForm(context, saved, onSaved)
      const save = /** @type {HTMLButtonElement} */ (redrawn.querySelector('button[type=submit]'))
      form.replaceWith(redrawn)
      save.focus()
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}

/**
 * What the Active switch does for this account and this signed-in user.
 * @param {any} user null for a new one
 * @param {string | undefined} owner the account's source, for a directory or single sign-on account
 * @param {boolean} superuser
 */
function activeHelp(user, owner, superuser) {
  if (!owner) return 'Turn off to disable the account: its sessions end and its credentials stop working.'
  if (!superuser) return user.is_active ? `Turn off to disable the account: only a superuser enables an account from ${owner} again.` : `Only a superuser enables an account from ${owner} again.`
  if (user.source === 'ldap' && !user.is_active) return 'It is enabled again only while the LDAP directory lists the account.'
  return undefined
}

/**
 * @param {any} user
 * @param {() => Promise<void>} onSet shows again what the new password ended
 */
function passwordForm(user, onSet) {
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
      await onSet()
      toast('Password set.')
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}
