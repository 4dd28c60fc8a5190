import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { closeAtServer, eventually, rawClient } from '../helpers/raw-client.ts'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

const USERS = '/api/gateway/v1/users/'
const post = (path: string, length: number | 'chunked') =>
  `POST ${path} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\nContent-Type: application/json\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`

describe('the memory the gateway API\'s request bodies hold', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, api_body_buffers_mb: 1, timeouts: { headers_seconds: 5, request_seconds: 20 } } } })
  })
  after(() => gw.close())
  const postUser = (size: number) => gw.fetch(USERS, { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'x'.repeat(size) }) })

  it('refuses a body that would take the bodies held past server.api_body_buffers_mb with 503 and Retry-After, and has the budget back once clients go away', async () => {
    const size = 700 * 1024
    // The first sends most of its body and holds the rest back: what it sent is held.
    const first = await rawClient(gw.url, '127.0.0.40', Buffer.concat([Buffer.from(post(USERS, size)), randomBytes(650 * 1024)]))
    // Once the first request is authorized and its bytes read, the next one is refused as its body passes the budget.
    const next = async () => {
      const client = await rawClient(gw.url, '127.0.0.43', Buffer.concat([Buffer.from(post(USERS, size)), randomBytes(size)]))
      const answer = await eventually(() => client.received(), (text) => text.includes('\r\n\r\n'), 10_000)
      client.socket.destroy()
      return answer
    }
    let second = await next()
    for (const deadline = Date.now() + 10_000; !second.startsWith('HTTP/1.1 503 ') && Date.now() < deadline;) second = await next()
    assert.match(second, /^HTTP\/1\.1 503 /)
    assert.match(second, /\r\nretry-after: 1\r\n/i)
    assert.match(second, /body_buffers_full/)
    // A read's body is never read, and holds nothing.
    const read = await rawClient(gw.url, '127.0.0.42', `GET ${USERS} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\nContent-Length: ${size}\r\n\r\n`)
    assert.match(await eventually(() => read.received(), (text) => text.includes('\r\n\r\n'), 10_000), /^HTTP\/1\.1 200 /)
    read.socket.destroy()
    // A chunked body is counted as it arrives: it is refused once it would go past the budget.
    const chunked = await rawClient(gw.url, '127.0.0.41', Buffer.concat([Buffer.from(post(USERS, 'chunked')), Buffer.from(`${(size).toString(16)}\r\n`), randomBytes(size)]))
    const answer = await eventually(() => chunked.received(), (text) => text.includes('\r\n\r\n'), 10_000)
    assert.match(answer, /^HTTP\/1\.1 503 /)
    assert.match(answer, /body_buffers_full/)
    chunked.socket.destroy()
    // Seen closed by the gateway, whose answer to it, as it closes, gives the budget back.
    await closeAtServer(gw.server.server, [first])
    const taken = await postUser(size)
    assert.equal(taken.status, 400, 'read and judged, as the budget is free again')
    assert.equal((await json(taken)).code, 'invalid')
  })

  it('holds only what a body sent: one that says a large length and sends little takes nothing from the others', async () => {
    const size = 900 * 1024
    const drips = await Promise.all(Array.from({ length: 4 }, () => rawClient(gw.url, '127.0.0.44', Buffer.from(post(USERS, size) + '{"user'))))
    try {
      // Each said nearly the whole budget; together, four times it. A body as large is read and judged meanwhile.
      const taken = await postUser(size)
      assert.equal(taken.status, 400, 'read and judged')
      assert.equal((await json(taken)).code, 'invalid')
    } finally {
      for (const drip of drips) drip.socket.destroy()
    }
  })
})

describe('the login\'s request body', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const postLogin = async (body: (token: string) => string, type = 'application/x-www-form-urlencoded') => {
    const token = await csrfToken(gw)
    return gw.fetch(LOGIN, { method: 'POST', headers: { 'content-type': type, 'x-csrftoken': token, cookie: `csrftoken=${token}` }, body: body(token) })
  }

  it('reads a login of the largest fields any client can send, however its characters are encoded', async () => {
    // Every field at its longest, in characters that take three bytes of UTF-8 each, percent-encoded: nine bytes each.
    const wide = (n: number) => encodeURIComponent('€'.repeat(n))
    const form = (token: string) => `username=${wide(150)}&password=${wide(1024)}&next=${wide(2048)}&csrfmiddlewaretoken=${token}`
    const response = await postLogin(form)
    assert.equal(response.status, 401, 'judged on its fields, not refused for its size')
    assert.equal((await json(response)).code, 'invalid_credentials')
    const plain = await postLogin(() => JSON.stringify({ username: 'alice', password: 'alice-password' }), 'application/json')
    assert.equal(plain.status, 200)
  })

  it('refuses a login body larger than any login with 413 payload_too_large, and starts no session', async () => {
    const before = (await gw.store.sessions.list({ offset: 0, limit: 1, now: Date.now() })).count
    const response = await postLogin(() => `username=alice&password=alice-password&next=/${'a'.repeat(40 * 1024)}`)
    assert.equal(response.status, 413)
    assert.equal((await json(response)).code, 'payload_too_large')
    assert.equal((await gw.store.sessions.list({ offset: 0, limit: 1, now: Date.now() })).count, before)
  })
})
