import type { Algorithm, Options } from '@node-rs/argon2'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'

/** argon2's native addon loads with the first password hashed or verified: a restart on an existing database needs neither. */
let argon2: Promise<typeof import('@node-rs/argon2')> | undefined
const loadArgon2 = () => (argon2 ??= import('@node-rs/argon2'))

/** argon2id with OWASP's minimum recommended parameters (19 MiB, 2 iterations, 1 lane). */
const ARGON2ID: Options = { algorithm: 2 as Algorithm, memoryCost: 19456, timeCost: 2, parallelism: 1 }

/** Runs at most `limit` tasks at once; the others wait their turn, first come first served. */
export class ConcurrencyLimit {
  readonly limit: number
  #running = 0
  readonly #waiting: (() => void)[] = []

  constructor(limit: number) {
    this.limit = limit
  }

  get running(): number {
    return this.#running
  }

  get waiting(): number {
    return this.#waiting.length
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its place straight to the oldest waiter, so none can be overtaken.
    if (this.#running >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#running++
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#running--
    }
  }
}

/**
 * argon2id runs on libuv's thread pool, four threads whatever the machine, and each hash reads and writes its
 * 19 MiB throughout. More hashes at once than there are cores only take turns on them and push one another's
 * memory out of the caches: on 2 cores four at once cost 6-34% more CPU time each than two (docs/performance.md).
 * So at most one per core runs, which also leaves pool threads free for the token signatures meanwhile.
 */
export const argon2Tasks = new ConcurrencyLimit(availableParallelism())

export async function hashPassword(password: string): Promise<string> {
  const { hash } = await loadArgon2()
  return argon2Tasks.run(() => hash(password, ARGON2ID))
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  const { verify } = await loadArgon2()
  try {
    return await argon2Tasks.run(() => verify(passwordHash, password))
  } catch {
    return false
  }
}

let dummyHash: Promise<string> | undefined

/**
 * Spends the same time as a real verification, for unknown users and empty passwords,
 * so a wrong password and a missing account cannot be told apart by timing.
 */
export async function burnVerificationTime(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'))
  await verifyPassword(await dummyHash, password)
}
