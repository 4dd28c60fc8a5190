import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { recordTokensOfUserRevoked } from '../audit/tokens.ts'
import { DELETED_WITH_OWNER } from '../audit/trail.ts'
import type { GivenRole } from '../access/admin.ts'
import { ORGANIZATION_MEMBER } from '../access/permissions.ts'
import type { Principal } from '../auth/principal.ts'
import { refuseServiceAccountName, type WrittenTogether } from '../directory/accounts.ts'
import { ManagedBySource, NotFound, PermissionDenied, SelfLockout, ValidationFailed } from '../errors.ts'
import { asBoolean, toggle } from '../settings/definitions.ts'
import type { Organization } from '../store/access.ts'
import { type User, userFilterFields } from '../store/users.ts'
import { principalOf, visibilityOf } from './access.ts'
import { auditApplicationsGone } from './applications.ts'
import type { GatewayApi } from './gateway-api.ts'
import { listQuery } from './list-query.ts'
import { assertEmailFree, assertOwnChange, EMAIL_TAKEN, keepBrowserSignedIn, NOT_YOUR_FLAG } from './me.ts'
import { describeList, listOf, SERVER_FIELDS } from './metadata.ts'
import { paged } from './pagination.ts'
import { profileFields } from './profile-fields.ts'
import { auditGiven } from './roles.ts'
import { activityStreamUrl, userUrl } from './summaries.ts'
import { assertShownValues, idParam, shownReadOnly } from './validation.ts'

/**
 * Text fields are trimmed of leading and trailing whitespace, as Django REST framework's CharField does by default
 * (`trim_whitespace`) for the platform's serializers' fields; a password never is: its spaces are part of it.
 * Switches take what BooleanField takes (`"yes"`, `"0"`, `1`, `"True"`), as the settings API's do: every check
 * below judges the value as read, never the spelling sent.
 */
const userFields = {
  username: z.string().trim(),
  password: z.string(),
  ...profileFields,
  is_superuser: toggle(),
  is_active: toggle(),
  /**
   * Organizations the user becomes a member of, by name or id: the ansible.platform collection's user module sends
   * them with every create and update. Memberships held and not named stay.
   */
  organizations: z.array(z.union([z.string(), z.number().int()])).max(100),
}
const userInput = z.object(userFields)
/** What a user shows but the API does not write: where the account comes from and what that source says. */
const SHOWN_READ_ONLY = ['source', 'external', 'is_system_auditor', 'is_platform_auditor', 'groups'] as const
/** The read-only switches, sent back in any spelling BooleanField reads: compared with the value shown as read. */
const shownFields = {
  ...shownReadOnly(SHOWN_READ_ONLY),
  ...Object.fromEntries((['external', 'is_system_auditor', 'is_platform_auditor'] as const).map((field) => [field, z.preprocess(asBoolean, z.unknown()).optional()])),
}
/** What every account the API creates shows of them: a local one, no auditor, in no directory group. */
const NEW_USER_SHOWS = { source: 'local', external: false, is_system_auditor: false, is_platform_auditor: false, groups: [] }
const createUserFields = userInput.partial().required({ username: true })
const createUser = createUserFields.extend(shownFields).strict()
/**
 * `revoke_tokens`: with a new password, revoke the user's personal tokens too (docs/passwords.md).
 * `current_password`: with a new password of one's own, as a user who is not a superuser must give it (me/password/).
 */
const updateUser = userInput.extend({ revoke_tokens: toggle(), current_password: z.string() }).partial().extend(shownFields).strict()
const replaceUser = updateUser.required({ username: true })
const listUsers = listQuery(userFilterFields)

/**
 * What `password` shows, as the platform's user serializer shows it: `$encrypted$` for an account with a password of
 * its own, `Password Disabled` for one signing in elsewhere or without one. The collection's user module compares it
 * (`update_secrets: false` sends no password to a user showing `$encrypted$`); sent back, either changes nothing.
 */
export const SHOWN_PASSWORD = '$encrypted$'
const NO_PASSWORD = 'Password Disabled'

function shownPassword(user: User): string {
  return user.source === 'local' && user.passwordHash ? SHOWN_PASSWORD : NO_PASSWORD
}

/**
 * The body without a `password` that only repeats what an account shows, either of the two: as the platform (and
 * AWX's `_update_password`) takes `$encrypted$` for no new password. A body read while the account had none and sent
 * back once it has one would otherwise give it a password anyone can read here.
 */
function withoutShownPassword<T extends { password?: string | undefined }>(input: T): T {
  if (input.password !== SHOWN_PASSWORD && input.password !== NO_PASSWORD) return input
  const { password: _shown, ...rest } = input
  return rest as T
}

/**
 * A user as the API shows it, in the platform's shape (`url`, `related`, `summary_fields`, `created_by`,
 * `modified_by`); the password (hash) never leaves the server, `password` says only whether there is one. Who created or last changed an account is not
 * recorded, so those are null and `summary_fields` names nothing, as the platform shows a user created by no one.
 */
export function serializeUser(user: User) {
  const url = userUrl(user.id)
  return {
    id: user.id,
    type: 'user',
    url,
    related: { tokens: `${url}tokens/`, personal_tokens: `${url}personal_tokens/`, sessions: `${url}sessions/`, activity_stream: activityStreamUrl('user', user.id) },
    summary_fields: {},
    created_by: null,
    modified_by: null,
    username: user.username,
    email: user.email,
    first_name: user.firstName,
    last_name: user.lastName,
    password: shownPassword(user),
    is_superuser: user.isSuperuser,
    is_active: user.isActive,
    source: user.source,
    external: user.external,
    is_system_auditor: user.isSystemAuditor,
    is_platform_auditor: user.isSystemAuditor,
    groups: user.groups,
    created: new Date(user.created).toISOString(),
    modified: new Date(user.modified).toISOString(),
    last_login: user.lastLogin === null ? null : new Date(user.lastLogin).toISOString(),
  }
}

/** The user the caller asked for, if they may see them (404 otherwise, as for a user that does not exist). */
export async function visibleUser(app: App, request: FastifyRequest, id: number): Promise<User> {
  const user = await app.accounts.require(id)
  const visible = visibilityOf(app, request)
  if (visible?.users && !user.isSuperuser && !visible.users.has(user.id)) throw new NotFound('No such user.')
  return user
}

/**
 * Another user's record the caller may change or delete: 404 for one they cannot see (or that does not exist), 403 for
 * one they see but may not change (AccessModel.canChangeUser), as django-ansible-base's object permissions answer.
 */
async function changeableUser(app: App, request: FastifyRequest, id: number): Promise<User> {
  const target = await visibleUser(app, request, id)
  if (!app.access.canChangeUser(principalOf(request).user, target)) throw new PermissionDenied()
  return target
}

/**
 * What an organization admin may change of a member's record, judged again as the body reads: what a superuser may,
 * but the superuser flag (django-ansible-base's validate_is_superuser); the username, which the services' access rules
 * and the identity the gateway vouches for name a user by, only as it is; and not to an e-mail address another
 * account signs in with (me/'s rule, for the same reason: it would stop that account's login by it).
 */
async function assertMemberChange(app: App, caller: User, target: User, input: { is_superuser?: boolean; username?: string; email?: string }): Promise<void> {
  if (!app.access.canChangeUser(caller, target)) throw new PermissionDenied()
  if (input.is_superuser === true) throw new PermissionDenied(ONLY_SUPERUSERS_FLAG)
  if (input.username !== undefined && input.username !== target.username) throw new PermissionDenied('A username is changed by a superuser: access rules name users by it.')
  if (input.email && input.email.toLowerCase() !== target.email.toLowerCase()) await assertEmailFree(app, target, input.email)
}

const ONLY_SUPERUSERS_FLAG = 'Only a superuser makes someone a superuser.'

/**
 * Who creates users: superusers, and whoever holds change_organization on some organization, as django-ansible-base's
 * AnsibleBaseUserPermissions.has_create_permission answers.
 */
function mayCreateUsers(app: App, principal: Principal): boolean {
  return principal.user.isSuperuser || app.access.canSomewhere(principal.user, 'shared.change_organization')
}

const NOT_A_CREATOR = 'Superusers and organization admins create users.'

/**
 * An organization admin's new account takes no name another account signs in with: no e-mail address another account
 * has (me/'s rule, as for a member's change), and no username that is another account's address, which a realm
 * login by that address would then mean instead (src/oidc/login-name.ts: a username goes before an address). Either
 * would stop that account's login by its address, a superuser's too.
 */
const OWNS_APPLICATIONS = 'This user owns OAuth2 applications, which go with it and which only superusers manage; a superuser must delete the user (or the applications) first.'

async function assertSignInNamesFree(app: App, input: { username: string; email?: string | undefined }): Promise<void> {
  if (input.email && (await app.store.users.findUsernamesLike(input.email, true)).length) {
    throw new ValidationFailed({ email: [EMAIL_TAKEN] })
  }
  if (input.username.includes('@') && (await app.store.users.findUsernamesLike(input.username, true)).length) {
    throw new ValidationFailed({ username: ['Another account signs in with this name as its email address.'] })
  }
}

/**
 * What an organization admin may create: never a superuser (validate_is_superuser), and no account of a name an
 * access rule names, whose services that rule, not any role the admin holds, gives (AccessModel.canChangeUser
 * keeps such a user out of their reach for the same reason). The name a person in the LDAP directory has is
 * judged when the handler runs (assertNameNotInDirectory).
 */
function assertMemberCreation(caller: User, namedInRules: (username: string) => boolean, input: { is_superuser?: unknown; username?: unknown }): void {
  if (caller.isSuperuser) return
  if (asBoolean(input.is_superuser) === true) throw new PermissionDenied(ONLY_SUPERUSERS_FLAG)
  if (typeof input.username === 'string' && namedInRules(input.username.trim())) {
    throw new PermissionDenied('An access rule names this username: a superuser creates its account.')
  }
}

/**
 * An organization admin creates no local account of a name a person in the directory has, signed in yet or not: the
 * services would be told that name, and the person's own first sign-in would meet the account instead
 * (account_source_conflict). A single sign-on's new name is looked up so too (docs/sso.md). A directory that does not
 * answer is 503 directory_unavailable, and nothing is created.
 */
async function assertNameNotInDirectory(app: App, caller: User, username: string): Promise<void> {
  if (caller.isSuperuser || !app.directory) return
  if (await app.directory.has(username)) throw new PermissionDenied('A person in the LDAP directory has this username: a superuser creates its account.')
}

/** What a directory or single sign-on account's source sets again at every sign-in (ldap-sync.ts, sso-sync.ts). */
const SOURCE_OWNED = ['first_name', 'last_name', 'email'] as const
const SOURCE_NAMES = { ldap: 'the LDAP directory', sso: 'its single sign-on provider' } as const

/**
 * What the source of a directory or single sign-on account owns, refused to every caller (403 managed_by_source), as
 * the platform's controller refuses a change of what LDAP maps (`_validate_ldap_managed_field`, 400 there): its names and
 * e-mail address, which the next sign-in would set back; and its coming back once disabled. An organization admin may
 * disable such a member, never enable one; a superuser enables a directory account only while the directory lists the
 * entry it was made for (what the account check asks, ldap-check.ts), so that its tokens, refused while it is
 * disabled, never work again for someone the directory no longer has. A superuser may still rename the account (the
 * remedy for a name the directory gave to someone else, docs/ldap.md). Returns the directory account as read when the
 * directory was asked, for the write to be made only while it is still so (409 account_changed otherwise).
 */
async function assertSourceAgrees(app: App, caller: User, target: User, input: { is_active?: boolean; first_name?: string; last_name?: string; email?: string }): Promise<User | undefined> {
  if (target.source === 'local') return undefined
  const owner = SOURCE_NAMES[target.source]
  const shown = serializeUser(target)
  const changed = SOURCE_OWNED.filter((field) => input[field] !== undefined && input[field] !== shown[field])
  if (changed.length) throw new ManagedBySource(`This account comes from ${owner}, which sets its ${changed.join(', ')}: change them there.`)
  // Read afresh: an account the check disabled a moment ago, on another process, is not enabled past this.
  const current = input.is_active === true ? await app.store.users.findById(target.id) : undefined
  if (current?.isActive !== false) return undefined
  if (!caller.isSuperuser) throw new ManagedBySource(`This account comes from ${owner}: only a superuser enables it again.`)
  if (target.source !== 'ldap') return undefined
  if (!(await directoryLists(app, target))) {
    throw new ManagedBySource('The LDAP directory no longer lists the entry this account was made for: it stays disabled.')
  }
  return current
}

/**
 * Whether the directory lists the entry the account was made for, as the account check judges it: an entry of that
 * name with another stable identifier is someone else. No directory configured lists nothing; one that does not answer
 * is 503 directory_unavailable.
 */
async function directoryLists(app: App, user: User): Promise<boolean> {
  const listed = await app.directory?.listedEntry(user.username)
  if (listed === undefined) return false
  const recorded = (await app.store.ldapEntries.entriesOf([user.id])).get(user.id)
  return !listed || !recorded || listed === recorded
}

/** The audit trail's name for a user. */
export function auditedUser(user: User) {
  return { type: 'user', id: user.id, name: user.username }
}

/** A password given with a change shows in the audit trail as changed, never as a value (src/audit/changes.ts). */
export function passwordMark(password: string | null | undefined, side: string): { password?: string } {
  return password === undefined ? {} : { password: side }
}

/**
 * The organizations a body names, found as the collection's get_one finds them: a whole number is an id, or else
 * a name; anything else is a name. One that does not exist is a 400 naming `organizations`, before anything is written.
 */
function namedOrganizations(app: App, named: readonly (string | number)[] | undefined): Organization[] {
  if (named === undefined) return []
  const missing: string[] = []
  const found: Organization[] = []
  for (const entry of named) {
    const text = String(entry)
    const organization = (/^[0-9]+$/.test(text) ? app.access.organization(Number(text)) : undefined) ?? app.access.organizations.find((o) => o.name === text)
    if (organization) found.push(organization)
    else missing.push(`Organization "${text}" does not exist.`)
  }
  if (missing.length) throw new ValidationFailed({ organizations: missing })
  return found
}

/**
 * Checks that the caller may make a user a member of each organization, as the Organization Member role given through
 * role_user_assignments/, and returns what gives those memberships in the account change's own transaction
 * (Accounts' `together`), with what it gave once that commits: a membership that fails leaves neither the account
 * (or its change) nor any other membership.
 */
async function membershipsIn(app: App, request: FastifyRequest, organizations: readonly Organization[]): Promise<{ together: WrittenTogether | undefined; given: () => readonly GivenRole[] }> {
  if (!organizations.length) return { together: undefined, given: () => [] }
  const member = app.access.roleDefinitionNamed(ORGANIZATION_MEMBER)
  if (!member) throw new Error(`the managed role ${ORGANIZATION_MEMBER} is missing`)
  const grants = await app.accessAdmin.checkUserGrants(principalOf(request).user, organizations.map((o) => ({ roleDefinitionId: member.id, objectId: o.id })))
  let given: readonly GivenRole[] = []
  const together: WrittenTogether = async (tx, announce, user) => {
    // Found when the request was read; one deleted since (by another process) is refused now, with everything else,
    // and one being deleted is waited for (the lock the memberships' own check takes, AccessAdmin.giveToUser).
    for (const organization of organizations) {
      if (!(await tx.access.lockObjectToAssign('organization', organization.id))) throw new ValidationFailed({ organizations: [`Organization "${organization.name}" does not exist.`] })
    }
    given = await app.accessAdmin.giveToUser(tx, announce, user.id, grants)
  }
  return { together, given: () => given }
}

/** The API's snake_case fields as the account layer names them; absent fields stay absent. */
function accountFields(input: Partial<z.output<typeof userInput>>) {
  return {
    username: input.username,
    password: input.password,
    email: input.email,
    firstName: input.first_name,
    lastName: input.last_name,
    isSuperuser: input.is_superuser,
    isActive: input.is_active,
  }
}

/**
 * /users/: each caller sees themselves, the superusers and the members of the organizations they see, as the
 * platform's visible_users shows them (superusers and auditors: everyone); each changes their own record, organization
 * admins their members' (AccessModel.canChangeUser), superusers anyone's.
 */
export function userRoutes(api: GatewayApi, app: App): void {
  // The running rules', which a reload of the configuration replaces.
  const namedInRules = (username: string) => app.access.namedInRules(username)
  api.get('/users/', { schema: { querystring: listUsers } }, async (request) => {
    const { page, filter } = request.query
    const { count, users } = await app.store.users.list({ offset: page.offset, limit: page.pageSize, filter, visibleIds: visibilityOf(app, request)?.users })
    return paged(request, page, count, users.map(serializeUser))
  })

  describeList(api, '/users/', {
    name: 'User List',
    description: 'Accounts: each caller sees themselves, superusers and the members of the organizations they see; each changes their own, organization admins those of their members (and delete them); superusers and organization admins create (a superuser only by a superuser); only superusers change or delete anyone.',
    create: { body: createUserFields.strict(), readOnly: { ...SERVER_FIELDS, source: 'choice', external: 'boolean', is_system_auditor: 'boolean', is_platform_auditor: 'boolean', groups: listOf('string'), last_login: 'datetime' }, allowed: (principal) => mayCreateUsers(app, principal) },
  })

  api.post('/users/', {
    schema: { body: createUser },
    // The caller before the body is read, as a superusers' route judges them (a browser form carrying its own CSRF token
    // names its caller once it is read); then the flag and the name as the body reads, whatever its media type.
    preParsing: async (request, _reply, payload) => {
      const principal = request.gatehouse.principal
      if (principal && !mayCreateUsers(app, principal)) throw new PermissionDenied(NOT_A_CREATOR)
      return payload
    },
    preValidation: async (request) => {
      if (!mayCreateUsers(app, principalOf(request))) throw new PermissionDenied(NOT_A_CREATOR)
      assertMemberCreation(principalOf(request).user, namedInRules, (request.body ?? {}) as Record<string, unknown>)
    },
  }, async (request, reply) => {
    const input = withoutShownPassword(request.body)
    assertMemberCreation(principalOf(request).user, namedInRules, input)
    refuseServiceAccountName(input.username)
    await assertNameNotInDirectory(app, principalOf(request).user, input.username)
    if (!principalOf(request).user.isSuperuser) await assertSignInNamesFree(app, input)
    assertShownValues(input, NEW_USER_SHOWS, SHOWN_READ_ONLY)
    const memberships = await membershipsIn(app, request, namedOrganizations(app, input.organizations))
    const user = await app.accounts.create({ ...accountFields(input), username: input.username }, { together: memberships.together })
    app.audit.change(actorOf(request), 'create', auditedUser(user), undefined, { ...serializeUser(user), ...passwordMark(input.password, 'set') })
    await auditGiven(app, actorOf(request), 'user', memberships.given())
    reply.code(201)
    return serializeUser(user)
  })

  api.get('/users/:id/', { schema: { params: idParam } }, async (request) => serializeUser(await visibleUser(app, request, request.params.id)))

  for (const [method, body] of [['PATCH', updateUser], ['PUT', replaceUser]] as const) api.route({
    method,
    url: '/users/:id/',
    schema: { params: idParam, body },
    // Any user changes their own record, as on the platform, and an organization admin their members' (the
    // superuser flag never): a user the caller cannot see is 404, one they see but may not change 403, as the platform's
    // object permissions answer. Judged before the body is, as the superusers' routes judge the caller first (the
    // handler judges the flag again as the body reads, whatever its media type).
    preValidation: async (request) => {
      const caller = principalOf(request).user
      if (caller.isSuperuser) return
      const params = idParam.safeParse(request.params)
      if (!params.success) return
      const own = params.data.id === caller.id
      if (!own) await changeableUser(app, request, params.data.id)
      if (asBoolean((request.body as { is_superuser?: unknown } | null)?.is_superuser) === true) throw new PermissionDenied(own ? NOT_YOUR_FLAG : ONLY_SUPERUSERS_FLAG)
    },
    handler: async (request, reply) => {
      const { id } = request.params
      const caller = principalOf(request).user
      const own = id === caller.id
      const target = await app.accounts.require(id)
      const input = withoutShownPassword(request.body)
      assertShownValues(input, serializeUser(target), SHOWN_READ_ONLY)
      refuseServiceAccountName(input.username, target.username)
      if (own && !caller.isSuperuser) await assertOwnChange(app, request, reply, target, input)
      else if (!caller.isSuperuser) await assertMemberChange(app, caller, target, input)
      const enabledAsRead = await assertSourceAgrees(app, caller, target, input)
      if (input.password !== undefined && target.source !== 'local') {
        throw new ValidationFailed({ password: [`The password of a ${target.source} account is managed by its source.`] })
      }
      if (input.revoke_tokens !== undefined && typeof input.password !== 'string') {
        throw new ValidationFailed({ revoke_tokens: ['Give it together with a new password.'] })
      }
      if (input.current_password !== undefined && (typeof input.password !== 'string' || !own)) {
        throw new ValidationFailed({ current_password: ['Give it together with a new password of your own.'] })
      }
      if (own && (input.is_active === false || (input.is_superuser === false && caller.isSuperuser))) {
        throw new SelfLockout('You cannot disable or demote your own account.')
      }
      const memberships = await membershipsIn(app, request, namedOrganizations(app, input.organizations))
      // What the update itself changed from: another change at the same time may have come between.
      let changedFrom = target
      const user = await app.accounts.update(id, { ...accountFields(input), revokeTokens: input.revoke_tokens }, { keepAnActiveSuperuser: true, together: memberships.together, asRead: enabledAsRead, policyBeforeSamePassword: !own && !caller.isSuperuser, tokensRevoked: (revoked) => recordTokensOfUserRevoked(app.audit, actorOf(request), id, revoked), changedFrom: (before) => (changedFrom = before) })
      // A password equal to the one the account has is kept, not set (src/directory/accounts.ts): no change to record.
      const passwordSet = user.passwordHash === changedFrom.passwordHash ? undefined : input.password
      app.audit.change(actorOf(request), 'update', auditedUser(user), { ...serializeUser(changedFrom), ...passwordMark(passwordSet, 'old') }, { ...serializeUser(user), ...passwordMark(passwordSet, 'new') })
      await auditGiven(app, actorOf(request), 'user', memberships.given())
      if (own && passwordSet !== undefined) await keepBrowserSignedIn(app, request, reply, user)
      return serializeUser(user)
    },
  })

  // Superusers delete anyone, organization admins their members, as the platform's can_change_user lets them.
  api.delete('/users/:id/', { schema: { params: idParam } }, async (request, reply) => {
    const { id } = request.params
    const caller = principalOf(request).user
    const target = caller.isSuperuser ? await app.accounts.require(id) : await visibleUser(app, request, id)
    if (id === caller.id) throw new SelfLockout('You cannot delete your own account.')
    if (!app.access.canChangeUser(caller, target)) throw new PermissionDenied()
    // Its applications go with it (app.ts): only superusers manage those (src/api/applications.ts).
    if (!caller.isSuperuser && (await app.store.applications.clientIdsOwnedBy(id)).length) throw new PermissionDenied(OWNS_APPLICATIONS)
    const gone = await app.accounts.delete(id, { keepAnActiveSuperuser: true })
    app.audit.change(actorOf(request), 'delete', auditedUser(target), serializeUser(target))
    await auditApplicationsGone(app, actorOf(request), gone.applications, DELETED_WITH_OWNER)
    return reply.code(204).send()
  })
}
