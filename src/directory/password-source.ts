import type { User } from '../store/users.ts'

/**
 * Returned by a password source that does not know the username, and by an authenticator (src/auth/) when the
 * request carries no credential of its kind: the next one is asked.
 */
export const NOT_MINE: unique symbol = Symbol('not mine')
export type NotMine = typeof NOT_MINE

/**
 * A place that can check a username and password: the local database, a directory (LDAP), ...
 * `verify` answers the account when the password is right, NOT_MINE when it does not know the username,
 * and throws InvalidCredentials when it knows the username and the password is wrong. `read` is the account named
 * `username` as just read from the database, when the caller has it.
 */
export interface PasswordSource {
  readonly id: string
  verify(username: string, password: string, read?: User, signal?: AbortSignal): Promise<User | NotMine>
  /**
   * Whether the source has an account of this username that the database may not hold yet (a directory user who
   * has not signed in); throws when it cannot say. Absent: the database holds every account of the source.
   */
  knowsUsername?(username: string): Promise<boolean>
}
