import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM, TOKEN_PATH, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { closeAtServer, eventually, rawClient, type RawClient } from '../helpers/raw-client.ts'

const FORM = 'application/x-www-form-urlencoded'
/** The largest body a realm reads. */
const LIMIT = 16 * 1024

describe('the memory the realms\' request bodies hold, with the gateway API\'s', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms, server: { host: '127.0.0.1', port: 0, api_body_buffers_mb: 1, timeouts: { headers_seconds: 5, request_seconds: 30 } } } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const passwordGrant = () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' })

  it('reads the forms real clients send, and refuses one larger than any of them', async () => {
    assert.equal((await passwordGrant()).status, 200)
    const large = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'x'.repeat(LIMIT) })
    assert.equal(large.status, 400)
    assert.deepEqual(large.body, { error: 'invalid_request', error_description: 'Request body too large' })
  })

  it('holds a flood of large anonymous bodies within server.api_body_buffers_mb, refusing the rest with 503 and Retry-After, and has the budget back once they go away', async () => {
    // Bodies of the largest size read, sent but for their last byte and held open: 64 of them take the whole budget
    // (1 MiB), and those past it are refused.
    const flood: RawClient[] = []
    const head = `POST ${TOKEN_PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: ${FORM}\r\nContent-Length: ${LIMIT}\r\n\r\ngrant_type=password&password=${'x'.repeat(LIMIT - 1 - 29)}`
    try {
      for (let i = 0; i < 72; i++) flood.push(await rawClient(gw.url, '127.0.0.1', head))
      const refusals = () => flood.filter((client) => client.received().startsWith('HTTP/1.1 503 ')).length
      assert.equal(await eventually(refusals, (count) => count >= 8, 20_000), 8, 'the bodies past the budget are refused')
      assert.match(flood.find((client) => client.received() !== '')!.received(), /retry-after: 1\r\n[^]*"error":"body_buffers_full"/i)
      // Nearly as large a body of a real client is refused meanwhile, as is a login page's form, which takes from the
      // same budget, and a chunked body, counted as it arrives.
      const refused = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'x'.repeat(LIMIT - 200) })
      assert.equal(refused.status, 503)
      assert.equal(refused.headers.get('retry-after'), '1')
      assert.deepEqual(Object.keys(refused.body), ['error', 'error_description'])
      assert.equal(refused.body.error, 'body_buffers_full')
      const form = await gw.fetch(`/realms/${REALM}/login-actions/authenticate`, { method: 'POST', headers: { 'content-type': FORM }, body: `restart=${'x'.repeat(LIMIT - 200)}` })
      assert.equal(form.status, 503)
      // The gateway API's bodies take from the same budget: its public login is refused meanwhile too.
      const login = await gw.fetch('/api/gateway/v1/login/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'x'.repeat(LIMIT - 200) }) })
      assert.equal(login.status, 503)
      assert.equal((await json(login)).code, 'body_buffers_full')
      const chunk = `grant_type=password&password=${'x'.repeat(LIMIT - 200)}`
      const chunked = await rawClient(gw.url, '127.0.0.1', `POST ${TOKEN_PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: ${FORM}\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`)
      flood.push(chunked)
      assert.match(await eventually(() => chunked.received(), (text) => text.includes('\r\n\r\n'), 10_000), /^HTTP\/1\.1 503 /)
      await closeAtServer(gw.server.server, flood.filter((client) => !client.socket.closed))
    } finally {
      for (const client of flood) client.socket.destroy()
    }
    const answer = await passwordGrant()
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const large = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'x'.repeat(LIMIT - 200) })
    assert.equal(large.status, 400, 'read and judged, as the budget is free again')
  })
})

describe('the realms\' share of the body budget, by client, and by time', () => {
  let gw: TestGateway
  before(async () => {
    // An eighth of 8 MiB per client address: 64 of the largest bodies.
    gw = await startGateway({ config: { realms: testRealms, server: { host: '127.0.0.1', port: 0, api_body_buffers_mb: 8, api_body_limit_bytes: 64 * 1024 } } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const passwordGrantFrom = (address: string) => requestFrom(address, gw.url + TOKEN_PATH, {
    method: 'POST', headers: { 'content-type': FORM }, body: 'client_id=end-users&grant_type=password&username=alice&password=alice-password',
  })
  const heldBody = (address: string) => rawClient(gw.url, address, `POST ${TOKEN_PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: ${FORM}\r\nContent-Length: ${LIMIT}\r\n\r\ngrant_type=password&password=${'x'.repeat(LIMIT - 1 - 29)}`)

  it('lets no one client address hold more than its share, and serves the others meanwhile', async () => {
    const flood: RawClient[] = []
    try {
      for (let i = 0; i < 70; i++) flood.push(await heldBody('127.0.0.50'))
      const refusals = () => flood.filter((client) => client.received().startsWith('HTTP/1.1 503 ')).length
      assert.equal(await eventually(refusals, (count) => count >= 6, 20_000), 6, 'the bodies past its share are refused')
      // The same address is refused a new body; another address is served.
      assert.equal((await passwordGrantFrom('127.0.0.50')).status, 503)
      assert.equal((await passwordGrantFrom('127.0.0.51')).status, 200)
    } finally {
      for (const client of flood) client.socket.destroy()
    }
  })

  it('refuses a body still arriving after ten seconds, at a realm with 408 and at the public login, and gives its share back', async () => {
    const realm = await rawClient(gw.url, '127.0.0.52', `POST ${TOKEN_PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: ${FORM}\r\nContent-Length: 100\r\n\r\ngrant_type=pass`)
    const login = await rawClient(gw.url, '127.0.0.52', `POST /api/gateway/v1/login/ HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user`)
    try {
      const started = Date.now()
      const [realmAnswer, loginAnswer] = await Promise.all([realm, login].map((client) => eventually(() => client.received(), (text) => text.includes('\r\n\r\n'), 20_000)))
      const waited = Date.now() - started
      // Ten seconds, and a loaded machine's lateness beside them; far from the 300 s a request may otherwise take.
      assert.ok(waited >= 9000 && waited < 16_000, `answered after ${waited} ms`)
      assert.match(realmAnswer!, /^HTTP\/1\.1 408 [^]*"error_description":"Request body not received in time"/)
      assert.match(loginAnswer!, /^HTTP\/1\.1 408 [^]*"code":"request_timeout"/)
      for (const answer of [realmAnswer!, loginAnswer!]) assert.match(answer, /\r\nconnection: close\r\n/i)
    } finally {
      realm.socket.destroy()
      login.socket.destroy()
    }
    assert.equal((await passwordGrantFrom('127.0.0.52')).status, 200)
  })
})

describe('a realm body sent chunked past the limit', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  /**
   * Sends the head, then a 4 KiB chunk every few milliseconds, as a client streaming a form would: on and on, or
   * until an answer comes (then it closes its side, as a client does that reads answers as they come); returns what
   * came back once the server closed or `ms` passed.
   */
  async function streamPastLimit(path: string, { untilAnswered }: { untilAnswered: boolean }, ms = 5000): Promise<{ text: string; closed: boolean }> {
    const client = await rawClient(gw.url, '127.0.0.1', `POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: ${FORM}\r\nTransfer-Encoding: chunked\r\n\r\n`)
    const chunk = 'x'.repeat(4096)
    const writer = setInterval(() => {
      if (!client.socket.writable) return clearInterval(writer)
      if (untilAnswered && client.received() !== '') {
        clearInterval(writer)
        return client.socket.end()
      }
      client.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
    }, 5)
    try {
      await Promise.race([client.closed, new Promise((done) => setTimeout(done, ms))])
      return { text: client.received(), closed: client.socket.closed }
    } finally {
      clearInterval(writer)
      client.socket.destroy()
    }
  }

  it('gets the token endpoint\'s refusal while it still sends, and the connection closed', async () => {
    const { text, closed } = await streamPastLimit(TOKEN_PATH, { untilAnswered: false })
    assert.match(text, /^HTTP\/1\.1 400 [^]*connection: close\r\n[^]*"error_description":"Request body too large"/i)
    assert.ok(closed, 'the connection is closed, not read on for good')
  })

  it('gets the login page\'s 413 while it still sends, and the connection closed once it stops', async () => {
    const { text, closed } = await streamPastLimit(`/realms/${REALM}/login-actions/authenticate`, { untilAnswered: true }, 1500)
    assert.match(text, /^HTTP\/1\.1 413 [^]*connection: close\r\n[^]*"code":"payload_too_large"/i)
    assert.ok(closed, 'the connection is closed, not read on for good')
  })
})
