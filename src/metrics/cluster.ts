import cluster, { type Worker } from 'node:cluster'
import { randomUUID } from 'node:crypto'
import type { Registry } from 'prom-client'

/**
 * /metrics under `serve --workers`: the port hands each connection to one worker, so a scrape answered from that
 * worker's counts alone would see the counters go down and up as Prometheus's scrapes land on one worker, then another
 * (each taken for a counter reset, which makes rates wrong). The worker a scrape reaches asks the primary, which
 * collects every worker's metrics and sums them with prom-client's aggregation (as its AggregatorRegistry does,
 * which can only be asked from the primary), and answers with the whole.
 */

/** One worker's metrics, as prom-client's registry gives them for aggregation. */
type Metrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export type ClusterMessage =
  | { type: 'metrics-request'; id: string }
  | { type: 'metrics-collect'; id: string }
  | { type: 'metrics-part'; id: string; metrics: Metrics } | { type: 'metrics-part'; id: string; failed: true }
  | { type: 'metrics-answer'; id: string; contentType: string; text: string } | { type: 'metrics-answer'; id: string; error: true }

/** How long the primary waits for every worker's part, and a worker for the primary's answer. */
const COLLECT_MS = 2000
const ANSWER_MS = 5000

/** Whether this process is one of several workers whose metrics are answered together. */
export function clustered(): boolean {
  return cluster.isWorker
}

/** In a worker: answers the primary's collections with this worker's metrics. */
export function answerCollections(collect: () => Promise<Metrics>): void {
  process.on('message', (message: ClusterMessage) => {
    if (message?.type !== 'metrics-collect') return
    void collectedPart(message.id, collect).then((part) => process.send!(part))
  })
}

/** A worker's answer to a collection: its metrics, or that it could not collect them. */
export async function collectedPart(id: string, collect: () => Promise<Metrics>): Promise<ClusterMessage> {
  try {
    return { type: 'metrics-part', id, metrics: await collect() }
  } catch {
    return { type: 'metrics-part', id, failed: true }
  }
}

/** In a worker: the scrapes waiting for the primary's answer, by id; one listener answers them all. */
const awaitingAnswers = new Map<string, (message: Extract<ClusterMessage, { type: 'metrics-answer' }>) => void>()

function onAnswer(message: ClusterMessage): void {
  if (message?.type === 'metrics-answer') awaitingAnswers.get(message.id)?.(message)
}

/** In a worker: the metrics of every worker, summed by the primary. */
export function scrapeEveryWorker(): Promise<{ contentType: string; text: string }> {
  const id = randomUUID()
  if (!awaitingAnswers.size) process.on('message', onAnswer)
  return new Promise((resolve, reject) => {
    const done = (outcome: () => void) => {
      clearTimeout(timer)
      awaitingAnswers.delete(id)
      if (!awaitingAnswers.size) process.off('message', onAnswer)
      outcome()
    }
    const timer = setTimeout(() => done(() => reject(new Error('the primary did not answer with the workers\' metrics'))), ANSWER_MS)
    awaitingAnswers.set(id, (message) => done(() => ('error' in message ? reject(new Error('the primary could not collect the workers\' metrics')) : resolve(message))))
    process.send!({ type: 'metrics-request', id } satisfies ClusterMessage)
  })
}

/** The kinds of metric that count up: what a worker that is gone keeps adding to the sums. */
const COUNTING = new Set(['counter', 'histogram'])

/**
 * In the primary: collects every worker's metrics for the workers that ask, and sums them. The whole must never go
 * down while the gateway runs, or Prometheus takes it for a counter reset and counts everything again in its rates:
 * - a worker that does not answer within COLLECT_MS (starting, stopping, stuck), or could not collect its metrics, is
 *   counted at its last answer;
 * - a worker that is gone keeps its last answer's counters and histograms in the sums (its gauges go with it);
 * - scrapes asked while one collection is under way are answered with it, so that many at once cost one collection.
 */
export class ClusterScrapes {
  readonly #workers: () => Iterable<Worker>
  /** Each worker's latest answer. */
  readonly #lastParts = new Map<Worker, Metrics>()
  /** The counters and histograms of the workers that are gone: summed into one part as scrapes come. */
  #departed: Metrics[] = []
  #folding = false
  #collection: { id: string; waiting: Set<Worker>; requesters: { worker: Worker; id: string }[]; finish: () => void } | undefined

  constructor(workers: () => Iterable<Worker>) {
    this.#workers = workers
  }

  /** Every message a worker sends passes here; those not about metrics are left alone. */
  onMessage(from: Worker, message: ClusterMessage): void {
    if (message?.type === 'metrics-request') this.#ask(from, message.id)
    else if (message?.type === 'metrics-part') {
      const collection = this.#collection
      if (!collection || collection.id !== message.id || !collection.waiting.delete(from)) return
      // Empty, its counters would leave the sums for a scrape, which Prometheus takes for a reset: it is counted at its
      // last part, as one that did not answer in time.
      if ('metrics' in message) this.#lastParts.set(from, message.metrics)
      if (!collection.waiting.size) collection.finish()
    }
  }

  /** A worker exited: what it counted stays counted, from the next scrape on. */
  departed(worker: Worker): void {
    const last = this.#lastParts.get(worker)
    this.#lastParts.delete(worker)
    if (last) this.#departed.push(last.filter((metric) => COUNTING.has(String(metric.type))))
  }

  #ask(requester: Worker, id: string): void {
    if (this.#collection) {
      this.#collection.requesters.push({ worker: requester, id })
      return
    }
    const collectionId = randomUUID()
    const waiting = new Set([...this.#workers()].filter((worker) => worker.isConnected()))
    const collection = { id: collectionId, waiting, requesters: [{ worker: requester, id }], finish: () => {} }
    this.#collection = collection
    const timer = setTimeout(() => collection.finish(), COLLECT_MS)
    collection.finish = () => {
      clearTimeout(timer)
      if (this.#collection === collection) this.#collection = undefined
      void this.#answer(collection.requesters)
    }
    for (const worker of waiting) worker.send({ type: 'metrics-collect', id: collectionId } satisfies ClusterMessage, undefined, () => {})
    if (!waiting.size) collection.finish()
  }

  async #answer(requesters: { worker: Worker; id: string }[]): Promise<void> {
    let answer: { contentType: string; text: string } | undefined
    try {
      const { AggregatorRegistry } = await import('prom-client')
      const live = new Set(this.#workers())
      const parts = [...this.#lastParts].filter(([worker]) => live.has(worker)).map(([, part]) => part)
      // Those gone are folded into one part now and then, however many went; each stays counted while it is folded.
      if (this.#departed.length > 8 && !this.#folding) {
        this.#folding = true
        try {
          const gone = [...this.#departed]
          const folded = await AggregatorRegistry.aggregate(gone).getMetricsAsJSON()
          this.#departed = [folded, ...this.#departed.filter((part) => !gone.includes(part))]
        } finally {
          this.#folding = false
        }
      }
      const registry = AggregatorRegistry.aggregate([...parts, ...this.#departed])
      answer = { contentType: registry.contentType, text: await registry.metrics() }
    } catch {
      answer = undefined
    }
    for (const { worker, id } of requesters) {
      if (!worker.isConnected()) continue
      worker.send((answer ? { type: 'metrics-answer', id, ...answer } : { type: 'metrics-answer', id, error: true }) satisfies ClusterMessage, undefined, () => {})
    }
  }
}
