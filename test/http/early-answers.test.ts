import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { rawClient } from '../helpers/raw-client.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** Well past the few seconds a closing connection still reads, and far within the request's 300 s. */
const CLOSED_WITHIN_MS = 10_000

describe('an answer given before the request\'s body came', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  for (const [what, head, status] of [
    ['a method a page does not take', 'POST /ui/account HTTP/1.1\r\nHost: gw\r\nAccept: text/html\r\nContent-Type: application/x-www-form-urlencoded', '405'],
    ['a page asked for with a body', 'GET /api/gateway/v1/login/ HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain', '200'],
  ] as const) {
    it(`closes the connection after it, however slowly the rest comes (${what})`, async () => {
      const client = await rawClient(gw.url, '127.0.0.1', `${head}\r\nContent-Length: 100000\r\n\r\nx`)
      const dribble = setInterval(() => client.socket.destroyed || client.socket.write('x'), 500)
      try {
        const started = Date.now()
        const closedInTime = await Promise.race([client.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, CLOSED_WITHIN_MS, false))])
        assert.ok(closedInTime, `still open after ${Date.now() - started} ms`)
        assert.match(client.received(), new RegExp(`^HTTP/1.1 ${status} `))
        assert.match(client.received(), /\r\nconnection: close\r\n/i, 'the answer says it is the last')
      } finally {
        clearInterval(dribble)
        client.socket.destroy()
      }
    })
  }

  it('keeps the connection of a request whose body was read, or that had none', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', 'GET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\n\r\nGET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\n\r\n')
    try {
      await new Promise((resolve) => setTimeout(resolve, 500))
      assert.equal(client.received().match(/HTTP\/1.1 200 /g)?.length, 2)
      assert.equal(client.socket.destroyed, false)
    } finally {
      client.socket.destroy()
    }
  })
})
