import type { Algorithm, Options, ParsedHashOptions } from '@node-rs/argon2'
import { availableParallelism, getPriority } from 'node:os'
import { PasswordCheckAbandoned, PasswordChecksBusy } from '../errors.ts'
import { HashingThreads } from './hashing-threads.ts'
import { isPbkdf2Hash, pbkdf2Refusal, readPbkdf2Hash } from './pbkdf2-hashes.ts'

/** argon2id with OWASP's minimum recommended parameters (19 MiB, 2 iterations, 1 lane). */
const ARGON2ID: Options = { algorithm: 2 as Algorithm, memoryCost: 19456, timeCost: 2, parallelism: 1 }

/**
 * Runs at most `limit` tasks at once; the others wait their turn, first come first served, at most `maxWaiting` of
 * them: a task beyond those is refused at once with `whenFull()`. A waiting task whose `signal` aborts (its client
 * went away) leaves the queue, refused with `whenAbandoned()`, and never runs.
 */
export class ConcurrencyLimit {
  readonly limit: number
  maxWaiting = Infinity
  #running = 0
  #refused = 0
  readonly #waiting = new Set<() => void>()
  readonly #whenFull: () => Error
  readonly #whenAbandoned: () => Error

  constructor(limit: number, refusals: { whenFull?: () => Error; whenAbandoned?: () => Error } = {}) {
    this.limit = limit
    this.#whenFull = refusals.whenFull ?? (() => new Error('too many tasks waiting'))
    this.#whenAbandoned = refusals.whenAbandoned ?? (() => new Error('the task was abandoned while it waited'))
  }

  get running(): number {
    return this.#running
  }

  get waiting(): number {
    return this.#waiting.size
  }

  /** Tasks refused because `maxWaiting` waited already, since the start. */
  get refused(): number {
    return this.#refused
  }

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw this.#whenAbandoned()
    // A finishing task hands its place straight to the oldest waiter, so none can be overtaken.
    if (this.#running >= this.limit) await this.#wait(signal)
    else this.#running++
    try {
      return await task()
    } finally {
      const next = this.#waiting.values().next()
      if (next.done) this.#running--
      else {
        this.#waiting.delete(next.value)
        next.value()
      }
    }
  }

  #wait(signal: AbortSignal | undefined): Promise<void> {
    if (this.#waiting.size >= this.maxWaiting) {
      this.#refused++
      throw this.#whenFull()
    }
    return new Promise<void>((resolve, reject) => {
      const turn = () => {
        signal?.removeEventListener('abort', leave)
        resolve()
      }
      const leave = () => {
        this.#waiting.delete(turn)
        reject(this.#whenAbandoned())
      }
      signal?.addEventListener('abort', leave, { once: true })
      this.#waiting.add(turn)
    })
  }
}

/**
 * Each argon2id hash reads and writes its 19 MiB throughout: more hashes at once than there are cores only take
 * turns on them and push one another's memory out of the caches (on 2 cores four at once cost 6-34% more CPU time
 * each than two: docs/performance.md). So one thread per core hashes (src/directory/hashing-threads.ts), each holding
 * the next check while it hashes, to start it without waiting for the event loop. The threads, and argon2's native
 * addon, start with the first password hashed or verified: a restart on an existing database needs neither.
 */
export const hashingThreads = new HashingThreads(availableParallelism(), ARGON2ID)

/** Hashes below the event loop by `step` nice steps, as libuv's pool runs under `serve` (src/cli/pool-priority.ts). */
export function lowerHashingPriority(step: number): void {
  hashingThreads.setNice(Math.min(19, getPriority() + step))
}

/** The checks handed to the hashing threads (each hashing one and holding the next), or waiting their turn. */
export const argon2Tasks = new ConcurrencyLimit(hashingThreads.size * HashingThreads.JOBS_PER_THREAD, {
  whenFull: () => new PasswordChecksBusy(),
  whenAbandoned: () => new PasswordCheckAbandoned(),
})

/** At most this many password checks wait for a core (`auth.password_checks_waiting`), in this process. */
export function boundPasswordChecksWaiting(maxWaiting: number): void {
  argon2Tasks.maxWaiting = maxWaiting
}

/**
 * The most a stored hash may cost for Gatehouse to verify it. Its verification runs on a hashing thread that cannot be
 * stopped once it started (the per-job bound only replaces the thread: src/directory/hashing-threads.ts), so a hash
 * carrying any cost (a database restored from elsewhere, accounts imported) could hold a core for hours, or take
 * gigabytes, at each sign-in. Up to 128 MiB, 16 lanes and eight times the work (memory × passes) of Gatehouse's own:
 * room for the hashes of Django's argon2 hasher (100 MiB, 2 passes, 8 lanes) and of Keycloak's (7 MiB, 5 passes).
 */
export const HASH_COST_CEILING = Object.freeze({ memoryCost: 131_072, parallelism: 16, work: 8 * ARGON2ID.memoryCost! * ARGON2ID.timeCost! })

/** Algorithm's and Version's numbers in @node-rs/argon2 (its const enums), by their names in a PHC string. */
const PHC_ALGORITHMS: Readonly<Record<string, Algorithm>> = { argon2d: 0 as Algorithm, argon2i: 1 as Algorithm, argon2id: 2 as Algorithm }
const PHC_VERSIONS: Readonly<Record<string, ParsedHashOptions['version']>> = { 16: 0 as ParsedHashOptions['version'], 19: 1 as ParsedHashOptions['version'] }
const PHC_B64 = /^[A-Za-z0-9+/]+$/

/**
 * A stored hash's parameters, read from its PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) here rather than
 * by argon2's addon, which only the hashing threads load (src/directory/hashing-threads.ts); undefined for a string
 * that is not such a hash.
 */
function hashParameters(hash: string): ParsedHashOptions | undefined {
  const fields = hash.split('$')
  if (fields.length === 5) fields.splice(2, 0, 'v=16')
  const [empty, name, version, list, salt, output] = fields
  if (fields.length !== 6 || empty !== '' || !Object.hasOwn(PHC_ALGORITHMS, name!) || !version!.startsWith('v=')) return undefined
  const pairs = list!.split(',')
  const params = new Map(pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as const))
  if (params.size !== pairs.length) return undefined
  const number = (key: string) => /^[1-9]\d{0,9}$/.test(params.get(key) ?? '') ? Number(params.get(key)) : NaN
  const [memoryCost, timeCost, parallelism] = [number('m'), number('t'), number('p')]
  if (!Object.hasOwn(PHC_VERSIONS, version!.slice(2)) || [memoryCost, timeCost, parallelism].some(Number.isNaN) || !PHC_B64.test(salt!) || !PHC_B64.test(output!)) return undefined
  const bytes = (b64: string) => Math.floor(b64.length * 3 / 4)
  return { algorithm: PHC_ALGORITHMS[name!]!, version: PHC_VERSIONS[version!.slice(2)]!, memoryCost, timeCost, parallelism, saltLen: bytes(salt!), outputLen: bytes(output!) }
}

/**
 * Django's argon2 hasher writes the PHC string after its own name (`argon2$argon2id$v=19$...`): the PHC string it
 * marks, or the stored value as it is.
 */
function phcString(stored: string): string {
  return stored.startsWith(DJANGO_ARGON2) ? stored.slice(DJANGO_ARGON2.length - 1) : stored
}

const DJANGO_ARGON2 = 'argon2$'

/**
 * Why Gatehouse will not verify a stored hash (its cost is above HASH_COST_CEILING, or PBKDF2_MAX_WORK for an imported
 * PBKDF2 hash: src/directory/pbkdf2-hashes.ts); undefined when it will.
 */
export function hashCostRefusal(hash: string): string | undefined {
  if (isPbkdf2Hash(hash)) return pbkdf2Refusal(hash)
  const parameters = hashParameters(phcString(hash))
  // No match whatever the password, and nothing to run: what the hashing thread would make of it is not known here.
  if (!parameters) return 'it is not an argon2 hash Gatehouse can read'
  const { memoryCost, timeCost, parallelism } = parameters
  const ceiling = HASH_COST_CEILING
  if (memoryCost <= ceiling.memoryCost && parallelism <= ceiling.parallelism && memoryCost * timeCost <= ceiling.work) return undefined
  return `its cost (${memoryCost} KiB, ${timeCost} passes, ${parallelism} lanes) is above the most Gatehouse verifies `
    + `(${ceiling.memoryCost} KiB, ${ceiling.parallelism} lanes, ${ceiling.work} KiB × passes)`
}

/**
 * Whether a stored hash was made otherwise than Gatehouse makes its own (another variant, version, cost, salt or
 * output length): replaced at the next sign-in that proves its password, as Django's hashers `must_update`.
 */
export function hashNeedsUpdate(hash: string): boolean {
  if (isPbkdf2Hash(hash) || hash.startsWith(DJANGO_ARGON2)) return true
  const parameters = hashParameters(hash)
  if (!parameters) return false
  const { algorithm, version, memoryCost, timeCost, parallelism, outputLen, saltLen } = parameters
  return algorithm !== ARGON2ID.algorithm || version !== OWN_HASH.version || memoryCost !== ARGON2ID.memoryCost
    || timeCost !== ARGON2ID.timeCost || parallelism !== ARGON2ID.parallelism || outputLen !== OWN_HASH.outputLen || saltLen !== OWN_HASH.saltLen
}

/** What else every hash Gatehouse makes has: argon2 version 0x13 (the addon's 1), a 16-byte salt, a 32-byte output. */
const OWN_HASH = { version: 1, saltLen: 16, outputLen: 32 }

/** A sign-in refused because its account's stored hash costs more than HASH_COST_CEILING. */
export interface RefusedHash {
  readonly userId: number
  readonly username: string
  /** hashCostRefusal's words: the hash's parameters, never the hash. */
  readonly reason: string
}

const refusedHashListeners = new Set<(refused: RefusedHash) => void>()

/** Told of each sign-in refused for its account's hash cost (the log listens); answers the function that stops telling. */
export function onRefusedHash(listener: (refused: RefusedHash) => void): () => void {
  refusedHashListeners.add(listener)
  return () => refusedHashListeners.delete(listener)
}

export function reportRefusedHash(refused: RefusedHash): void {
  for (const listener of refusedHashListeners) listener(refused)
}

export async function hashPassword(password: string): Promise<string> {
  return argon2Tasks.run(() => hashingThreads.hash(password))
}

/**
 * Whether the password is the hash's; a hash that does not parse is no match, nor is one above HASH_COST_CEILING,
 * which is not run: a check against it spends the time of one against a hash of Gatehouse's own. `signal`: the
 * check's client went away, so a check still waiting for its turn is dropped (PasswordCheckAbandoned). A queue
 * already full refuses the check (PasswordChecksBusy).
 */
export async function verifyPassword(passwordHash: string, password: string, signal?: AbortSignal): Promise<boolean> {
  if (hashCostRefusal(passwordHash)) return burnVerificationTime(password, signal).then(() => false)
  // Imported PBKDF2 hashes take the same queue and threads as argon2id: one path, so that an account's scheme shows in
  // a sign-in's time only through its cost.
  const pbkdf2 = isPbkdf2Hash(passwordHash) ? readPbkdf2Hash(passwordHash) : undefined
  return argon2Tasks.run(async () => {
    const match = pbkdf2
      ? await hashingThreads.verifyPbkdf2(pbkdf2, password, signal)
      : await hashingThreads.verify(phcString(passwordHash), password, signal)
    if (match === undefined) throw new PasswordCheckAbandoned()
    return match
  }, signal)
}

/**
 * What a check without an account's hash is verified against: the hash of a random password no one kept, with
 * ARGON2ID's parameters (test/directory/passwords.test.ts holds them the same), so that verifying against it costs
 * what verifying against an account's does. Written out rather than made at the first such check, which would hash
 * once more than a wrong password costs and tell, that once per process, a missing account from a wrong password.
 */
export const TIME_SPENDING_HASH = '$argon2id$v=19$m=19456,t=2,p=1$dXtvfx+i9eRcLi+ZsMCYog$6jstaOtQ0dc7lWTREQmkNMS2/mBkMRhaX99D4PcUJU0'

/**
 * Spends the same time as a real verification, for unknown users and empty passwords,
 * so a wrong password and a missing account cannot be told apart by timing.
 */
export async function burnVerificationTime(password: string, signal?: AbortSignal): Promise<void> {
  await verifyPassword(TIME_SPENDING_HASH, password, signal)
}
