import { verifyPassword } from './passwords.ts'
import { InvalidCredentials } from '../errors.ts'
import type { Store } from '../store/store.ts'
import type { User } from '../store/users.ts'
import { NOT_MINE, type NotMine, type PasswordSource } from './password-source.ts'

/** Accounts whose password hash Gatehouse keeps. Accounts from other sources are not its to judge. */
export class LocalPasswords implements PasswordSource {
  readonly id = 'local'
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  async verify(username: string, password: string, read?: User, signal?: AbortSignal): Promise<User | NotMine> {
    // The row read for the login name a moment ago: it is as fresh as one read now would be by the time the slow
    // hash below is done with it.
    const user = read ?? await this.#store.users.findByUsername(username)
    if (!user || user.source !== 'local' || !user.passwordHash) return NOT_MINE
    if (await verifyPassword(user.passwordHash, password, signal)) return user
    return this.#verifyReplacedHash(user, password, signal)
  }

  /**
   * The hash was read before the check waited its turn and hashed: a password changed meanwhile would refuse the new
   * one once. Read again, a hash that replaced it is verified, once; a row unchanged costs one indexed read more.
   */
  async #verifyReplacedHash(read: User, password: string, signal: AbortSignal | undefined): Promise<User> {
    const current = await this.#store.users.findById(read.id)
    if (current?.source === 'local' && current.username === read.username && current.passwordHash && current.passwordHash !== read.passwordHash
      && await verifyPassword(current.passwordHash, password, signal)) return current
    throw new InvalidCredentials()
  }
}
