import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { BackchannelLogouts, type DeliveryFailure, type DeliveryOutcome } from '../../src/oidc/backchannel-logout.ts'

/** Receivers on 127.0.0.1: `/ok` answers 200, `/error` 500, `/moved` redirects to `/ok`, `/held` waits to be released. */
class Receivers {
  readonly paths: string[] = []
  readonly held: ServerResponse[] = []
  open = 0
  mostOpen = 0
  readonly #server: Server
  url = ''

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      this.open++
      this.mostOpen = Math.max(this.mostOpen, this.open)
      res.on('close', () => this.open--)
      req.resume()
      req.on('end', () => {
        this.paths.push(req.url ?? '')
        const path = (req.url ?? '').split('?', 1)[0]
        if (path === '/ok') res.writeHead(200).end()
        else if (path === '/error') res.writeHead(500).end()
        else if (path === '/moved') res.writeHead(302, { location: '/ok' }).end()
        else this.held.push(res)
      })
    })
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  release(): void {
    for (const res of this.held.splice(0)) res.writeHead(200).end()
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections()
    this.#server.close()
  }
}

async function until(condition: () => boolean, what: string, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe('back-channel logout deliveries', () => {
  const receivers = new Receivers()
  before(() => receivers.start())
  after(() => receivers.stop())

  function queue(): { logouts: BackchannelLogouts; counted: Map<DeliveryOutcome, number>; failures: DeliveryFailure[] } {
    const counted = new Map<DeliveryOutcome, number>()
    const failures: DeliveryFailure[] = []
    const logouts = new BackchannelLogouts((realm, outcome) => {
      assert.equal(realm, 'platform')
      counted.set(outcome, (counted.get(outcome) ?? 0) + 1)
    })
    logouts.onFailure((failure) => failures.push(failure))
    return { logouts, counted, failures }
  }
  /** Answers every held delivery as it comes, until none is waiting or under way. */
  async function releasedUntilSettled(logouts: BackchannelLogouts): Promise<void> {
    let settled = false
    void logouts.settled().then(() => (settled = true))
    while (!settled) {
      receivers.release()
      await sleep(20)
    }
  }
  const delivery = (path: string, token = 'a.b.c') => ({ realm: 'platform', clientId: 'app', uri: `${receivers.url}${path}`, sign: async () => token, format: 'logout_token' as const })

  it('sends a few at a time, however many sessions end at once', async () => {
    const { logouts, counted } = queue()
    receivers.mostOpen = 0
    for (let i = 0; i < 20; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length === 8, 'eight deliveries under way')
    await releasedUntilSettled(logouts)
    assert.equal(receivers.mostOpen, 8)
    assert.equal(counted.get('delivered'), 20)
  })

  it('tells whoever waits for a delivery what it came to: delivered, rejected, or dropped once the queue stopped', async () => {
    const { logouts } = queue()
    assert.deepEqual(await Promise.all([logouts.send(delivery('/ok')), logouts.send(delivery('/error'))]), ['delivered', 'rejected'])
    assert.equal(await logouts.send({ ...delivery('/ok'), sign: async () => undefined }), 'delivered', 'nothing to tell is nothing that failed')
    await logouts.stop()
    assert.equal(await logouts.send(delivery('/ok')), 'dropped')
  })

  it('counts and reports an answer other than 200 or 204, and follows no redirect', async () => {
    const { logouts, counted, failures } = queue()
    const before = receivers.paths.length
    logouts.send(delivery('/error', 'secret.logout.token'))
    logouts.send(delivery('/moved', 'secret.logout.token'))
    await logouts.settled()
    assert.equal(counted.get('rejected'), 2)
    assert.deepEqual(failures.map((f) => [f.outcome, f.detail, new URL(f.uri).pathname]), [['rejected', 'answered 500', '/error'], ['rejected', 'answered 302', '/moved']])
    assert.deepEqual(receivers.paths.slice(before).sort(), ['/error', '/moved'], 'the redirect was not followed to /ok')
    assert.ok(!JSON.stringify(failures).includes('secret.logout.token'))
  })

  it('reports the receiver\'s address without its query, which may carry a key of the receiver\'s', async () => {
    const { logouts, failures } = queue()
    logouts.send(delivery('/error?key=receivers-own-secret&tenant=a'))
    await logouts.settled()
    assert.equal(failures.length, 1)
    assert.equal(failures[0]!.uri, `${receivers.url}/error`)
    assert.ok(!JSON.stringify(failures).includes('receivers-own-secret'))
  })

  it('reports a receiver that does not listen, and a token that could not be signed', async () => {
    const { logouts, counted, failures } = queue()
    const closed = createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const port = (closed.address() as AddressInfo).port
    closed.close()
    await once(closed, 'close')
    logouts.send({ ...delivery('/ok'), uri: `http://127.0.0.1:${port}/logout` })
    logouts.send({ ...delivery('/ok'), sign: async () => { throw new Error('keys unavailable') } })
    await logouts.settled()
    assert.equal(counted.get('unreachable'), 1)
    assert.equal(counted.get('unsigned'), 1)
    assert.deepEqual(failures.map((f) => f.outcome).sort(), ['unreachable', 'unsigned'])
  })

  it('sends nothing, and counts nothing, for a delivery that has nothing to tell when its turn comes', async () => {
    const { logouts, counted, failures } = queue()
    const before = receivers.paths.length
    logouts.send({ ...delivery('/ok'), format: 'admin', sign: async () => undefined })
    logouts.send({ ...delivery('/ok'), format: 'admin' })
    await logouts.settled()
    assert.deepEqual(receivers.paths.slice(before), ['/ok'], 'only the delivery with a token was sent')
    assert.deepEqual([...counted], [['delivered', 1]])
    assert.deepEqual(failures, [])
  })

  it('a stop sends for a while, then drops what still waits and what comes after, and waits only for the deliveries under way', async () => {
    const { logouts, counted, failures } = queue()
    for (let i = 0; i < 8 + 5; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length >= 8, 'eight deliveries under way')
    let stopped = false
    const stopping = logouts.stop(100).then(() => (stopped = true))
    await until(() => counted.get('dropped') === 5, 'the waiting deliveries dropped')
    logouts.send(delivery('/ok'))
    assert.equal(counted.get('dropped'), 6, 'one sent after the stop is dropped at once')
    assert.equal(stopped, false, 'the deliveries under way are waited for')
    receivers.release()
    await stopping
    assert.equal(counted.get('delivered'), 8)
    assert.equal(receivers.held.length, 0)
    assert.deepEqual(failures.map((f) => [f.outcome, f.detail]), Array(6).fill(['dropped', 'the process stopped before its turn came']))
  })

  it('drops what comes beyond the waiting bound, and says so', async () => {
    const { logouts, counted, failures } = queue()
    for (let i = 0; i < 8 + 1000 + 3; i++) logouts.send(delivery('/held'))
    assert.equal(counted.get('dropped'), 3)
    assert.equal(failures.filter((f) => f.outcome === 'dropped').length, 3)
    await releasedUntilSettled(logouts)
    assert.equal(counted.get('delivered'), 1008)
  })
})
