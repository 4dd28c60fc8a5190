import { randomFill } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { lowerHashingPriority } from '../directory/passwords.ts'

/**
 * How much lower than the event loop libuv's thread pool runs, in nice steps: at 10 a pool thread sharing a core
 * with the loop gets about a tenth of it (Linux's weights: 110 against 1024), and every cycle the loop leaves.
 */
export const POOL_NICE_STEP = 10

/** libuv's name for its pool threads (Linux's `comm`, as `ps -L` shows it). */
const POOL_THREAD_NAME = 'libuv-worker'

/**
 * The event loop first. Every request's JavaScript runs on one thread; the signatures of tokens (RSA, ECDSA), the
 * password hashes (argon2id) and the file system's calls run on libuv's pool, four threads whatever the machine.
 * On a machine with fewer cores than that, a burst of signatures takes an equal share of the CPU with the loop,
 * which then falls behind the work the pool could finish: on 2 cores the `refresh_token` grant signing RS256 served
 * 10-25% more requests with the pool at nice 10 than at the loop's own priority (the password grant, argon2id bound,
 * the same). The pool still has every cycle the loop does not want, so it waits only where the loop has work.
 *
 * A thread's nice is its own on Linux (setpriority with the thread's id), and lowering one's own threads needs no
 * privilege; elsewhere, or where it is refused, nothing changes. Resolves with how many threads were lowered.
 * The threads that hash passwords (src/directory/hashing-threads.ts) go as far down, now or when they start.
 */
export async function lowerThreadPoolPriority(step = POOL_NICE_STEP): Promise<number> {
  if (process.platform !== 'linux') return 0
  lowerHashingPriority(step)
  // libuv starts every pool thread at its first job: one tiny job makes sure they all exist.
  await new Promise<void>((resolve) => randomFill(Buffer.alloc(1), () => resolve()))
  let lowered = 0
  for (const thread of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${thread}/comm`, 'utf8').trim() !== POOL_THREAD_NAME) continue
      const id = Number(thread)
      setPriority(id, Math.min(19, getPriority(id) + step))
      lowered++
    } catch {
      // The thread ended, or the system refuses: the pool keeps the loop's priority.
    }
  }
  return lowered
}
