import type { Options } from '@node-rs/argon2'
import { Worker } from 'node:worker_threads'
import { PasswordCheckFailed } from '../errors.ts'
import type { Pbkdf2Hash } from './pbkdf2-hashes.ts'

/**
 * argon2id on threads of its own, one per core, each hashing one password at a time and holding the next job while
 * it hashes. On libuv's thread pool (where @node-rs/argon2's async functions run) a finished hash's place went to
 * the next check only once the event loop had taken its answer, so a hash that ended while the loop was busy issuing
 * another grant's tokens waited for the loop; and the pool's threads, busy hashing, also took the token signatures.
 * Here a thread that finishes a hash starts the job it holds at once, and the pool keeps the signatures.
 * docs/performance.md (the password grant) has the measurements.
 *
 * A job whose client goes away before its thread starts it (`signal`) is skipped: a flag per job place, shared with
 * the thread, which reads it just before it hashes. A thread that has had no job for `idleMs` ends, giving back
 * its memory (a V8 isolate of its own: about 11 MB); the next job starts one again.
 *
 * A thread that takes longer than `jobTimeoutMs` over one job (a thread that hangs; a stored hash above the cost
 * Gatehouse verifies is never handed over: passwords.ts HASH_COST_CEILING), or that exits, fails the job it was at with PasswordCheckFailed and is put aside; the job it held behind
 * that one, and the next job, go to a fresh thread, so that a stuck one cannot keep its jobs' places, and every check
 * queued behind them, forever. A thread stuck in the native hash cannot be stopped before that returns; it is told
 * to end, and ends when it does.
 */
export class HashingThreads {
  /** How many jobs a thread holds at most: the one it hashes and the next. */
  static readonly JOBS_PER_THREAD = 2
  /**
   * How long one job may take, from its thread's start of it. A verification takes a few tens of milliseconds of a
   * core; at the lowest priority (src/cli/pool-priority.ts) on a machine busy with other work, a few seconds.
   */
  static readonly JOB_TIMEOUT_MS = 30_000

  readonly size: number
  readonly #options: Options
  readonly #idleMs: number
  /** What threads started from now on run: the real thread, unless a test wants one that misbehaves when told to. */
  script: URL
  /** HashingThreads.JOB_TIMEOUT_MS, unless a test wants a thread put aside sooner. */
  jobTimeoutMs = HashingThreads.JOB_TIMEOUT_MS
  readonly #threads: HashingThread[] = []
  /** Hashes made and passwords verified, by every thread, counted by the threads themselves. */
  readonly #hashed = new Int32Array(new SharedArrayBuffer(4))
  readonly #putAsideListeners = new Set<(reason: string) => void>()
  #nice: number | undefined

  /** `script`: what each thread runs; a test's runs the real one and misbehaves when told to. */
  constructor(size: number, options: Options, idleMs = 60_000, script = new URL('./hashing-thread.js', import.meta.url)) {
    this.size = size
    this.#options = options
    this.#idleMs = idleMs
    this.script = script
  }

  /** The threads running now. */
  get running(): number {
    return this.#threads.filter((thread) => !thread.ended).length
  }

  /**
   * The nice value the threads hash at (undefined: the thread that starts them gives them its own), now and from
   * their start: `serve` puts them with libuv's pool, below the event loop (src/cli/pool-priority.ts).
   */
  setNice(nice: number): void {
    this.#nice = nice
    for (const thread of this.#threads) thread.setNice(nice)
  }

  /** Told, with the reason, of each thread put aside; answers the function that stops telling this listener. */
  onPutAside(listener: (reason: string) => void): () => void {
    this.#putAsideListeners.add(listener)
    return () => this.#putAsideListeners.delete(listener)
  }

  /** The hashes made and passwords verified so far (skipped jobs not counted), up to this moment, event loop or not. */
  get hashed(): number {
    return Atomics.load(this.#hashed, 0)
  }

  /** Whether `password` is the hash's; a hash that does not parse is no match. Undefined: abandoned before it started. */
  verify(hash: string, password: string, signal?: AbortSignal): Promise<boolean | undefined> {
    return this.#thread().run({ op: 'verify', hash, password }, signal) as Promise<boolean | undefined>
  }

  /** Whether `password` is an imported PBKDF2 hash's (src/directory/pbkdf2-hashes.ts). Undefined: abandoned before it started. */
  verifyPbkdf2(hash: Pbkdf2Hash, password: string, signal?: AbortSignal): Promise<boolean | undefined> {
    return this.#thread().run({ op: 'pbkdf2', hash, password }, signal) as Promise<boolean | undefined>
  }

  async hash(password: string): Promise<string> {
    return await this.#thread().run({ op: 'hash', password }) as string
  }

  /**
   * The thread with the fewest jobs, started if need be (an idle process has none). Callers hand over at most
   * `size * JOBS_PER_THREAD` jobs at once, so none holds more than JOBS_PER_THREAD.
   */
  #thread(): HashingThread {
    let best: HashingThread | undefined
    let live = 0
    for (const thread of this.#threads) {
      if (thread.ended) continue
      live++
      if (!best || thread.jobs < best.jobs) best = thread
    }
    if (best && (best.jobs === 0 || live >= this.size)) return best
    const fresh = new HashingThread(this.script, {
      options: this.#options,
      nice: this.#nice,
      hashed: this.#hashed,
      idleMs: this.#idleMs,
      jobTimeoutMs: this.jobTimeoutMs,
      putAside: (reason) => {
        for (const listener of this.#putAsideListeners) listener(reason)
      },
      runElsewhere: (job, signal) => this.#thread().run(job, signal),
    })
    const ended = this.#threads.findIndex((thread) => thread.ended)
    if (ended === -1) this.#threads.push(fresh)
    else this.#threads[ended] = fresh
    return fresh
  }
}

/** The threads' name, as `ps -L` and /proc/<pid>/task/<tid>/comm show it. */
export const HASHING_THREAD_NAME = 'argon2id'

/** What a thread is told, and answers (src/directory/hashing-thread.js). */
type Job = { op: 'verify'; hash: string; password: string } | { op: 'pbkdf2'; hash: Pbkdf2Hash; password: string } | { op: 'hash'; password: string }
type Message = (Job & { id: number; place: number }) | { op: 'nice'; nice: number }
type Reply = { id: number; result?: boolean | string; error?: string; abandoned?: true }
interface Pending { job: Job; signal: AbortSignal | undefined; resolve: (value: unknown) => void; reject: (error: Error) => void; settled: () => void }

class HashingThread {
  readonly #worker: Worker
  /** One flag per job place: 1 tells the thread to skip the job in that place. */
  readonly #abandoned = new Int32Array(new SharedArrayBuffer(4 * HashingThreads.JOBS_PER_THREAD))
  readonly #pending = new Map<number, Pending>()
  readonly #idleMs: number
  readonly #jobTimeoutMs: number
  readonly #putAside: (reason: string) => void
  readonly #runElsewhere: (job: Job, signal: AbortSignal | undefined) => Promise<unknown>
  #idle: NodeJS.Timeout | undefined
  /** When the job the thread is at (the oldest pending) has taken too long. */
  #overdue: NodeJS.Timeout | undefined
  #nextId = 0
  /** Started, so that its first job's bound does not count a start slowed by a busy machine. */
  #online = false
  ended = false

  constructor(script: URL, settings: { options: Options; nice: number | undefined; hashed: Int32Array; idleMs: number; jobTimeoutMs: number; putAside: (reason: string) => void; runElsewhere: (job: Job, signal: AbortSignal | undefined) => Promise<unknown> }) {
    const { options, nice, hashed } = settings
    this.#idleMs = settings.idleMs
    this.#jobTimeoutMs = settings.jobTimeoutMs
    this.#putAside = settings.putAside
    this.#runElsewhere = settings.runElsewhere
    // Without the process's flags: its preloaded module hooks are for the dependencies, which the thread never loads.
    this.#worker = new Worker(script, {
      workerData: { hashingThread: { options, nice, abandoned: this.#abandoned, hashed } },
      execArgv: [],
      name: HASHING_THREAD_NAME,
    })
    this.#worker.on('message', (reply: Reply) => {
      const job = this.#pending.get(reply.id)
      if (!job) return
      this.#pending.delete(reply.id)
      job.settled()
      clearTimeout(this.#overdue)
      if (reply.error !== undefined) job.reject(new Error(reply.error))
      else job.resolve(reply.abandoned ? undefined : reply.result)
      // The thread answers its jobs in order: it starts the next one now.
      if (this.#pending.size) this.#watch()
      else this.#rest()
    })
    this.#worker.once('online', () => {
      this.#online = true
      if (this.#pending.size) this.#watch()
    })
    this.#worker.on('error', (error) => this.#end(`it failed: ${error.message}`))
    this.#worker.on('exit', (code) => this.#end(`it exited with code ${code}`))
    // After the listeners, as adding a 'message' one refs the worker.
    this.#rest()
  }

  /**
   * Fails the job the thread was at, and hands the jobs waiting behind it to another thread (they did nothing wrong,
   * and were never started): this one takes no more. Once only: a thread that ends on its own (idle) or was put
   * aside already exits afterwards.
   */
  #end(reason: string): void {
    if (this.ended) return
    this.ended = true
    this.#putAside(reason)
    const error = new PasswordCheckFailed({ cause: new Error(`a hashing thread was put aside: ${reason}`) })
    clearTimeout(this.#idle)
    clearTimeout(this.#overdue)
    // The thread answers its jobs in order: the oldest is the one it was at.
    let atWork = true
    for (const pending of this.#pending.values()) {
      pending.settled()
      if (atWork) pending.reject(error)
      else if (pending.signal?.aborted) pending.resolve(undefined)
      else this.#runElsewhere(pending.job, pending.signal).then(pending.resolve, pending.reject)
      atWork = false
    }
    this.#pending.clear()
  }

  /** Puts the thread aside if the job it is at now takes longer than its bound. */
  #watch(): void {
    this.#overdue = setTimeout(() => {
      this.#end(`it took more than ${this.#jobTimeoutMs} ms over one job`)
      void this.#worker.terminate()
    }, this.#jobTimeoutMs)
    this.#overdue.unref()
  }

  /** Without a job: never what keeps the process running, and ended once idle for long. */
  #rest(): void {
    this.#worker.unref()
    this.#idle = setTimeout(() => {
      this.ended = true
      void this.#worker.terminate()
    }, this.#idleMs)
    this.#idle.unref()
  }

  get jobs(): number {
    return this.#pending.size
  }

  setNice(nice: number): void {
    if (!this.ended) this.#worker.postMessage({ op: 'nice', nice } satisfies Message)
  }

  run(job: Job, signal?: AbortSignal): Promise<unknown> {
    const id = this.#nextId++
    // The job that had this place before was answered: a thread answers its jobs in order and holds at most this many.
    const place = id % HashingThreads.JOBS_PER_THREAD
    Atomics.store(this.#abandoned, place, 0)
    clearTimeout(this.#idle)
    return new Promise((resolve, reject) => {
      const abandon = () => Atomics.store(this.#abandoned, place, 1)
      signal?.addEventListener('abort', abandon, { once: true })
      this.#pending.set(id, { job, signal, resolve, reject, settled: () => signal?.removeEventListener('abort', abandon) })
      if (this.#pending.size === 1 && this.#online) this.#watch()
      this.#worker.ref()
      this.#worker.postMessage({ ...job, id, place } satisfies Message)
    })
  }
}
