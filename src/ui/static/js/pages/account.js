import { api, published } from '../api.js'
import { field, h, onSubmit, time, toast } from '../dom.js'
import { accessSummary } from './access.js'

export const SOURCE_NAMES = { local: 'Local account', ldap: 'LDAP directory', sso: 'Single sign-on' }

/**
 * My account: who I am as the gateway sees me (GET me/), and where my tokens and sessions are.
 * @param {import('../app.js').PageContext} context
 */
export async function profilePage(context) {
  const me = (await api('me/')).results[0] ?? context.me
  const fullName = [me.first_name, me.last_name].filter(Boolean).join(' ')
  return h('div', { class: 'stack' },
    h('dl', { class: 'facts', id: 'profile' },
      fact('Username', me.username),
      fact('Name', fullName || '—'),
      fact('Email', me.email || '—'),
      fact('Account', sourceName(me.source)),
      fact('Role', me.is_superuser ? 'Superuser' : 'User'),
      fact('Member since', time(me.created)),
      fact('Last login', time(me.last_login, 'never'))),
    await accessSummary(me.id, 'Your teams, organizations and services'),
    me.source === 'local'
      ? h('div', { class: 'stack' }, detailsForm(context, me), passwordForm())
      : h('p', { class: 'muted' }, `Your name, email and password come from your ${sourceName(me.source).toLowerCase()} and are changed there.`),
    h('div', { class: 'cards' },
      h('a', { class: 'card', href: published('/ui/tokens') }, h('strong', null, 'Tokens'), h('span', null, 'Create and revoke personal API tokens.')),
      h('a', { class: 'card', href: published('/ui/sessions') }, h('strong', null, 'Sessions'), h('span', null, 'See where you are logged in; end the other sessions.'))))
}

/**
 * Name and email, saved with PATCH me/.
 * @param {import('../app.js').PageContext} context
 * @param {any} me
 */
function detailsForm(context, me) {
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-labelledby': 'details-heading' },
    h('h2', { id: 'details-heading' }, 'Your details'),
    field({ label: 'First name', name: 'first_name', value: me.first_name, autocomplete: 'given-name' }),
    field({ label: 'Last name', name: 'last_name', value: me.last_name, autocomplete: 'family-name' }),
    field({ label: 'Email', name: 'email', type: 'email', value: me.email, autocomplete: 'email' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save details'))))
  onSubmit(form, async (data) => {
    await api('me/', { method: 'PATCH', body: { first_name: String(data.get('first_name') || ''), last_name: String(data.get('last_name') || ''), email: String(data.get('email') || '').trim() } })
    toast('Details saved.')
    context.refresh()
  })
  return form
}

/** The password, changed with POST me/password/: the other sessions end, this one goes on. */
function passwordForm() {
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-labelledby': 'password-heading' },
    h('h2', { id: 'password-heading' }, 'Change password'),
    field({ label: 'Current password', name: 'current_password', type: 'password', autocomplete: 'current-password' }),
    field({ label: 'New password', name: 'new_password', type: 'password', autocomplete: 'new-password', help: 'At least 12 characters, and not a commonly used one. Your other sessions end, and basic credentials with the old password stop working.' }),
    field({ label: 'Also revoke my personal tokens', name: 'revoke_tokens', type: 'checkbox', value: false, help: 'Choose this if someone else may have known your password: they could have created tokens with it.' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Change password'))))
  onSubmit(form, async (data) => {
    await api('me/password/', { method: 'POST', body: { current_password: String(data.get('current_password') || ''), new_password: String(data.get('new_password') || ''), revoke_tokens: data.get('revoke_tokens') !== null } })
    form.reset()
    toast('Password changed.')
  })
  return form
}

/** @param {string} source */
export function sourceName(source) {
  return /** @type {Record<string, string>} */ (SOURCE_NAMES)[source] ?? source
}

/**
 * @param {string} term
 * @param {import('../dom.js').Child} value
 */
export function fact(term, value) {
  return h('div', null, h('dt', null, term), h('dd', null, value))
}
