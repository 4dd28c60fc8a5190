import { burnVerificationTime, hashCostRefusal, hashNeedsUpdate, hashPassword, reportRefusedHash, verifyPassword } from './passwords.ts'
import { InvalidCredentials, PasswordChecksBusy } from '../errors.ts'
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
    await this.#refuseCostlyHash(user, password, signal)
    if (await verifyPassword(user.passwordHash, password, signal)) return this.#updateHash(user, password)
    return this.#verifyReplacedHash(user, password, signal)
  }

  /**
   * A stored hash above the cost Gatehouse verifies (passwords.ts HASH_COST_CEILING) is not run: the sign-in fails as
   * a wrong password would, after as long, and the administrator is told which account's hash to replace.
   */
  async #refuseCostlyHash(user: User, password: string, signal: AbortSignal | undefined): Promise<void> {
    const reason = hashCostRefusal(user.passwordHash!)
    if (reason === undefined) return
    reportRefusedHash({ userId: user.id, username: user.username, reason })
    await burnVerificationTime(password, signal)
    throw new InvalidCredentials()
  }

  /**
   * A hash made otherwise than Gatehouse makes its own (imported, or from an earlier cost) is replaced by one of the
   * password just proved right, as Django's hashers do (`must_update`): nothing else changes, nothing ends. Unless the
   * password changed meanwhile (the new hash is then not written), or no core is free for the hash now: the next
   * sign-in tries again.
   */
  async #updateHash(user: User, password: string): Promise<User> {
    if (!hashNeedsUpdate(user.passwordHash!)) return user
    try {
      return await this.#store.users.replacePasswordHash(user.id, user.passwordHash!, await hashPassword(password)) ?? user
    } catch (error) {
      if (error instanceof PasswordChecksBusy) return user
      throw error
    }
  }

  /**
   * The hash was read before the check waited its turn and hashed: a password changed meanwhile would refuse the new
   * one once. Read again, a hash that replaced it is verified, once; a row unchanged costs one indexed read more.
   */
  async #verifyReplacedHash(read: User, password: string, signal: AbortSignal | undefined): Promise<User> {
    const current = await this.#store.users.findById(read.id)
    if (current?.source === 'local' && current.username === read.username && current.passwordHash && current.passwordHash !== read.passwordHash
      && await verifyPassword(current.passwordHash, password, signal)) return this.#updateHash(current, password)
    throw new InvalidCredentials()
  }
}
