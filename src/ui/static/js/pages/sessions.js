import { api } from '../api.js'
import { confirmAction, h, messageOf, time, toast, whileBusy } from '../dom.js'
import { pagedTable } from '../table.js'

/**
 * My sessions: where I am logged in, ending any but this one, or all the others at once.
 * @param {import('../app.js').PageContext} context
 */
export async function mySessionsPage(context) {
  const sessions = sessionsTable({ load: (page) => api(`users/${context.me.id}/sessions/`, { query: { page } }), showUser: false, empty: 'No sessions.' })
  await sessions.reload()
  const endOthers = h('button', {
    type: 'button',
    class: 'danger',
    onclick: async () => {
      if (!(await confirmAction('End all your other sessions? Browsers logged in as you elsewhere must log in again.', 'End them'))) return
      try {
        await whileBusy(/** @type {HTMLButtonElement} */ (endOthers), () => api('session/others/', { method: 'DELETE' }))
        toast('Your other sessions have ended.')
      } catch (error) {
        toast(messageOf(error), 'error')
      }
      await sessions.reload(false)
    },
  }, 'End all other sessions')
  return h('div', { class: 'stack' }, sessions.element, h('div', { class: 'actions' }, endOthers))
}

/**
 * All sessions (superusers).
 * @param {import('../app.js').PageContext} _context
 */
export async function allSessionsPage(_context) {
  const sessions = sessionsTable({ load: (page) => api('sessions/', { query: { page } }), showUser: true, empty: 'No sessions.' })
  await sessions.reload()
  return h('div', { class: 'stack' }, sessions.element)
}

/**
 * The session list used by every page that shows sessions.
 * @param {{load: (page: number) => Promise<any>, showUser: boolean, empty: string}} spec
 */
export function sessionsTable(spec) {
  /** @type {import('../table.js').Column[]} */
  const columns = [
    ...(spec.showUser ? [{ label: 'User', cell: (/** @type {any} */ s) => h('a', { href: `/ui/admin/users/${s.user}` }, s.summary_fields?.user?.username ?? `#${s.user}`) }] : []),
    { label: 'Started', cell: (s) => [time(s.created), s.current ? h('span', { class: 'badge on' }, 'This session') : null] },
    { label: 'Ends', cell: (s) => time(s.expires) },
    { label: 'Client', cell: (s) => [s.user_agent || '—', s.ip ? h('span', { class: 'muted' }, ` (${s.ip})`) : null] },
    {
      label: 'Actions',
      class: 'actions-cell',
      cell: (s) => s.current ? '' : h('button', {
        type: 'button',
        class: 'danger small',
        onclick: (/** @type {Event} */ e) => end(/** @type {HTMLButtonElement} */ (e.currentTarget), s),
      }, 'End'),
    },
  ]
  const table = pagedTable({ caption: 'Sessions', columns, load: spec.load, empty: spec.empty })

  /**
   * @param {HTMLButtonElement} button
   * @param {any} session
   */
  async function end(button, session) {
    if (!(await confirmAction('End this session? That browser must log in again.', 'End session'))) return
    try {
      await whileBusy(button, () => api(`sessions/${session.id}/`, { method: 'DELETE' }))
      toast('Session ended.')
    } catch (error) {
      toast(messageOf(error), 'error')
    }
    await table.reload()
  }

  return table
}
