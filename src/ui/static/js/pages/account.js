import { api } from '../api.js'
import { h, time } from '../dom.js'

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
    me.source === 'local'
      ? h('p', { class: 'muted' }, 'Your name, email and password are changed by an administrator.')
      : h('p', { class: 'muted' }, `Your name, email and password come from your ${sourceName(me.source).toLowerCase()} and are changed there.`),
    h('div', { class: 'cards' },
      h('a', { class: 'card', href: '/ui/tokens' }, h('strong', null, 'Tokens'), h('span', null, 'Create and revoke personal API tokens.')),
      h('a', { class: 'card', href: '/ui/sessions' }, h('strong', null, 'Sessions'), h('span', null, 'See where you are logged in; end the other sessions.'))))
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
