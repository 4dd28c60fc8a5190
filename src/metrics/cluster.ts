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
  | { type: 'metrics-part'; id: string; metrics: Metrics }
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
    collect().then(
      (metrics) => process.send!({ type: 'metrics-part', id: message.id, metrics } satisfies ClusterMessage),
      () => process.send!({ type: 'metrics-part', id: message.id, metrics: [] } satisfies ClusterMessage),
    )
  })
}

/** In a worker: the metrics of every worker, summed by the primary. */
export function scrapeEveryWorker(): Promise<{ contentType: string; text: string }> {
  const id = randomUUID()
  return new Promise((resolve, reject) => {
    const done = (outcome: () => void) => {
      clearTimeout(timer)
      process.off('message', onMessage)
      outcome()
    }
    const onMessage = (message: ClusterMessage) => {
      if (message?.type !== 'metrics-answer' || message.id !== id) return
      done(() => ('error' in message ? reject(new Error('the primary could not collect the workers\' metrics')) : resolve(message)))
    }
    const timer = setTimeout(() => done(() => reject(new Error('the primary did not answer with the workers\' metrics'))), ANSWER_MS)
    process.on('message', onMessage)
    process.send!({ type: 'metrics-request', id } satisfies ClusterMessage)
  })
}

/**
 * In the primary: collects every worker's metrics for the worker that asks, waiting at most COLLECT_MS for each (a
 * worker that is starting, stopping or stuck is left out of that scrape).
 */
export class ClusterScrapes {
  readonly #workers: () => Iterable<Worker>
  readonly #collecting = new Map<string, { waiting: Set<Worker>; parts: Metrics[]; finish: () => void }>()

  constructor(workers: () => Iterable<Worker>) {
    this.#workers = workers
  }

  /** Every message a worker sends passes here; those not about metrics are left alone. */
  onMessage(from: Worker, message: ClusterMessage): void {
    if (message?.type === 'metrics-request') void this.#collect(from, message.id)
    else if (message?.type === 'metrics-part') {
      const collection = this.#collecting.get(message.id)
      if (!collection || !collection.waiting.delete(from)) return
      collection.parts.push(message.metrics)
      if (!collection.waiting.size) collection.finish()
    }
  }

  async #collect(requester: Worker, id: string): Promise<void> {
    const waiting = new Set([...this.#workers()].filter((worker) => worker.isConnected()))
    const parts: Metrics[] = []
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => finish(), COLLECT_MS)
      const finish = () => {
        clearTimeout(timer)
        this.#collecting.delete(id)
        resolve()
      }
      this.#collecting.set(id, { waiting, parts, finish })
      for (const worker of waiting) worker.send({ type: 'metrics-collect', id } satisfies ClusterMessage)
      if (!waiting.size) finish()
    })
    let answer: ClusterMessage
    try {
      const { AggregatorRegistry } = await import('prom-client')
      const registry = AggregatorRegistry.aggregate(parts)
      answer = { type: 'metrics-answer', id, contentType: registry.contentType, text: await registry.metrics() }
    } catch {
      answer = { type: 'metrics-answer', id, error: true }
    }
    if (requester.isConnected()) requester.send(answer)
  }
}
