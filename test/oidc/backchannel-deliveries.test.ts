import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { BackchannelLogouts, DELIVERIES_PER_RECEIVER, MAX_WAITING_PER_RECEIVER, type DeliveryFailure, type DeliveryOutcome } from '../../src/oidc/backchannel-logout.ts'

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

  releaseOne(): void {
    this.held.shift()?.writeHead(200).end()
  }

  /** Cuts the connections of the held deliveries without an answer, as a receiver that crashed. */
  cut(): void {
    for (const res of this.held.splice(0)) res.socket?.destroy()
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
  const other = new Receivers()
  before(() => Promise.all([receivers.start(), other.start()]))
  after(() => Promise.all([receivers.stop(), other.stop()]))

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
      other.release()
      await sleep(20)
    }
  }
  const delivery = (path: string, token = 'a.b.c') => ({ realm: 'platform', clientId: 'app', uri: `${receivers.url}${path}`, sign: async () => token, format: 'logout_token' as const })

  it('sends a few at a time to a receiver, however many sessions end at once', async () => {
    const { logouts, counted } = queue()
    receivers.mostOpen = 0
    for (let i = 0; i < 20; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length === DELIVERIES_PER_RECEIVER, 'a receiver\'s deliveries under way')
    await releasedUntilSettled(logouts)
    assert.equal(receivers.mostOpen, DELIVERIES_PER_RECEIVER)
    assert.equal(counted.get('delivered'), 20)
  })

  it('holds back only a hanging receiver\'s own deliveries, however many wait for it, and sends an administrator\'s call to it next', async () => {
    const { logouts, counted } = queue()
    const before = receivers.paths.length
    for (let i = 0; i < 200; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length === DELIVERIES_PER_RECEIVER, 'the hanging receiver\'s deliveries under way')
    // Another client's receiver is told at once.
    const otherClient = logouts.send({ ...delivery('/ok'), uri: `${other.url}/ok` })
    assert.equal(await Promise.race([otherClient, sleep(2000, 'still waiting')]), 'delivered')
    // An administrator's call waits for no one queued before it at its receiver.
    const urgent = logouts.send({ ...delivery('/held?urgent'), urgent: true })
    receivers.releaseOne()
    await until(() => receivers.paths.length - before === DELIVERIES_PER_RECEIVER + 1, 'the next delivery started')
    assert.equal(receivers.paths.at(-1), '/held?urgent')
    await releasedUntilSettled(logouts)
    assert.equal(await urgent, 'delivered')
    assert.equal(counted.get('delivered'), 202)
  })

  it('sends one at a time to a receiver whose last delivery got no answer, and a few again once it answers', async () => {
    const { logouts, counted } = queue()
    for (let i = 0; i < DELIVERIES_PER_RECEIVER + 6; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length === DELIVERIES_PER_RECEIVER, 'the first deliveries under way')
    receivers.cut()
    await until(() => counted.get('unreachable') === DELIVERIES_PER_RECEIVER, 'the cut deliveries failed')
    await until(() => receivers.held.length === 1, 'one delivery under way')
    await sleep(300)
    assert.equal(receivers.held.length, 1, 'only one, while the receiver did not answer')
    receivers.releaseOne()
    await until(() => receivers.held.length === DELIVERIES_PER_RECEIVER, 'a few under way again')
    await releasedUntilSettled(logouts)
    assert.equal(counted.get('delivered'), 6)
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
    for (let i = 0; i < DELIVERIES_PER_RECEIVER + 5; i++) logouts.send(delivery('/held'))
    await until(() => receivers.held.length >= DELIVERIES_PER_RECEIVER, 'the deliveries under way')
    let stopped = false
    const stopping = logouts.stop(100).then(() => (stopped = true))
    await until(() => counted.get('dropped') === 5, 'the waiting deliveries dropped')
    logouts.send(delivery('/ok'))
    assert.equal(counted.get('dropped'), 6, 'one sent after the stop is dropped at once')
    assert.equal(stopped, false, 'the deliveries under way are waited for')
    receivers.release()
    await stopping
    assert.equal(counted.get('delivered'), DELIVERIES_PER_RECEIVER)
    assert.equal(receivers.held.length, 0)
    assert.deepEqual(failures.map((f) => [f.outcome, f.detail]), Array(6).fill(['dropped', 'the process stopped before its turn came']))
  })

  it('drops what comes beyond a receiver\'s waiting bound, and says so, while others\' still wait their turn', async () => {
    const { logouts, counted, failures } = queue()
    for (let i = 0; i < DELIVERIES_PER_RECEIVER + MAX_WAITING_PER_RECEIVER + 3; i++) logouts.send(delivery('/held'))
    assert.equal(counted.get('dropped'), 3)
    assert.deepEqual(failures.filter((f) => f.outcome === 'dropped').map((f) => f.detail), Array(3).fill(`more than ${MAX_WAITING_PER_RECEIVER} logout tokens waiting to be sent to ${receivers.url}`))
    const otherClient = logouts.send({ ...delivery('/held'), uri: `${other.url}/held` })
    // An administrator's call is never dropped for the bound: it goes first.
    const urgent = logouts.send({ ...delivery('/held?urgent'), urgent: true })
    await releasedUntilSettled(logouts)
    assert.equal(await otherClient, 'delivered')
    assert.equal(await urgent, 'delivered')
    assert.equal(counted.get('dropped'), 3)
    assert.equal(counted.get('delivered'), DELIVERIES_PER_RECEIVER + MAX_WAITING_PER_RECEIVER + 2)
  })
})
