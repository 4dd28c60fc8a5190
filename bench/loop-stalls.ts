/**
 * Loaded into a gateway by bench/tail-latency.ts (`NODE_OPTIONS=--import`): where the event loop's long turns come
 * from. A timer due every millisecond sees each turn that held it back more than STALL_MS, and the kernel says how much
 * of that time the thread ran (its CPU time), waited for a CPU while runnable (`/proc/thread-self/schedstat`), or slept
 * in a system call or on a lock (the rest), and whether a garbage collection ran in it. SIGUSR2 writes the counts since
 * the last signal as JSON to LOOP_STALLS_FILE and starts them afresh.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { constants, PerformanceObserver } from 'node:perf_hooks'

const STALL_MS = 5
const file = process.env.LOOP_STALLS_FILE!

/** What a gateway counted between two signals. */
export interface LoopStalls {
  stalls: number
  stalledMs: number
  /** Of the stalled time: the thread running (JavaScript, or a pause of the collector), waiting for a CPU, asleep. */
  runningMs: number
  queuedMs: number
  asleepMs: number
  /** Stalls during which a collection ran. */
  withGc: number
  scavenges: number
  scavengeMaxMs: number
  majors: number
  majorMaxMs: number
}

const fresh = (): LoopStalls => ({ stalls: 0, stalledMs: 0, runningMs: 0, queuedMs: 0, asleepMs: 0, withGc: 0, scavenges: 0, scavengeMaxMs: 0, majors: 0, majorMaxMs: 0 })
let counts = fresh()
/** Since the last signal, each stall's and each collection's [start, end]: a collection is reported after it ended. */
let stalled: [number, number][] = []
let collected: [number, number][] = []

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (collected.length < 100_000) collected.push([entry.startTime, entry.startTime + entry.duration])
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      counts.scavenges++
      counts.scavengeMaxMs = Math.max(counts.scavengeMaxMs, entry.duration)
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      counts.majors++
      counts.majorMaxMs = Math.max(counts.majorMaxMs, entry.duration)
    }
  }
}).observe({ entryTypes: ['gc'] })

const queuedMs = (): number => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]) / 1e6
const cpuMs = (): number => {
  const { user, system } = process.threadCpuUsage()
  return (user + system) / 1000
}

let last = { at: performance.now(), cpu: cpuMs(), queued: queuedMs() }
setInterval(() => {
  const now = { at: performance.now(), cpu: cpuMs(), queued: queuedMs() }
  const wall = now.at - last.at
  if (wall > STALL_MS) {
    const running = Math.min(wall, now.cpu - last.cpu)
    const queued = Math.min(wall - running, now.queued - last.queued)
    counts.stalls++
    counts.stalledMs += wall
    counts.runningMs += running
    counts.queuedMs += queued
    counts.asleepMs += wall - running - queued
    if (stalled.length < 100_000) stalled.push([last.at, now.at])
  }
  last = now
}, 1).unref()

process.on('SIGUSR2', () => {
  counts.withGc = stalled.filter(([start, end]) => collected.some(([from, to]) => from < end && to > start)).length
  writeFileSync(file, JSON.stringify(counts))
  counts = fresh()
  stalled = []
  collected = []
})
