import { api, published } from '../api.js'
import { confirmAction, formatDate, h, replace, time } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'

/**
 * My sessions: where I am logged in; end any but this one, or all the others at once.
 * @param {import('../app.js').PageContext} _context
 */
export async function mySessionsPage(_context) {
  const sessions = sessionsTable({ load: (page) => api('me/sessions/', { query: { page } }), endUrl: (s) => `me/sessions/${s.id}/`, showUser: false, empty: 'No sessions.', pageParam: 'page' })
  await sessions.reload()
  const endOthers = h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!(await confirmAction('End all your other sessions? Browsers logged in as you elsewhere must log in again.', 'End them'))) return
      await changeThenReload(/** @type {HTMLButtonElement} */ (endOthers), async () => {
        const result = await api('me/sessions/end_others/', { method: 'POST' })
        return `${result.ended} other session${result.ended === 1 ? '' : 's'} ended.`
      }, sessions, false)
    },
  }, 'End all other sessions')
  return h('div', { class: 'stack' },
    h('p', { class: 'muted' }, 'Each login starts a session. Ending one logs that browser out.'),
    sessions.element,
    h('div', { class: 'actions' }, endOthers))
}

/**
 * All sessions (superusers), and for each realm **Sign out everyone** (Keycloak's `logout-all`).
 * @param {import('../app.js').PageContext} _context
 */
export async function allSessionsPage(_context) {
  const sessions = sessionsTable({ load: (page) => api('sessions/', { query: { page } }), endUrl: (s) => `sessions/${s.id}/`, showUser: true, empty: 'No sessions.', pageParam: 'page' })
  const [realms] = await Promise.all([api('/admin/realms'), sessions.reload()])
  return h('div', { class: 'stack' }, sessions.element, ...(/** @type {any[]} */ (realms)).map((realm) => realmSignOut(realm.realm, sessions)))
}

/**
 * A realm's **Sign out everyone**: after a confirmation, ends every session and token of the realm (and the gateway
 * sessions linked to its browser sessions), then shows which clients' admin URLs were told and which were not.
 * @param {string} realm
 * @param {{reload: (keepPage?: boolean) => Promise<void>, element: HTMLElement}} sessions
 */
function realmSignOut(realm, sessions) {
  const answer = h('div', { role: 'status' })
  const button = /** @type {HTMLButtonElement} */ (h('button', {
    type: 'button',
    class: 'danger',
    'aria-label': `Sign out everyone of realm ${realm}`,
    onclick: async () => {
      if (!(await confirmAction(`Sign out everyone of realm ${realm}? Every session and token of the realm ends, on every gateway process, and browsers signed in through it must log in again.`, 'Sign out everyone'))) return
      await changeThenReload(button, async () => {
        const result = await api(`/admin/realms/${encodeURIComponent(realm)}/logout-all`, { method: 'POST' })
        replace(answer, ...describeAdminCalls(result))
        return `Everyone of realm ${realm} signed out.`
      }, sessions)
    },
  }, 'Sign out everyone'))
  return h('section', { class: 'stack', 'aria-label': `Realm ${realm}` },
    h('h2', null, `Realm ${realm}`),
    h('p', { class: 'muted' }, 'Ends every session and token of the realm, and the sessions here of browsers signed in through it; clients with an admin URL are told to refuse older tokens.'),
    h('div', { class: 'actions' }, button),
    answer)
}

/**
 * Keycloak's GlobalRequestResult for people: the admin URLs told, and those not.
 * @param {{successRequests?: string[], failedRequests?: string[]}} result
 */
function describeAdminCalls(result) {
  const told = result.successRequests ?? []
  const failed = result.failedRequests ?? []
  if (!told.length && !failed.length) return [h('p', null, 'No client of the realm has an admin URL to tell.')]
  return [
    ...(told.length ? [h('p', null, 'Admin URLs told:'), h('ul', { class: 'told' }, ...told.map((url) => h('li', null, url)))] : []),
    ...(failed.length ? [h('p', { class: 'form-error' }, 'Admin URLs not told (they keep taking older tokens until told):'), h('ul', { class: 'failed' }, ...failed.map((url) => h('li', null, url)))] : []),
  ]
}

/**
 * The session list used by every page that shows sessions.
 * @param {{load: (page: number) => Promise<any>, endUrl: (session: any) => string, showUser: boolean, empty: string, pageParam: string}} spec
 */
export function sessionsTable(spec) {
  /** @type {import('../table.js').Column[]} */
  const columns = [
    ...(spec.showUser ? [{ label: 'User', cell: (/** @type {any} */ s) => h('a', { href: published(`/ui/admin/users/${s.user}`) }, s.username ?? `#${s.user}`) }] : []),
    { label: 'Started', cell: (s) => [time(s.created), s.current ? h('span', { class: 'badge on' }, 'This session') : null] },
    { label: 'Ends', cell: (s) => time(s.expires_on) },
    { label: 'Address', cell: (s) => s.ip || '—' },
    { label: 'Browser', cell: (s) => h('span', { title: s.user_agent || '' }, describeUserAgent(s.user_agent || '')) },
    {
      label: 'Actions',
      class: 'actions-cell',
      cell: (s) => s.current ? h('span', { class: 'muted' }, 'Log out to end it') : h('button', {
        type: 'button',
        class: 'danger small',
        'aria-label': `End the session ${spec.showUser ? `of ${s.username ?? `#${s.user}`} ` : ''}in ${describeUserAgent(s.user_agent || '')} from ${s.ip || 'an unknown address'}, started ${formatDate(s.created)}`,
        onclick: (/** @type {Event} */ e) => end(/** @type {HTMLButtonElement} */ (e.currentTarget), s),
      }, 'End'),
    },
  ]
  const table = pagedTable({ caption: 'Sessions', columns, load: spec.load, empty: spec.empty, pageParam: spec.pageParam })

  /**
   * @param {HTMLButtonElement} button
   * @param {any} session
   */
  async function end(button, session) {
    if (!(await confirmAction('End this session? That browser must log in again.', 'End session'))) return
    await changeThenReload(button, async () => {
      await api(spec.endUrl(session), { method: 'DELETE' })
      return 'Session ended.'
    }, table)
  }

  return table
}

const BROWSERS = [['Edg/', 'Edge'], ['OPR/', 'Opera'], ['Firefox/', 'Firefox'], ['Chrome/', 'Chrome'], ['Safari/', 'Safari'], ['curl/', 'curl'], ['python-requests/', 'Python requests']]
const SYSTEMS = [['Android', 'Android'], ['iPhone', 'iOS'], ['iPad', 'iPadOS'], ['Windows', 'Windows'], ['Mac OS X', 'macOS'], ['CrOS', 'ChromeOS'], ['Linux', 'Linux']]

/**
 * "Chrome 156 on Linux" from a User-Agent header; the header itself when it names nothing known.
 * @param {string} userAgent
 */
export function describeUserAgent(userAgent) {
  const browser = BROWSERS.find(([marker]) => userAgent.includes(marker))
  if (!browser) return userAgent.slice(0, 60) || '—'
  const version = new RegExp(`${browser[0].replace('/', '\\/')}(\\d+)`).exec(userAgent)?.[1]
  const system = SYSTEMS.find(([marker]) => userAgent.includes(marker))
  return `${browser[1]}${version ? ` ${version}` : ''}${system ? ` on ${system[1]}` : ''}`
}
