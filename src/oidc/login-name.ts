import type { RealmConfig } from '../config/realms.ts'
import type { Accounts } from '../directory/accounts.ts'
import type { Store } from '../store/store.ts'
import type { User } from '../store/users.ts'

/** Longer than any username or e-mail address (RFC 5321 §4.5.3.1.3 caps a path at 256 octets). */
const MAX_LOGIN_NAME = 256

/**
 * The account a realm login names. Keycloak stores usernames in lower case, so its logins ignore case, and with
 * "Login with email" (on by default) an e-mail address names its account too, but only once no account has it as
 * its username, its directory's users included (ValidateUsername: findUserByNameOrEmail asks for the username
 * first, which Keycloak's LDAP federation looks up in the directory). Gatehouse usernames keep their case, so an
 * exact match wins; otherwise a single account whose username matches without regard to case, whatever address
 * another account gave itself; only then a single account by address, unless the directory has a user of that name
 * who has not signed in yet: the name is theirs. An ambiguous or unknown name is passed on as typed: the password
 * check then fails like any wrong login (or a directory may know it).
 */
export async function resolveLoginName(deps: { store: Store; accounts: Accounts }, realm: RealmConfig, name: string): Promise<LoginName> {
  if (!name || name.length > MAX_LOGIN_NAME) return { username: name }
  const account = await deps.store.users.findByUsername(name)
  if (account) return { username: name, account }
  const byUsername = await deps.store.users.findUsernamesLike(name, false)
  if (byUsername.length) return { username: byUsername.length === 1 ? byUsername[0]! : name }
  if (!realm.login_with_email || !name.includes('@')) return { username: name }
  const byAddress = await deps.store.users.findUsernamesLike(name, true)
  if (byAddress.length !== 1 || await deps.accounts.elsewhereHasUsername(name)) return { username: name }
  return { username: byAddress[0]! }
}

/**
 * The username a login means, and its account when reading the name found it: the password check takes that row
 * instead of reading it again (`Accounts.checkPassword`).
 */
export interface LoginName {
  username: string
  account?: User | undefined
}
