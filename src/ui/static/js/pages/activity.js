import { api, published } from '../api.js'
import { field, h, time } from '../dom.js'
import { pagedTable } from '../table.js'

/** @type {[string, string][]} */
const OPERATIONS = [['', 'Any'], ['login', 'Login'], ['login_error', 'Failed login'], ['logout', 'Logout'], ['lockout', 'Lockout'], ['create', 'Created'], ['update', 'Changed'], ['delete', 'Deleted / revoked'], ['dropped', 'Entries dropped']]
/** @type {[string, string][]} */
const KINDS = [['', 'Any'], ['user', 'User'], ['session', 'Session'], ['token', 'Token'], ['settings', 'Settings']]
/** The filters the page offers, by their name in the API (`activitystream/`) and in the page's address. */
const FILTERS = ['operation', 'content_type', 'created_by__username', 'object_name', 'source_address', 'code']

/**
 * The activity stream (superusers): who did what, when and from where, newest first, filtered by what happened,
 * to what, by whom, from which address and with which refusal code. Filters live in the address, so a view can
 * be bookmarked or shared.
 * @param {import('../app.js').PageContext} context
 */
export async function activityPage(context) {
  /** @type {Record<string, string>} */
  const chosen = {}
  for (const name of FILTERS) chosen[name] = context.query.get(name) || ''
  const filtered = Object.values(chosen).some(Boolean)
  const table = pagedTable({
    caption: 'Activity',
    pageParam: 'page',
    empty: filtered ? 'Nothing matches these filters.' : 'Nothing recorded yet.',
    load: (page) => api('activitystream/', { query: { page, order_by: '-id', ...chosen } }),
    columns: [
      { label: 'When', cell: (e) => time(e.created) },
      { label: 'Who', cell: (e) => who(e) },
      { label: 'What', cell: (e) => [h('span', { class: `badge ${badgeOf(e.operation)}` }, operationName(e.operation)), ' ', subject(e)] },
      { label: 'From', cell: (e) => [e.source_address || '—', e.auth_method ? h('span', { class: 'muted' }, ` · ${e.auth_method}`) : null] },
      { label: 'Details', cell: (e) => details(e) },
    ],
  })
  await table.reload()

  const filter = /** @type {HTMLFormElement} */ (h('form', { class: 'inline-form', 'aria-label': 'Filter the activity' },
    field({ label: 'What happened', name: 'operation', type: 'select', value: chosen.operation, options: OPERATIONS }),
    field({ label: 'To', name: 'content_type', type: 'select', value: chosen.content_type, options: KINDS }),
    field({ label: 'By username', name: 'created_by__username', value: chosen.created_by__username, placeholder: 'exact username' }),
    field({ label: 'Object name', name: 'object_name', value: chosen.object_name, placeholder: 'e.g. a username' }),
    field({ label: 'Address', name: 'source_address', value: chosen.source_address, placeholder: 'e.g. 192.0.2.7' }),
    field({ label: 'Code', name: 'code', value: chosen.code, placeholder: 'e.g. invalid_credentials' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'))))
  filter.addEventListener('submit', (event) => {
    event.preventDefault()
    const query = new URLSearchParams()
    for (const [key, value] of new FormData(filter)) if (String(value).trim()) query.set(key, String(value).trim())
    context.navigate(`/ui/admin/activity${query.size ? `?${query}` : ''}`)
  })

  return h('div', { class: 'stack' },
    h('p', { class: 'muted' }, 'Logins, failed logins, lockouts, and every change made through the API or the command line. Passwords and tokens never appear.'),
    h('div', { class: 'toolbar' }, filter),
    table.element)
}

/** @param {any} entry */
function who(entry) {
  const actor = entry.summary_fields.created_by
  if (!actor) return entry.auth_method === 'cli' ? 'command line' : h('span', { class: 'muted' }, 'Gatehouse')
  const name = entry.auth_method === 'cli' ? `${actor.username} (command line)` : actor.username
  // Linked while the account exists (the API gives `related.created_by` only then); a deleted one is named, not linked.
  return entry.related.created_by ? h('a', { href: published(`/ui/admin/users/${entry.created_by}`) }, name) : name
}

/** @param {string} operation */
function operationName(operation) {
  return OPERATIONS.find(([value]) => value === operation)?.[1] ?? operation
}

/** @param {string} operation */
function badgeOf(operation) {
  return operation === 'login_error' || operation === 'lockout' || operation === 'delete' || operation === 'dropped' ? 'off' : operation === 'login' ? 'on' : 'write'
}

/** @param {any} entry */
function subject(entry) {
  const object = entry.summary_fields.content_object
  const name = object.name || (object.id ? `#${object.id}` : '')
  return `${entry.content_type}${name ? ` ${name}` : ''}${entry.realm ? ` (realm ${entry.realm})` : ''}`
}

/** @param {any} entry */
function details(entry) {
  const changes = entry.changes
  // A refusal that verified no password, written once for those like it in a minute (docs/audit.md).
  // This entry is the last of `repeated` refusals after the first of its minute, which has an entry of its own.
  if (entry.code && changes?.repeated) return h('span', null, h('code', null, entry.code), `, ${changes.repeated} more times in the minute after the first (this the last)`)
  if (entry.code) return h('code', null, entry.code)
  if (!changes) return '—'
  if (entry.operation === 'dropped') return `${changes.count} entries not kept`
  const changed = Object.entries(changes.changed_fields || {}).map(([name, [before, after]]) => `${name}: ${show(before)} → ${show(after)}`)
  const added = Object.keys(changes.added_fields || {})
  const removed = Object.keys(changes.removed_fields || {})
  const lines = changed.length ? changed : added.length ? [`set: ${added.join(', ')}`] : removed.length ? [`had: ${removed.join(', ')}`] : []
  return lines.length ? lines.map((line) => h('div', null, line)) : '—'
}

/** @param {unknown} value */
function show(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
