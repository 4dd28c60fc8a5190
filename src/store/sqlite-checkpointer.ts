import { once } from 'node:events'
import { statSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'

/**
 * Writes a process makes within WRITE_WINDOW_MS before it starts the checkpointer: an idle or read-mostly gateway
 * never pays for a thread, nor does the heartbeat every process writes each second (src/store/event-bus.ts).
 */
export const WRITES_BEFORE_CHECKPOINTER = 300
const WRITE_WINDOW_MS = 60_000
/** SQLite's own default, restored whenever the checkpointer is not (or no longer) running; past it, the worker makes the WAL start over. */
const AUTOCHECKPOINT_PAGES = 1000
/** How often the worker checkpoints while there are writes, and while there are none (then it is a cheap no-op). */
const BUSY_INTERVAL_MS = 200
const IDLE_INTERVAL_MS = 2000
/** Before a RESTART, passive passes repeat (up to this many more) until one has little left to copy. */
const MAX_EXTRA_PASSES = 4
const SHORT_COPY_FRAMES = 100
/**
 * Writes that outpace the copying get a RESTART anyway once the WAL is this long (~40 MB), holding them back a moment;
 * writes that leave it no moment to take the write lock get the commits' own checkpoints back until the WAL starts over.
 */
export const MAX_WAL_FRAMES = 10 * AUTOCHECKPOINT_PAGES
/**
 * The main thread's own bound, for when the worker falls behind without saying so (its thread starved of CPU, or
 * stuck in a sync): past this many frames, the commits checkpoint again until the worker reports the WAL caught up.
 */
const MAX_WAL_FRAMES_UNWATCHED = MAX_WAL_FRAMES * 1.25
/** Every this many writes, the main thread looks at the WAL's size (one stat: about a microsecond). */
const WRITES_PER_WAL_CHECK = 64
/** A WAL file's header, and each frame's before its page. */
const WAL_HEADER_BYTES = 32
const WAL_FRAME_HEADER_BYTES = 24
/** How long a RESTART waits for the write lock (a PASSIVE never waits). */
const RESTART_WAIT_MS = 20
/** How long closing waits for the worker to finish its checkpoint and close its connection before it is terminated. */
const STOP_WAIT_MS = 1000

/**
 * SQLite's automatic checkpoint runs inside whichever commit crosses 1000 WAL pages, on the event loop: it copies the
 * pages into the database file and fsyncs, stalling every request for milliseconds. This moves that work to a worker
 * thread with a connection of its own, started once the process writes enough to need it, while the main
 * connection's automatic checkpoint is off. Whenever the worker is not running (not yet, failed, stopped) or has let
 * the WAL grow too long, the main connection checkpoints automatically again, so the WAL never grows without bound.
 * Each process on a file runs its own; SQLite serialises their checkpoints (one that finds another under way skips).
 */
export class SqliteCheckpointer {
  readonly #main: DatabaseSync
  readonly #file: string
  #writes = 0
  #windowStart = 0
  #started = false
  #worker: Worker | undefined
  #stopped = false
  /** Whether the main connection's commits checkpoint (SQLite's default), or leave it to the worker. */
  #commitsCheckpoint = true
  #writesSinceWalCheck = 0
  readonly #walFile: string
  #maxUnwatchedWalBytes = Infinity

  constructor(main: DatabaseSync, file: string) {
    this.#main = main
    this.#file = file
    this.#walFile = `${file}-wal`
  }

  /**
   * Counts a write; the one that reaches the threshold within the window starts the worker. Once it runs, every
   * WRITES_PER_WAL_CHECK writes look at the WAL's size, and give the checkpoints back to the commits when the
   * worker let it grow past MAX_WAL_FRAMES_UNWATCHED.
   */
  wrote(): void {
    if (this.#started) {
      if (!this.#commitsCheckpoint && ++this.#writesSinceWalCheck >= WRITES_PER_WAL_CHECK) this.#checkWal()
      return
    }
    const now = Date.now()
    if (now - this.#windowStart > WRITE_WINDOW_MS) {
      this.#windowStart = now
      this.#writes = 0
    }
    if (++this.#writes === WRITES_BEFORE_CHECKPOINTER && !this.#stopped) {
      this.#started = true
      this.#start()
    }
  }

  /** The worker thread, once started (until then, and after a failed start, none). */
  get worker(): Worker | undefined {
    return this.#worker
  }

  #start(): void {
    let worker: Worker
    try {
      const { page_size: pageSize } = this.#main.prepare('PRAGMA page_size').get() as { page_size: number }
      const frameBytes = pageSize + WAL_FRAME_HEADER_BYTES
      // SQLite reuses a WAL from its start, never shrinking the file on its own: past a burst, the first commit after
      // the WAL starts over truncates it to this. So the disk is given back, and the file's size tells how long the
      // current WAL is whenever it is longer than this.
      this.#main.exec(`PRAGMA journal_size_limit = ${WAL_HEADER_BYTES + MAX_WAL_FRAMES * frameBytes}`)
      this.#maxUnwatchedWalBytes = WAL_HEADER_BYTES + MAX_WAL_FRAMES_UNWATCHED * frameBytes
      // Without the process's flags: its preloaded module hooks are for the dependencies, which the worker never loads.
      worker = new Worker(new URL(import.meta.url), { workerData: { checkpointerFile: this.#file }, execArgv: [] })
    } catch {
      return
    }
    this.#worker = worker
    worker.on('message', (report: WorkerReport) => {
      if (!this.#stopped) this.#autocheckpoint(report === 'behind' ? AUTOCHECKPOINT_PAGES : 0)
    })
    // An error also ends the worker: 'exit' follows and restores the automatic checkpoint.
    worker.on('error', () => {})
    worker.on('exit', () => this.#autocheckpoint(AUTOCHECKPOINT_PAGES))
    // Never what keeps a process running; after the listeners, as adding a 'message' one refs the worker again.
    worker.unref()
  }

  #checkWal(): void {
    this.#writesSinceWalCheck = 0
    let size: number
    try {
      size = statSync(this.#walFile, { throwIfNoEntry: false })?.size ?? 0
    } catch {
      // Not the write's failure: the worker's own bound still holds, and the next check may see the file.
      return
    }
    if (size <= this.#maxUnwatchedWalBytes) return
    this.#autocheckpoint(AUTOCHECKPOINT_PAGES)
    // So that it reports the WAL caught up once it has started over, which hands the checkpoints back to it.
    this.#worker?.postMessage('behind')
  }

  #autocheckpoint(pages: number): void {
    if (!this.#main.isOpen) return
    this.#main.exec(`PRAGMA wal_autocheckpoint = ${pages}`)
    this.#commitsCheckpoint = pages > 0
  }

  /** Ends the worker (a checkpoint in progress finishes first) and waits for it, at most STOP_WAIT_MS. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const worker = this.#worker
    if (!worker) return
    this.#autocheckpoint(AUTOCHECKPOINT_PAGES)
    const exited = once(worker, 'exit').then(() => true)
    // Held by the (bounded) wait, so a process ending with the close still lets the worker close its connection.
    worker.ref()
    worker.postMessage('stop')
    let timer: NodeJS.Timeout | undefined
    const gaveUp = new Promise<false>((resolve) => { timer = setTimeout(resolve, STOP_WAIT_MS, false) })
    const finished = await Promise.race([exited, gaveUp])
    clearTimeout(timer)
    // Not waited for: a thread stuck in a system call may take long to end, and closing must not hang on it.
    if (!finished) void worker.terminate()
  }
}

/**
 * One row of `PRAGMA wal_checkpoint`: frames in the WAL, how many of them are in the database file now, and `busy` 1
 * when a lock it needed (a RESTART's) was held by another connection too long.
 */
type Checkpoint = { log: number; checkpointed: number; busy: number }
/**
 * What the worker tells the main thread: its connection is open and it checkpoints from now on ('ready'), the WAL
 * outgrows it ('behind'), or is back to a usual size ('caught-up').
 */
type WorkerReport = 'ready' | 'behind' | 'caught-up'

/**
 * The worker's side: its own connection to the file, checkpointing until told to stop. PASSIVE copies what it can
 * without waiting for anyone. It never lets the WAL start over, though: the next write does that, and only if it
 * finds every frame copied, which under writes that never pause one landing mid-checkpoint always prevents. So once
 * the WAL is past SQLite's usual size, a RESTART follows: it copies the few frames committed meanwhile while holding
 * the write lock, so the next write starts the WAL over. It waits for the lock a moment at most: a write that takes
 * longer makes it a passive one, and a reader still in the WAL makes it try again next time.
 */
function checkpointUntilStopped(file: string, port: NonNullable<typeof parentPort>): void {
  const db = new DatabaseSync(file)
  db.exec(`PRAGMA busy_timeout = ${RESTART_WAIT_MS}`)
  // The checkpoint syncs as the main connection's commits do.
  db.exec('PRAGMA synchronous = NORMAL')
  const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
  const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)')
  let lastLog = -1
  let behind = false
  let timer: NodeJS.Timeout | undefined
  const run = () => {
    let { log, checkpointed } = passive.get() as Checkpoint
    if (log > AUTOCHECKPOINT_PAGES) {
      // Each pass copies what the writes added during the one before, fewer every time (unless writes outpace the
      // copying), so the write lock is held for a short last copy only.
      let copied = log
      for (let pass = 0; pass < MAX_EXTRA_PASSES && copied > SHORT_COPY_FRAMES; pass++) {
        const before = checkpointed
        ;({ log, checkpointed } = passive.get() as Checkpoint)
        copied = checkpointed - before
      }
      const restarted = (copied <= SHORT_COPY_FRAMES || log > MAX_WAL_FRAMES) && (restart.get() as Checkpoint).busy === 0
      if (!behind && log > MAX_WAL_FRAMES && !restarted) report('behind')
    }
    if (behind && log <= AUTOCHECKPOINT_PAGES) report('caught-up')
    // -1: the checkpoint could not even read the WAL (a write had its header locked), which is no sign of idleness.
    const idle = log >= 0 && log === lastLog && checkpointed === log
    lastLog = log
    timer = setTimeout(run, idle ? IDLE_INTERVAL_MS : BUSY_INTERVAL_MS)
  }
  port.on('message', (message) => {
    // The main thread found the WAL too long and gave the checkpoints to the commits: told once it has started over.
    if (message === 'behind') behind = true
    if (message !== 'stop') return
    clearTimeout(timer)
    db.close()
    port.close()
  })
  const report = (message: WorkerReport) => {
    behind = message === 'behind'
    port.postMessage(message)
  }
  report('ready')
  run()
}

if (!isMainThread && parentPort && typeof workerData?.checkpointerFile === 'string') {
  checkpointUntilStopped(workerData.checkpointerFile, parentPort)
}
