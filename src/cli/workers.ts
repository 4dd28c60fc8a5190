import cluster, { type Worker } from 'node:cluster'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pinConfigText } from '../config/pinned-texts.ts'
import { UsageError, withoutDatabase } from './common.ts'
import { releaseEarlyHangUps } from './early-hangups.ts'
import { ClusterScrapes, type ClusterMessage } from '../metrics/cluster.ts'

/**
 * `serve --workers N`: N gateway processes share the listening port (node:cluster hands each new connection to
 * one of them) and the database, through which they already keep each other's caches coherent, as separate
 * `serve` processes on one database do. The primary process only starts, replaces and stops the workers.
 * The first worker starts alone, so it alone migrates the database and creates the first administrator.
 */

type Message = { type: 'ready' } | { type: 'signal'; signal: NodeJS.Signals } | { type: 'configuration'; text: string }

/** Where a worker finds the configuration file's text its siblings run (the primary's copy of it). */
const RUNNING_CONFIGURATION = 'GATEHOUSE_WORKERS_CONFIGURATION'

/** Delay before a worker that died is replaced, so a worker that keeps crashing does not spin. */
const RESTART_DELAY_MS = 1000
/** The longest wait between tries of a replacement that keeps failing before it listens (the database away, say). */
const RESTART_DELAY_MAX_MS = 30_000

export function parseWorkers(value: string): number {
  if (value === 'auto') return availableParallelism()
  if (!/^\d{1,3}$/.test(value) || Number(value) < 1 || Number(value) > 256) throw new UsageError(`--workers (or GATEHOUSE_WORKERS) must be a number from 1 to 256 or "auto", got "${value}"`)
  return Number(value)
}

/** Whether this process is a worker of `serve --workers`. */
export function isWorker(): boolean {
  return cluster.isWorker
}

/** Whether this process prints what serve prints once: a single process, or the first worker. */
export function printsSummary(): boolean {
  return !cluster.isWorker || cluster.worker?.id === 1
}

/** Tells the primary this worker is listening. */
export function announceReady(): void {
  if (cluster.isWorker) process.send!({ type: 'ready' } satisfies Message)
}

/**
 * A worker reads its configuration file as the primary's copy says the workers run it, until it lets go (the function
 * returned), once it is started: a replacement for a worker that died then runs what its siblings run, not a file
 * edited since, or broken by an edit that their SIGHUP refused (with which it failed to start, again and again, until
 * none was left and the port was closed, while the primary, still running, looked well to a service manager).
 */
export function runningConfiguration(file: string | undefined): () => void {
  const copy = process.env[RUNNING_CONFIGURATION]
  if (!cluster.isWorker || file === undefined || copy === undefined) return () => {}
  pinConfigText(file, readFileSync(copy, 'utf8'))
  return () => pinConfigText(file, undefined)
}

/** Tells the primary the configuration file's text this worker now runs, read again on a SIGHUP: replacements start on it. */
export function announceConfiguration(text: string | undefined): void {
  if (cluster.isWorker && text !== undefined) process.send!({ type: 'configuration', text } satisfies Message)
}

/**
 * The primary's copy of the configuration file as its workers run it: the text it read at start, then each text a
 * worker took on a SIGHUP. In a directory of its own that only its user may read (the file may hold secrets), removed
 * when the primary exits.
 */
function runningConfigurationCopy(text: string | undefined): { env: Record<string, string>; update(text: string): void } {
  if (text === undefined) return { env: {}, update: () => {} }
  const directory = mkdtempSync(join(tmpdir(), 'gatehouse-workers-'))
  process.on('exit', () => rmSync(directory, { recursive: true, force: true }))
  const copy = join(directory, 'configuration.yaml')
  const update = (next: string) => {
    // Whole or not at all, for a worker starting as it changes.
    writeFileSync(`${copy}.next`, next, { mode: 0o600 })
    renameSync(`${copy}.next`, copy)
  }
  update(text)
  return { env: { [RUNNING_CONFIGURATION]: copy }, update }
}

/**
 * SIGHUP's default ends a process: one that came while serve starts (a certificate renewal's hook, a closed terminal)
 * stopped the start without a word. Held from the start of serve until its own handler is wired; the function
 * returned lets go of it and says whether one came meanwhile.
 */
export function holdHangUps(): () => boolean {
  let held = false
  const hold = () => {
    held = true
  }
  process.on('SIGHUP', hold)
  // What came before serve's first step, while its modules loaded (the preload's hold, src/cli/early-hangups.ts).
  if (releaseEarlyHangUps()) held = true
  return () => {
    process.off('SIGHUP', hold)
    return held
  }
}

/**
 * Wires serve's signal handling. A worker takes signals only from the primary: a Ctrl-C reaches every process of
 * the terminal's group, and the primary must know a stop from a crash to replace only crashed workers.
 */
export function onSignals(stop: (signal: NodeJS.Signals) => void, hangUp: () => void): void {
  if (!cluster.isWorker) {
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    // Also keeps a closed terminal (SIGHUP's default) from ending the gateway, as daemons that reload on it do.
    process.on('SIGHUP', hangUp)
    return
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined)
  process.on('message', (message: Message) => {
    if (message.type !== 'signal') return
    if (message.signal === 'SIGHUP') hangUp()
    else stop(message.signal)
  })
}

/**
 * The primary: starts the workers (the first alone), replaces one that dies while serving, passes signals on, and
 * exits when they all have. A worker that fails before it listens stops the whole start with its exit status.
 */
/** `configText`: the configuration file's text, as the primary read it; undefined without a file. */
export async function runWorkers(count: number, database: string | undefined, configText: string | undefined): Promise<void> {
  // The workers run with the primary's arguments but for --database: a process's arguments are readable by every
  // user of the machine, its environment by its own user only.
  cluster.setupPrimary({ args: withoutDatabase(process.argv.slice(2)) })
  const configuration = runningConfigurationCopy(configText)
  const env = { ...configuration.env, ...(database === undefined ? {} : { GATEHOUSE_DATABASE_URL: database }) }
  const workers = new Set<Worker>()
  const ready = new WeakSet<Worker>()
  /** Starting workers a SIGHUP came for: one may have read the TLS files before they were renewed. */
  const hungUpWhileStarting = new WeakSet<Worker>()
  let stopping = false
  const scrapes = new ClusterScrapes(() => [...workers].filter((worker) => ready.has(worker)))

  const exitWhenAllGone = () => {
    if (workers.size === 0) process.exit(process.exitCode ?? 0)
  }
  // A worker that has just died is still in `workers` until its exit is handled, with its channel already closed:
  // a message sent to it then is an 'error' event on the worker, which, unheard, would end the primary and every
  // other worker with it. Its exit handler replaces it; the signal was for a process that is gone anyway.
  const tell = (worker: Worker, message: Message) => {
    if (worker.isConnected()) worker.send(message, undefined, () => {})
  }
  const stopAll = (signal: NodeJS.Signals) => {
    stopping = true
    for (const worker of workers) {
      tell(worker, { type: 'signal', signal })
      // One still starting may not listen for the primary yet; until it does, the signal's default ends it.
      if (!ready.has(worker)) worker.process.kill('SIGTERM')
    }
    exitWhenAllGone()
  }

  function start(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const worker = cluster.fork(env)
      workers.add(worker)
      worker.on('error', () => {})
      worker.on('message', (message: Message | ClusterMessage) => {
        scrapes.onMessage(worker, message as ClusterMessage)
        if (message.type === 'configuration') configuration.update(message.text)
        if (message.type !== 'ready') return
        ready.add(worker)
        if (hungUpWhileStarting.has(worker)) tell(worker, { type: 'signal', signal: 'SIGHUP' })
        resolve(worker)
      })
      worker.on('exit', (code, signal) => {
        workers.delete(worker)
        scrapes.departed(worker)
        if (!ready.has(worker)) {
          reject(new WorkerFailed(code ?? 1))
        } else if (!stopping) {
          process.stderr.write(`gatehouse: worker ${worker.process.pid} exited (${signal ?? `status ${code}`}); starting another\n`)
          replace(RESTART_DELAY_MS)
        }
        if (stopping) exitWhenAllGone()
      })
    })
  }

  /**
   * Starts a worker in place of one that died while serving. A replacement that fails before it listens is tried
   * again, each time after twice the wait: abandoning it left a primary that had lost its workers while the
   * database was away running with no worker and the port closed for good, where a supervisor sees nothing wrong.
   */
  function replace(delayMs: number): void {
    setTimeout(() => {
      if (stopping) return
      start().catch((error: unknown) => {
        if (stopping) return
        const nextMs = Math.min(delayMs * 2, RESTART_DELAY_MAX_MS)
        process.stderr.write(`gatehouse: ${(error as Error).message}; trying again in ${nextMs / 1000} s\n`)
        replace(nextMs)
      })
    }, delayMs)
  }

  process.on('SIGINT', stopAll)
  process.on('SIGTERM', stopAll)
  // A worker hears the primary once it is ready: one still starting is told then.
  process.on('SIGHUP', () => {
    for (const worker of workers) {
      if (ready.has(worker)) tell(worker, { type: 'signal', signal: 'SIGHUP' })
      else hungUpWhileStarting.add(worker)
    }
  })
  try {
    await start()
    // A stop that came while the first worker started: the rest would start after it and hear of it from no one.
    if (stopping) return
    await Promise.all(Array.from({ length: count - 1 }, start))
  } catch (error) {
    // A worker ended by the stop itself before it listened has not failed: the stop asked for the exit.
    if (stopping) return
    process.exitCode = error instanceof WorkerFailed ? error.status : 1
    stopAll('SIGTERM')
  }
}

class WorkerFailed extends Error {
  readonly status: number
  constructor(status: number) {
    super(`a worker exited with status ${status} before it was listening`)
    this.status = status
  }
}
