import type { NotMine } from '../auth/authenticator.ts'
import type { User } from '../store/users.ts'

/**
 * A place that can check a username and password: the local database, a directory (LDAP), ...
 * `verify` answers the account when the password is right, NOT_MINE when it does not know the username,
 * and throws InvalidCredentials when it knows the username and the password is wrong.
 */
export interface PasswordSource {
  readonly id: string
  verify(username: string, password: string): Promise<User | NotMine>
}
