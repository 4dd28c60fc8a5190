import assert from 'node:assert/strict'
import type { Worker } from 'node:cluster'
import { describe, it } from 'node:test'
import { Counter, Gauge, Registry } from 'prom-client'
import { ClusterScrapes, collectedPart, type ClusterMessage } from '../../src/metrics/cluster.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'

/**
 * A worker as the primary sees it: it answers collections with a counter of `count()` and a gauge, as a worker's
 * answer is made (`collectedPart`), and keeps the answers it is sent. While `failing()`, its collection throws.
 */
function fakeWorker(scrapes: () => ClusterScrapes, count: () => number, failing: () => boolean = () => false): Worker & { answers: ClusterMessage[] } {
  const registry = new Registry()
  const counter = new Counter({ name: 'requests_total', help: 'requests', registers: [registry] })
  const gauge = new Gauge({ name: 'in_flight', help: 'in flight', registers: [registry] })
  const answers: ClusterMessage[] = []
  const worker = {
    answers,
    isConnected: () => true,
    send(message: ClusterMessage, _handle?: unknown, done?: () => void) {
      if (message.type === 'metrics-collect') {
        counter.reset()
        counter.inc(count())
        gauge.set(1)
        const collect = () => failing() ? Promise.reject(new Error('a gauge could not be read')) : registry.getMetricsAsJSON()
        void collectedPart(message.id, collect).then((part) => scrapes().onMessage(worker as never, part))
      } else answers.push(message)
      done?.()
      return true
    },
  }
  return worker as never
}

/** Asks for a scrape as `requester`, and reads the summed counter and gauge from the answer. */
async function scrape(scrapes: ClusterScrapes, requester: Worker & { answers: ClusterMessage[] }): Promise<{ requests: number; inFlight: number }> {
  const before = requester.answers.length
  scrapes.onMessage(requester, { type: 'metrics-request', id: `scrape-${before}` })
  for (let i = 0; i < 200 && requester.answers.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const answer = requester.answers.at(-1)!
  assert.ok(answer.type === 'metrics-answer' && 'text' in answer, 'answered')
  const samples = parseScrape(answer.text)
  return { requests: sampleValue(samples, 'requests_total'), inFlight: sampleValue(samples, 'in_flight') }
}

describe('the primary\'s sums of the workers\' metrics', () => {
  it('keep every worker that exited counted, however many, and never go down; their gauges go with them', async () => {
    const live = new Set<Worker & { answers: ClusterMessage[] }>()
    const scrapes = new ClusterScrapes(() => live)
    let served = 0
    const start = () => {
      const worker = fakeWorker(() => scrapes, () => 10)
      live.add(worker)
      return worker
    }
    const asker = start()
    let last = 0
    // Twenty workers in turn: each counts ten, is scraped, and exits; those gone are folded together along the way.
    for (let round = 0; round < 20; round++) {
      const worker = start()
      const { requests, inFlight } = await scrape(scrapes, asker)
      served += 10
      assert.equal(requests, served + 10, `round ${round}: the asker's ten and every worker's`)
      assert.equal(inFlight, 2, 'the gauges of the live workers only')
      assert.ok(requests >= last)
      last = requests
      live.delete(worker)
      scrapes.departed(worker)
    }
    assert.equal((await scrape(scrapes, asker)).requests, served + 10)
  })

  it('count a worker that could not collect its metrics at its last part, as one that did not answer', async () => {
    const live = new Set<Worker & { answers: ClusterMessage[] }>()
    const scrapes = new ClusterScrapes(() => live)
    let failing = false
    const asker = fakeWorker(() => scrapes, () => 10)
    const troubled = fakeWorker(() => scrapes, () => 7, () => failing)
    live.add(asker).add(troubled)
    assert.equal((await scrape(scrapes, asker)).requests, 17)
    failing = true
    assert.equal((await scrape(scrapes, asker)).requests, 17, 'a sum that went down would be taken for a counter reset')
    failing = false
    assert.equal((await scrape(scrapes, asker)).requests, 17)
  })
})
