import type { SsoProviderConfig } from '../config/sso.ts'
import { AccountDisabled, AccountSourceConflict, SsoIdentityConflict, SsoLoginInProgress, SsoUsernameInvalid, UsernameTaken } from '../errors.ts'
import { UniqueViolation } from '../store/errors.ts'
import type { Store } from '../store/store.ts'
import type { User, UserChanges } from '../store/users.ts'
import { isServiceAccountName, SERVICE_ACCOUNT_NAME, USERNAME_PATTERN, type Accounts } from './accounts.ts'
import type { UpstreamIdentity } from './sso.ts'
import { profileEmail, profileName } from './upstream-profile.ts'

/** The people of the LDAP directory, whose usernames are theirs before their first sign-in makes their account. */
export interface DirectoryNames {
  has(username: string): Promise<boolean>
}

interface SsoProfile extends UserChanges {
  username: string
  groups: string[]
}

/**
 * Finds or creates the account of a person a provider just vouched for: an external account with source
 * `sso` and no password. The account is found by the upstream identity (issuer and subject), never by
 * username, so a person renamed upstream keeps their account, and an upstream username can never take over
 * a local, LDAP or other single sign-on account that happens to have the same name, in any letter case (a realm login
 * ignores case, so a name differing only in case would make that account's login fail). Nor can it take the name of a
 * person in the LDAP directory (`directory`) who has not signed in yet, and so has no account: their first sign-in
 * would then find their name held by someone else. So a new name (a new account, a rename) is checked with the
 * directory, and refused when the directory has it, or cannot say (fail closed). django-ansible-base gives such a
 * second comer a name with a suffix instead; see docs/sso.md for why Gatehouse refuses. Profile, groups and the
 * mapped flags follow the claims on every sign-in (but the last active superuser keeps the flag:
 * `keepLastSuperuserFlag` in accounts.ts); whether the account is active stays an administrator's decision, and a
 * disabled account is refused before anything of it changes. An unchanged account is not written; a made (and linked)
 * or changed one is told to `Accounts.onSignInChange` (the audit trail).
 */
export async function syncSsoAccount(store: Store, accounts: Accounts, provider: SsoProviderConfig, identity: UpstreamIdentity, directory?: DirectoryNames): Promise<User> {
  const profile = profileOf(provider, identity.claims)
  const linked = await store.sso.findIdentity(identity.issuer, identity.subject)
  if (linked) {
    const user = await accounts.require(linked.userId)
    // Before anything follows the claims: an administrator disabled the account, and a refused sign-in changes nothing
    // of it (its person's upstream groups may be what it was disabled for, and would make it a superuser again).
    if (!user.isActive) throw new AccountDisabled()
    if (profile.username !== user.username) {
      await checkNotInDirectory(directory, profile.username)
      await checkNotAnAddress(store, profile.username)
    }
    const updated = await updateLinkedAccount(store, accounts, user, profile)
    await store.sso.recordLogin(linked.id, provider.name)
    return updated
  }
  const taken = await store.users.findCaseVariant(profile.username)
  if (taken) throw await newcomerConflict(store, identity, taken)
  await checkNotInDirectory(directory, profile.username)
  await checkNotAnAddress(store, profile.username)
  let created: User
  try {
    created = await accounts.create({ ...profile, isSuperuser: profile.isSuperuser ?? false, source: 'sso', external: true })
  } catch (error) {
    // Another sign-in created the name first; it is linked to someone else, or about to be.
    const now = error instanceof UsernameTaken ? await store.users.findCaseVariant(profile.username) : undefined
    throw now ? await newcomerConflict(store, identity, now) : error
  }
  try {
    await store.sso.link({ issuer: identity.issuer, subject: identity.subject, userId: created.id, provider: provider.name })
  } catch (error) {
    await accounts.delete(created.id)
    if (error instanceof UniqueViolation) throw new SsoLoginInProgress()
    throw error
  }
  accounts.tellSignInChange('sso', undefined, created)
  return created
}

async function updateLinkedAccount(store: Store, accounts: Accounts, user: User, profile: SsoProfile): Promise<User> {
  const changes = changesBetween(user, profile)
  if (!changes) return user
  try {
    const updated = await accounts.update(user.id, changes, { keepLastSuperuserFlag: true, onlyWhileActive: true })
    accounts.tellSignInChange('sso', user, updated)
    return updated
  } catch (error) {
    const taken = error instanceof UsernameTaken && changes.username ? await store.users.findCaseVariant(changes.username, user.id) : undefined
    throw taken ? conflictWith(taken) : error
  }
}

/** Refuses a name the directory has (or may have: it could not say), which its person's first sign-in will need. */
async function checkNotInDirectory(directory: DirectoryNames | undefined, username: string): Promise<void> {
  if (directory && await directory.has(username)) {
    throw new AccountSourceConflict('This username belongs to a person in the LDAP directory, which single sign-on cannot take over.')
  }
}

/**
 * Refuses a name that is the e-mail address another account logs in with (a realm login by address): the exact
 * username would win over the address, so that account's login by address would find this one instead, which has no
 * password, and fail. An organization admin may not create such a name either (users.ts `assertSignInNamesFree`).
 */
async function checkNotAnAddress(store: Store, username: string): Promise<void> {
  if (!username.includes('@')) return
  // Accounts of the same name in another letter case are found here too: they are judged as such (findCaseVariant).
  const lowered = username.toLowerCase()
  const byAddress = (await store.users.findUsernamesLike(username, true, 3)).filter((name) => name.toLowerCase() !== lowered)
  if (byAddress.length) throw new AccountSourceConflict('This username is the email address another account signs in with, which single sign-on cannot take over.')
}

/**
 * Refuses the first sign-in of an identity whose username an account has: another identity's, or another source's.
 * A single sign-on account linked to no identity yet, or linked since to this one, is this person's own first
 * sign-in made at the same moment (two tabs, two devices), between its account's creation and its link: that is
 * `SsoLoginInProgress` (try again, and the sign-in finds the account linked), not somebody else's name.
 */
async function newcomerConflict(store: Store, identity: UpstreamIdentity, account: User): Promise<Error> {
  if (account.source === 'sso') {
    const linked = await store.sso.findIdentity(identity.issuer, identity.subject)
    if (linked?.userId === account.id || (!linked && !(await store.sso.isLinked(account.id)))) return new SsoLoginInProgress()
  }
  return conflictWith(account)
}

/** Refuses a sign-in whose username belongs to an account this upstream identity is not linked to. */
function conflictWith(account: User): SsoIdentityConflict | AccountSourceConflict {
  return account.source === 'sso'
    ? new SsoIdentityConflict()
    : new AccountSourceConflict(`This username belongs to a ${account.source} account, which single sign-on cannot take over.`)
}

function profileOf(provider: SsoProviderConfig, claims: Readonly<Record<string, unknown>>): SsoProfile {
  const { claims: names } = provider
  const username = claims[names.username]
  if (typeof username !== 'string' || !USERNAME_PATTERN.test(username)) {
    throw new SsoUsernameInvalid(`The provider sent no usable username in the claim "${names.username}" (1-150 ASCII letters, digits and @ . + - _).`)
  }
  if (isServiceAccountName(username)) throw new SsoUsernameInvalid(`The provider sent the username "${username}": ${SERVICE_ACCOUNT_NAME}`)
  const upstreamGroups = new Set(groupsClaim(claims[names.groups]))
  const inAny = (values: readonly string[]) => values.some((value) => upstreamGroups.has(value))
  return {
    username,
    email: profileEmail(stringClaim(claims, names.email)),
    firstName: profileName(stringClaim(claims, names.first_name)),
    lastName: profileName(stringClaim(claims, names.last_name)),
    groups: Object.entries(provider.named_groups).filter(([, values]) => inAny(values)).map(([name]) => name).sort(),
    ...(provider.superuser_groups.length ? { isSuperuser: inAny(provider.superuser_groups) } : {}),
    ...(provider.auditor_groups.length ? { isSystemAuditor: inAny(provider.auditor_groups) } : {}),
  }
}

function stringClaim(claims: Readonly<Record<string, unknown>>, name: string): string {
  const value = claims[name]
  return typeof value === 'string' ? value : ''
}

/** A list of strings, or one string; anything else means no groups. */
export function groupsClaim(value: unknown): string[] {
  if (typeof value === 'string') return [value]
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []
}

function changesBetween(user: User, profile: SsoProfile): UserChanges | undefined {
  const changes: UserChanges = {}
  if (profile.username !== user.username) changes.username = profile.username
  if (profile.email !== user.email) changes.email = profile.email
  if (profile.firstName !== user.firstName) changes.firstName = profile.firstName
  if (profile.lastName !== user.lastName) changes.lastName = profile.lastName
  if (profile.groups.join('\n') !== user.groups.join('\n')) changes.groups = profile.groups
  if (profile.isSuperuser !== undefined && profile.isSuperuser !== user.isSuperuser) changes.isSuperuser = profile.isSuperuser
  if (profile.isSystemAuditor !== undefined && profile.isSystemAuditor !== user.isSystemAuditor) changes.isSystemAuditor = profile.isSystemAuditor
  return Object.keys(changes).length ? changes : undefined
}
