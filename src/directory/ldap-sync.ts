import { AccountDisabled, AccountSourceConflict, DirectoryUsernameInvalid, UsernameTaken } from '../errors.ts'
import type { Store } from '../store/store.ts'
import type { User, UserChanges } from '../store/users.ts'
import { isServiceAccountName, SERVICE_ACCOUNT_NAME, USERNAME_PATTERN, type Accounts, type AddressWithheld } from './accounts.ts'
import { profileEmail, profileName } from './upstream-profile.ts'

/** A directory user as Gatehouse maps it: the account's fields, and the roles its groups give. */
export interface DirectoryUser {
  dn: string
  /** The entry's stable identifier (`attributes.uuid`), '' when it has none. */
  entryId: string
  username: string
  email: string
  firstName: string
  lastName: string
  /** DNs of the directory groups the user is in. */
  groupDns: string[]
  /** From `superuser_groups`; undefined when none are configured (then an administrator decides). */
  isSuperuser: boolean | undefined
  /** From `auditor_groups`; undefined when none are configured. */
  isSystemAuditor: boolean | undefined
  /** Names from `named_groups` whose DNs the user is in, sorted. */
  groups: string[]
}

/**
 * Creates or updates the account of a user the directory just vouched for: an external account with source
 * `ldap` and no local password. The profile, the mapped groups and, when their groups are configured, the
 * superuser and auditor flags follow the directory (but the last active superuser keeps the flag:
 * `keepLastSuperuserFlag` in accounts.ts); whether the account is active stays an administrator's decision, and a
 * disabled account is refused before anything of it changes (the entry it was made for is not even recorded). An
 * unchanged account is not written, so a login tells other processes nothing; a made or changed one is told to
 * `Accounts.onSignInChange` (the audit trail). The account is found by name without
 * regard to case, as the directory matches names: an LDAP account spelled in another case is this person's, and
 * keeps its spelling; a local or single sign-on one is a conflict (a second account differing only in case would
 * make a realm login by that name fail). An address another account signs in with is not stored (`withholdTakenAddress`).
 */
export async function syncDirectoryAccount(store: Store, accounts: Accounts, found: DirectoryUser): Promise<User> {
  if (!USERNAME_PATTERN.test(found.username)) {
    throw new DirectoryUsernameInvalid()
  }
  if (isServiceAccountName(found.username)) throw new DirectoryUsernameInvalid(SERVICE_ACCOUNT_NAME)
  const profile = profileOf(found)
  const withheld = await withholdTakenAddress(store, found.username, profile)
  let existing = await store.users.findCaseVariant(found.username)
  if (!existing) {
    try {
      const created = await accounts.create({ username: found.username, ...profile, isSuperuser: profile.isSuperuser ?? false, source: 'ldap', external: true })
      if (found.entryId) await store.ldapEntries.claim(created.id, found.entryId)
      accounts.tellSignInChange('ldap', undefined, created)
      if (withheld) accounts.tellAddressWithheld(created, withheld)
      return created
    } catch (error) {
      // Another request created it first: update that one instead.
      if (!(error instanceof UsernameTaken)) throw error
      existing = await store.users.findCaseVariant(found.username)
      if (!existing) throw error
    }
  }
  if (existing.source !== 'ldap') {
    throw new AccountSourceConflict()
  }
  // Before anything follows the directory: an administrator disabled the account, and a refused sign-in changes
  // nothing of it (its person's superuser group may be what it was disabled over, and would make it a superuser again;
  // `afterSync` would map its memberships). Every door (basic, gateway and realm logins, the password grant) comes here.
  if (!existing.isActive) throw new AccountDisabled()
  await checkSameEntry(store, existing, found)
  const changes = changesBetween(existing, profile, found)
  const account = changes ? await accounts.update(existing.id, changes, { keepLastSuperuserFlag: true, onlyWhileActive: true }) : existing
  if (changes) accounts.tellSignInChange('ldap', existing, account)
  if (withheld) accounts.tellAddressWithheld(account, withheld)
  return account
}

/**
 * Leaves the profile's address unset when another account signs in with it (its address or its username, in any
 * case, src/oidc/login-name.ts), and answers what was withheld. A person may edit their own entry's `mail`: copying
 * another account's address would make that account's realm login by it match two accounts, and be refused. Keycloak
 * refuses a duplicate address at import for the same reason. An address copied before this check is taken back at
 * the next login. Two logins storing one address at the same moment can still both keep it.
 */
async function withholdTakenAddress(store: Store, username: string, profile: UserChanges): Promise<AddressWithheld | undefined> {
  const email = profile.email
  if (!email) return undefined
  const holders = await store.users.findUsernamesLike(email, true)
  const heldBy = holders.find((holder) => holder.toLowerCase() !== username.toLowerCase())
  if (heldBy === undefined) return undefined
  profile.email = ''
  return { email, heldBy }
}

/**
 * Refuses an entry other than the one the account was made for: a directory may give a deleted person's username to
 * someone else, who must not get the first holder's roles, memberships and tokens (Keycloak's LDAP federation checks
 * its LDAP_ID the same way). An account from before entries were recorded, or an entry without an identifier, is
 * taken as the same.
 */
async function checkSameEntry(store: Store, account: User, found: DirectoryUser): Promise<void> {
  if (!found.entryId) return
  if (await store.ldapEntries.claim(account.id, found.entryId) !== found.entryId) throw new AccountSourceConflict(ENTRY_REPLACED)
}

const ENTRY_REPLACED = 'This username\'s account was made for another directory entry, since deleted; an administrator must rename or delete that account before you can sign in.'

function profileOf(found: DirectoryUser): UserChanges {
  return {
    email: profileEmail(found.email),
    firstName: profileName(found.firstName),
    lastName: profileName(found.lastName),
    groups: found.groups,
    ...(found.isSuperuser === undefined ? {} : { isSuperuser: found.isSuperuser }),
    ...(found.isSystemAuditor === undefined ? {} : { isSystemAuditor: found.isSystemAuditor }),
  }
}

function changesBetween(user: User, profile: UserChanges, found: DirectoryUser): UserChanges | undefined {
  const changes: UserChanges = {}
  if (profile.email !== user.email) changes.email = profile.email
  if (profile.firstName !== user.firstName) changes.firstName = profile.firstName
  if (profile.lastName !== user.lastName) changes.lastName = profile.lastName
  Object.assign(changes, roleChangesBetween(user, found))
  return Object.keys(changes).length ? changes : undefined
}

/**
 * What the directory's groups change in the account: named groups, and the superuser and auditor flags when their
 * groups are configured. Undefined when nothing.
 */
export function roleChangesBetween(user: User, found: DirectoryUser): UserChanges | undefined {
  const changes: UserChanges = {}
  if (found.groups.join('\n') !== user.groups.join('\n')) changes.groups = found.groups
  if (found.isSuperuser !== undefined && found.isSuperuser !== user.isSuperuser) changes.isSuperuser = found.isSuperuser
  if (found.isSystemAuditor !== undefined && found.isSystemAuditor !== user.isSystemAuditor) changes.isSystemAuditor = found.isSystemAuditor
  return Object.keys(changes).length ? changes : undefined
}
