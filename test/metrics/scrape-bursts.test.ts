import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import { Registry } from 'prom-client'
import { sharedRuns } from '../../src/metrics/shared-runs.ts'
import { adminAuth, startGateway } from '../helpers/gateway.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'

/** Reads one answer of known length (the gateway's to /metrics) off a kept-alive connection. */
function answerOn(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const read = (chunk: string) => {
      text += chunk
      const bodyAt = text.indexOf('\r\n\r\n') + 4
      const length = /^content-length: (\d+)/im.exec(text)?.[1]
      if (bodyAt < 4 || length === undefined || text.length < bodyAt + Number(length)) return
      socket.off('data', read)
      resolve(text)
    }
    socket.setEncoding('utf8').on('data', read)
  })
}

/**
 * Connections kept alive, as Prometheus keeps its own, each with one scrape done; then `scrape()` sends one more on
 * each at once, as servers and dashboards scraping together do.
 */
async function scrapers(url: string, count: number): Promise<{ scrape(): Promise<string[]>; close(): void }> {
  const { hostname, port } = new URL(url)
  const sockets = await Promise.all(Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket)).on('error', reject)
  })))
  const scrape = () => {
    const answers = sockets.map(answerOn)
    for (const socket of sockets) socket.write('GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n')
    return Promise.all(answers)
  }
  for (const socket of sockets) {
    const answer = answerOn(socket)
    socket.write('GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n')
    await answer
  }
  return { scrape, close: () => sockets.forEach((socket) => socket.destroy()) }
}

describe('a burst of scrapes', () => {
  it('is formatted once or twice, not once per scrape, and each scrape counts the request made before it', async () => {
    const gw = await startGateway()
    const formatted = Registry.prototype.metrics
    let formats = 0
    Registry.prototype.metrics = function (this: Registry) {
      formats++
      return formatted.call(this)
    }
    const prometheus = await scrapers(gw.url, 12)
    try {
      formats = 0
      assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: adminAuth })).status, 200)
      const answers = await prometheus.scrape()
      assert.ok(formats >= 1 && formats <= 2, `formatted ${formats} times for 12 scrapes`)
      for (const answer of answers) {
        assert.match(answer, /^HTTP\/1\.1 200 /)
        const samples = parseScrape(answer.slice(answer.indexOf('\r\n\r\n') + 4))
        assert.equal(sampleValue(samples, 'gatehouse_requests_total', { service: 'controller', method: 'read', status: '2xx', auth: 'basic' }), 1)
      }
      formats = 0
      assert.equal((await gw.fetch('/metrics')).status, 200)
      assert.equal(formats, 1, 'a scrape alone is formatted for itself')
    } finally {
      Registry.prototype.metrics = formatted
      prometheus.close()
      await gw.close()
    }
  })
})

/** Long enough for the event loop to turn a few times. */
const turns = () => new Promise((resolve) => setTimeout(resolve, 10))

describe('sharedRuns', () => {
  it('shares a run among the calls made before it began, and gives a call made while it ran the next one', async () => {
    let started = 0
    const releases: (() => void)[] = []
    const run = sharedRuns(() => {
      const number = ++started
      return new Promise<number>((resolve) => releases.push(() => resolve(number)))
    })
    const together = [run(), run(), run()]
    assert.equal(started, 0, 'a run begins at the event loop\'s next turn')
    await turns()
    assert.equal(started, 1)
    const during = [run(), run()]
    await turns()
    assert.equal(started, 1, 'one run at a time')
    releases[0]!()
    assert.deepEqual(await Promise.all(together), [1, 1, 1])
    await turns()
    assert.equal(started, 2)
    releases[1]!()
    assert.deepEqual(await Promise.all(during), [2, 2])
  })

  it('runs again after a run that failed, and hands the failure only to its own callers', async () => {
    let calls = 0
    const run = sharedRuns(async () => {
      calls++
      if (calls === 1) throw new Error('first fails')
      return calls
    })
    const failed = assert.rejects(run(), /first fails/)
    await turns()
    const next = run()
    await failed
    assert.equal(await next, 2)
    assert.equal(await run(), 3)
  })
})
