import { api, ApiError, published, userNamed } from '../api.js'
import { foundIn, searchChoice } from '../choice.js'
import { mayRevoke, objectOf, organizationsOfTeams, permissionsOf } from '../permissions.js'
import { confirmAction, field, h, onSubmit, toast } from '../dom.js'
import { changeThenReload, pagedTable, showLastPageNext } from '../table.js'
import { fact } from './account.js'

/**
 * Access control in the interface (docs/access.md): a user's teams, organizations, roles and the services they may
 * reach; and the page where administrators (superusers, and organization and team admins for their own) manage
 * organizations, teams and who holds which role. The API decides who may change what; a refusal shows its message.
 */

/**
 * Where a user's page is for the signed-in user: under Administration for a superuser, under Access for an
 * organization admin (the server keeps /ui/admin/ to superusers).
 * @param {import('../app.js').User} me
 */
export function usersHome(me) {
  return me.is_superuser ? '/ui/admin/users' : '/ui/access/users'
}

/**
 * What a user is in access control's terms, and which services their rules let them reach.
 * @param {number} userId
 * @param {string} headingText
 * @param {any} [access] the user's `users/{id}/access/`, when read already
 */
export async function accessSummary(userId, headingText, access) {
  access ??= await api(`users/${userId}/access/`)
  /** @param {{name: string}[] | string[]} items */
  const names = (items) => items.map((item) => (typeof item === 'string' ? item : item.name)).join(', ') || '—'
  const services = h('table', { class: 'data' },
    h('caption', { class: 'visually-hidden' }, 'Services'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Service'), h('th', { scope: 'col' }, 'Prefix'), h('th', { scope: 'col' }, 'Access'), h('th', { scope: 'col' }, 'Decided by'))),
    h('tbody', null, access.services.map((/** @type {any} */ s) => h('tr', { dataset: { service: s.service } },
      h('td', { dataset: { label: 'Service' } }, h('div', null, s.service)),
      h('td', { dataset: { label: 'Prefix' } }, h('div', null, h('code', null, s.prefix))),
      h('td', { dataset: { label: 'Access' } }, h('div', null, s.allowed ? h('span', { class: 'badge on' }, 'Allowed') : h('span', { class: 'badge off' }, 'Refused'))),
      h('td', { dataset: { label: 'Decided by' } }, h('div', null, s.has_rules ? (s.rule ? `rule ${s.rule}` : 'no rule matched') : 'no rules: every signed-in user'))))))
  return h('section', { class: 'stack', 'aria-labelledby': `access-heading-${userId}` },
    h('h2', { id: `access-heading-${userId}` }, headingText),
    h('dl', { class: 'facts', id: 'memberships' },
      fact('Teams', names(access.teams)),
      fact('Organizations', names(access.organizations)),
      fact('Roles', names(access.roles))),
    h('div', { class: 'table-scroll' }, services))
}

/**
 * Organizations, teams and role assignments.
 * @param {import('../app.js').PageContext} context
 */
export async function accessPage(context) {
  // The API lists a POST among a list's actions for whoever it lets create there (users: superusers and organization
  // admins; organizations: superusers; teams: organization admins; roles: admins of an object): the page offers those.
  const [roles, permissions, ...creatable] = await Promise.all([
    api('role_definitions/', { query: { page_size: 200 } }),
    permissionsOf(context.me),
    ...['users/', 'organizations/', 'teams/', 'role_user_assignments/'].map((list) => mayCreate(list)),
  ])
  // Each row offers the actions the API would allow the signed-in user (src/ui/static/js/permissions.js).
  const roleGives = new Map(roles.results.map((/** @type {any} */ r) => [r.id, r.permissions]))
  /** The organization of each team a role assignment on display is held on. @type {Map<number, number>} */
  let teamOrganizations = new Map()
  const [mayCreateUsers, mayCreateOrganizations, mayCreateTeams, mayGiveRoles] = creatable
  const home = usersHome(context.me)
  // The lists hold what the caller may see: only a superuser's empty list says that there is nothing.
  const seesAll = context.me.is_superuser

  const organizationTable = pagedTable({
    caption: 'Organizations',
    pageParam: 'organizations_page',
    empty: seesAll ? 'There are no organizations yet.' : 'No organization is visible to you.',
    load: (page) => api('organizations/', { query: { page } }),
    columns: [
      { label: 'Name', cell: (o) => o.name },
      { label: 'Description', cell: (o) => o.description || '—' },
      { label: 'Actions', class: 'actions-cell', cell: (o) => permissions.can('shared.delete_organization', { type: 'organization', id: o.id }) && deleteButton(`organizations/${o.id}/`, `Delete the organization ${o.name} and its teams?`, organizationTable, 'Delete', `Delete organization ${o.name}`, [teamTable, assignmentTable]) },
    ],
  })
  const teamTable = pagedTable({
    caption: 'Teams',
    pageParam: 'teams_page',
    empty: seesAll ? 'There are no teams yet.' : 'No team is visible to you.',
    load: (page) => api('teams/', { query: { page } }),
    columns: [
      { label: 'Name', cell: (t) => t.name },
      { label: 'Organization', cell: (t) => t.summary_fields.organization?.name ?? '—' },
      { label: 'Description', cell: (t) => t.description || '—' },
      { label: 'Actions', class: 'actions-cell', cell: (t) => permissions.can('shared.delete_team', { type: 'team', id: t.id }, t.organization) && deleteButton(`teams/${t.id}/`, `Delete the team ${t.name}?`, teamTable, 'Delete', `Delete team ${t.name}`, [assignmentTable]) },
    ],
  })
  const assignmentTable = pagedTable({
    caption: 'Role assignments',
    pageParam: 'roles_page',
    empty: seesAll ? 'Nobody holds a role yet.' : 'No role assignment is visible to you.',
    load: async (page) => {
      const found = await api('role_user_assignments/', { query: { page } })
      const onTeams = found.results.map(objectOf).filter((/** @type {import('../permissions.js').AccessObject} */ o) => o.type === 'team').map((/** @type {import('../permissions.js').AccessObject} */ o) => o.id)
      if (!permissions.everything && onTeams.length) teamOrganizations = await organizationsOfTeams(onTeams)
      return found
    },
    columns: [
      { label: 'User', cell: (a) => (a.summary_fields.user ? h('a', { href: published(`${home}/${a.user}`) }, a.summary_fields.user.username) : `#${a.user}`) },
      { label: 'Role', cell: (a) => a.summary_fields.role_definition?.name ?? `#${a.role_definition}` },
      { label: 'On', cell: (a) => (a.content_type ? `${a.content_type === 'shared.team' ? 'Team' : 'Organization'} ${a.summary_fields.content_object?.name ?? a.object_id}` : 'The whole platform') },
      { label: 'Actions', class: 'actions-cell', cell: (a) => mayRevoke(permissions, a, roleGives.get(a.role_definition), teamOrganizations.get(Number(a.object_id))) && deleteButton(`role_user_assignments/${a.id}/`, 'Revoke this role?', assignmentTable, 'Revoke', `Revoke role ${a.summary_fields.role_definition?.name ?? a.role_definition} of ${a.summary_fields.user?.username ?? a.user}`) },
    ],
  })
  await Promise.all([organizationTable.reload(), teamTable.reload(), assignmentTable.reload()])

  const organizationForm = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'inline-form', 'aria-label': 'New organization' },
    field({ label: 'Name', name: 'name', required: true, autocomplete: 'off' }),
    field({ label: 'Description', name: 'description', autocomplete: 'off' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create organization'))))
  onSubmit(organizationForm, async (data) => {
    const created = await api('organizations/', { method: 'POST', body: { name: String(data.get('name') || '').trim(), description: String(data.get('description') || '') } })
    toast(`Organization ${created.name} created.`)
    showLastPageNext('organizations_page')
    context.refresh()
  })

  const teamForm = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'inline-form', 'aria-label': 'New team' },
    field({ label: 'Name', name: 'name', required: true, autocomplete: 'off' }),
    // Those whose teams the signed-in user may add to.
    organizationChoice(undefined, (o) => permissions.can('shared.add_team', { type: 'organization', id: o.id })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create team'))))
  onSubmit(teamForm, async (data) => {
    const organization = Number(data.get('organization'))
    if (!organization) throw new ApiError(400, { errors: { organization: ['Type part of the organization\'s name, then choose it from the list.'] } })
    const created = await api('teams/', { method: 'POST', body: { name: String(data.get('name') || '').trim(), organization } })
    toast(`Team ${created.name} created.`)
    showLastPageNext('teams_page')
    context.refresh()
  })

  const grantForm = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'inline-form', 'aria-label': 'Give a role' },
    field({ label: 'Username', name: 'username', required: true, autocomplete: 'off' }),
    // A platform-wide role is a superuser's to give.
    field({ label: 'Role', name: 'role_definition', type: 'select', options: roles.results.filter((/** @type {any} */ r) => context.me.is_superuser || heldOn(r) !== 'platform').map((/** @type {any} */ r) => [String(r.id), r.name]) }),
    objectChoice(context.me, () => heldOn(chosenRole())),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Give role'))))
  /** The role chosen in the form, or undefined. */
  const chosenRole = () => roles.results.find((/** @type {any} */ r) => String(r.id) === (/** @type {HTMLSelectElement} */ (grantForm.elements.namedItem('role_definition'))).value)
  onSubmit(grantForm, async (data) => {
    const username = String(data.get('username') || '').trim()
    if (!username) throw new ApiError(400, { errors: { username: ['Enter the username of the person to give the role to.'] } })
    const found = await userNamed(username)
    if (!found) throw new ApiError(400, { errors: { username: ['No user with this username.'] } })
    const object = String(data.get('object') || '')
    if (!object) throw new ApiError(400, { errors: { object: ['Type part of the name of an organization or team, then choose it from the list.'] } })
    const [type, id] = object.split(':')
    // The API takes the object's id alone and reads it as the role's kind of object: a team's role given with an
    // organization's id would land on the team that has that id.
    const role = chosenRole()
    const kind = heldOn(role)
    if (kind && type !== kind) throw new ApiError(400, { errors: { object: [`"${role.name}" is given on ${KIND_NAMES[kind]}: choose ${KIND_NAMES[kind] === 'the whole platform' ? 'it' : 'one'} from the list.`] } })
    await api('role_user_assignments/', { method: 'POST', body: { role_definition: Number(data.get('role_definition')), user: found.id, ...(type === 'platform' ? {} : { object_id: Number(id) }) } })
    grantForm.reset()
    await assignmentTable.showLast()
    toast(`Role given to ${username}.`)
  })

  return h('div', { class: 'stack' },
    mayCreateUsers ? h('div', { class: 'toolbar' }, h('a', { class: 'button', href: published(`${home}/new`) }, 'Create user')) : null,
    h('section', { class: 'stack', 'aria-labelledby': 'organizations-heading' }, h('h2', { id: 'organizations-heading' }, 'Organizations'), mayCreateOrganizations ? organizationForm : null, organizationTable.element),
    h('section', { class: 'stack', 'aria-labelledby': 'teams-heading' }, h('h2', { id: 'teams-heading' }, 'Teams'), mayCreateTeams ? teamForm : null, teamTable.element),
    h('section', { class: 'stack', 'aria-labelledby': 'roles-heading' }, h('h2', { id: 'roles-heading' }, 'Who holds which role'), mayGiveRoles ? grantForm : null, assignmentTable.element))
}

/** How many of what matches a choice lists; typing more finds the others. */
const CHOICES = 20

/**
 * The organization of a new team or user, found by name among those the signed-in user sees (and, with `offered`, of
 * those among them it answers yes for).
 * @param {string} [help]
 * @param {(organization: {id: number}) => boolean} [offered]
 */
export function organizationChoice(help, offered = () => true) {
  return searchChoice({
    label: 'Organization',
    name: 'organization',
    help,
    placeholder: 'Type to find one',
    nothing: (text) => (text ? `No organization you may choose matches "${text}".` : 'There is no organization you may choose.'),
    search: async (text, signal) => {
      const page = await api('organizations/', { query: { search: text, order_by: 'name', page_size: CHOICES }, signal })
      return { choices: page.results.filter(offered).map((/** @type {any} */ o) => ({ value: String(o.id), text: o.name })), more: Math.max(0, page.count - page.results.length) }
    },
  })
}

const PLATFORM_CHOICE = { value: 'platform:0', text: 'The whole platform (platform-wide roles)' }

/** @typedef {'platform' | 'organization' | 'team'} ObjectKind */
/** @type {Record<ObjectKind, string>} */
const KIND_NAMES = { platform: 'the whole platform', organization: 'an organization', team: 'a team' }

/**
 * What kind of object a role is held on, from its `content_type`; undefined for no role.
 * @param {{content_type: string | null} | undefined} role
 * @returns {ObjectKind | undefined}
 */
function heldOn(role) {
  if (!role) return undefined
  return role.content_type === 'shared.team' ? 'team' : role.content_type === 'shared.organization' ? 'organization' : 'platform'
}

/**
 * What a role is given on: an organization or a team found by name, or (for a superuser, who alone gives them) the
 * whole platform; of the kind the role chosen is held on.
 * @param {import('../app.js').User} me
 * @param {() => ObjectKind | undefined} kindWanted
 */
function objectChoice(me, kindWanted) {
  const none = { count: 0, results: [] }
  return searchChoice({
    label: 'On',
    name: 'object',
    placeholder: 'Type to find an organization or team',
    nothing: (text) => {
      const kind = kindWanted()
      if (kind === 'platform') return 'The role chosen is held on the whole platform, which only a superuser gives roles on.'
      const what = kind === 'organization' ? 'organization' : kind === 'team' ? 'team' : 'organization or team'
      return text ? `No ${what} you see matches "${text}".` : `No ${what} is visible to you.`
    },
    search: async (text, signal) => {
      const kind = kindWanted()
      const query = { search: text, order_by: 'name', page_size: CHOICES }
      const [organizations, teams] = await Promise.all([
        kind === undefined || kind === 'organization' ? api('organizations/', { query, signal }) : none,
        kind === undefined || kind === 'team' ? api('teams/', { query, signal }) : none,
      ])
      const words = text.toLowerCase().split(/\s+/).filter(Boolean)
      const platform = me.is_superuser && (kind === undefined || kind === 'platform') && words.every((word) => PLATFORM_CHOICE.text.toLowerCase().includes(word)) ? [PLATFORM_CHOICE] : []
      const foundOrganizations = foundIn(organizations, (o) => ({ value: `organization:${o.id}`, text: `Organization ${o.name}` }))
      const foundTeams = foundIn(teams, (t) => ({ value: `team:${t.id}`, text: `Team ${t.name} (${t.summary_fields.organization?.name ?? t.organization})` }))
      return { choices: [...platform, ...foundOrganizations.choices, ...foundTeams.choices], more: foundOrganizations.more + foundTeams.more }
    },
  })
}

/**
 * Whether the API lets the signed-in user create in a list: its `OPTIONS` lists a `POST` action only for them.
 * @param {string} list
 */
export async function mayCreate(list) {
  const options = await api(list, { method: 'OPTIONS' })
  return Boolean(options?.actions?.POST)
}

/**
 * A button that deletes one API object after asking, then shows its table again.
 * @param {string} path
 * @param {string} question
 * @param {{reload: (keepPage?: boolean) => Promise<void>, element: HTMLElement}} table
 * @param {string} label
 * @param {string} name what a screen reader says, naming the object, where the label alone is the same on every row
 * @param {{reload: () => Promise<void>}[]} [alsoChanged] the other lists the deletion changes (an organization's teams go
 *   with it, and the roles held on what goes)
 */
function deleteButton(path, question, table, label, name, alsoChanged = []) {
  return h('button', {
    type: 'button',
    class: 'danger small',
    'aria-label': name,
    onclick: async (/** @type {Event} */ e) => {
      const button = /** @type {HTMLButtonElement} */ (e.currentTarget)
      if (!(await confirmAction(question, label))) return
      await changeThenReload(button, async () => {
        await api(path, { method: 'DELETE' })
        await Promise.all(alsoChanged.map((list) => list.reload()))
        return 'Done.'
      }, table)
    },
  }, label)
}
