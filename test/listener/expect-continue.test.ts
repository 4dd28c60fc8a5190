import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { ADMIN_PASSWORD, adminAuth, basic, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { eventually, rawClient, type RawClient } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1): the client sends its headers, and its body only once told to. The gateway
 * tells it (100 Continue) only once it is going to read the body; a request it refuses is answered at once, with no
 * 100, and its connection closed. Raw sockets, so the test sees whether a 100 came before the final answer.
 */

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'

/** The status codes of every answer on the connection so far, interim ones included, in order. */
function statuses(text: string): string[] {
  return [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((match) => match[1]!)
}

/** Whether the text holds a final answer whose body (by its Content-Length, or its last chunk) has arrived whole. */
function hasWholeAnswer(text: string): boolean {
  const start = text.search(/^HTTP\/1\.1 [2-5]\d\d/m)
  if (start === -1) return false
  const end = text.indexOf('\r\n\r\n', start)
  if (end === -1) return false
  const head = text.slice(start, end)
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) return text.endsWith('\r\n0\r\n\r\n')
  const length = /\r\ncontent-length: *(\d+)/i.exec(head)
  return length !== null && Buffer.byteLength(text.slice(end + 4)) >= Number(length[1])
}

/** Sends a request's head with `Expect: 100-continue` and waits for the first thing the gateway writes back. */
async function askToSend(gw: TestGateway, head: string): Promise<RawClient> {
  const client = await rawClient(gw.url, '127.0.0.1', `${head}Expect: 100-continue\r\n\r\n`)
  await eventually(client.received, (text) => text.startsWith(CONTINUE) || hasWholeAnswer(text), 10_000)
  return client
}

/** What the connection received, once the gateway has closed it (failing after ten seconds). */
async function untilClosed(client: RawClient): Promise<string> {
  await Promise.race([client.closed, sleep(10_000)])
  assert.ok(client.socket.closed, `the connection is closed after: ${client.received()}`)
  return client.received()
}

/** What arrives once the body has been sent, until the final answer is whole. */
async function sendBody(client: RawClient, body: string): Promise<string> {
  client.socket.write(body)
  return eventually(client.received, (text) => hasWholeAnswer(text.slice(CONTINUE.length)), 10_000)
}

describe('Expect: 100-continue', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({
      config: {
        services: [
          {
            name: 'rec',
            prefix: '/rec/',
            upstream: upstream.url,
            accepts: ['basic'],
            unauthenticated: '401',
            access: [{ deny: { paths: ['/rec/forbidden/*'] } }, { allow: { users: ['admin'] } }],
          },
          // Bodies streamed to the service as they come, none read first.
          { name: 'streamed', prefix: '/streamed/', upstream: upstream.url, accepts: ['basic'], unauthenticated: '401', pool: { body_buffer_kb: 0 } },
          { name: 'live', prefix: '/live/', upstream: 'builtin:demo', accepts: ['basic'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  const upload = (path: string, headers: string, length: number): string =>
    `POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n${headers}`

  for (const [path, what] of [['/rec/upload', 'the lean path'], ['/rec/%75pload', 'the general path (a percent-escaped path)'], ['/streamed/upload', 'a body streamed as it comes']] as const) {
    it(`refuses a proxied request without credentials with 401 and no 100, and closes its connection (${what})`, async () => {
      const seen = upstream.seen.length
      const client = await askToSend(gw, upload(path, '', 5000))
      const answer = await untilClosed(client)
      assert.deepEqual(statuses(answer), ['401'], answer)
      assert.match(answer, /\r\nconnection: close\r\n/i)
      assert.equal(upstream.seen.length, seen, 'nothing reached the service')
    })

    it(`invites the body of an allowed proxied request with 100, then forwards it whole (${what})`, async () => {
      const client = await askToSend(gw, upload(path, `Authorization: ${adminAuth.authorization}\r\n`, 5000))
      assert.ok(client.received().startsWith(CONTINUE), client.received())
      const answer = await sendBody(client, 'x'.repeat(5000))
      client.socket.destroy()
      assert.deepEqual(statuses(answer), ['100', '200'], answer)
      assert.match(answer, /\{"bytes":5000\}/)
      assert.equal(upstream.seen.at(-1)!.headers.expect, undefined, 'the service is not asked for a 100 of its own')
    })
  }

  it('refuses wrong credentials, and a place the access rules forbid, without a 100', async () => {
    const wrong = await askToSend(gw, upload('/rec/upload', `Authorization: ${basic('admin', 'not-the-password')}\r\n`, 5000))
    assert.deepEqual(statuses(await untilClosed(wrong)), ['401'], wrong.received())
    const forbidden = await askToSend(gw, upload('/rec/forbidden/upload', `Authorization: ${adminAuth.authorization}\r\n`, 5000))
    assert.deepEqual(statuses(await untilClosed(forbidden)), ['403'], forbidden.received())
  })

  it('answers a refused request whole even when its client sends the body and another request without waiting', async () => {
    const seen = upstream.seen.length
    const body = 'x'.repeat(70_000)
    const client = await rawClient(gw.url, '127.0.0.1', `${upload('/rec/upload', 'Expect: 100-continue\r\n', body.length)}\r\n${body}GET /rec/next HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\n\r\n`)
    const answer = await untilClosed(client)
    assert.deepEqual(statuses(answer), ['401'], 'the request behind it is not answered on a connection that closes')
    assert.ok(hasWholeAnswer(answer), answer)
    assert.equal(upstream.seen.length, seen, 'neither the body nor the request behind it reached the service')
  })

  it('keeps a connection usable after an allowed request whose body it invited', async () => {
    const client = await askToSend(gw, upload('/rec/first', `Authorization: ${adminAuth.authorization}\r\n`, 3))
    assert.ok(client.received().startsWith(CONTINUE))
    await sendBody(client, 'abc')
    const before = client.received().length
    client.socket.write(`GET /rec/second HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\n\r\n`)
    const next = await eventually(() => client.received().slice(before), hasWholeAnswer, 10_000)
    client.socket.destroy()
    assert.deepEqual(statuses(next), ['200'], next)
    assert.equal(upstream.seen.at(-1)!.url, '/rec/second')
  })

  it('invites the body of an API request it authenticated, and answers it', async () => {
    const body = JSON.stringify({ description: 'expect-continue' })
    const client = await askToSend(gw, `POST /api/gateway/v1/tokens/ HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nAuthorization: ${adminAuth.authorization}\r\n`)
    assert.ok(client.received().startsWith(CONTINUE), client.received())
    const answer = await sendBody(client, body)
    client.socket.destroy()
    assert.deepEqual(statuses(answer), ['100', '201'], answer)
  })

  it('refuses an API request with wrong credentials before its body, without a 100', async () => {
    const client = await askToSend(gw, `POST /api/gateway/v1/tokens/ HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 20\r\nAuthorization: ${basic('admin', 'not-the-password')}\r\n`)
    assert.deepEqual(statuses(await untilClosed(client)), ['401'], client.received())
  })

  it('refuses an API body declared over the limit with 413, without a 100', async () => {
    const limit = gw.app.config.server.api_body_limit_bytes
    const client = await askToSend(gw, `POST /api/gateway/v1/tokens/ HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${limit + 1}\r\nAuthorization: ${adminAuth.authorization}\r\n`)
    const answer = await untilClosed(client)
    assert.deepEqual(statuses(answer), ['413'], answer)
    assert.match(answer, /"code":"payload_too_large"/)
  })

  it('invites the body of a realm token request, which its client credentials are in', async () => {
    const body = new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }).toString()
    const client = await askToSend(gw, `POST /realms/platform/protocol/openid-connect/token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n`)
    assert.ok(client.received().startsWith(CONTINUE), client.received())
    const answer = await sendBody(client, body)
    client.socket.destroy()
    assert.deepEqual(statuses(answer), ['100', '200'], answer)
    assert.match(answer, /"access_token":"/)
  })

  it('lets curl upload no byte of a body it refuses, and the whole of one it allows', async () => {
    const dir = tempDir()
    const file = join(dir, 'upload')
    // Over 1 MiB: curl then sends Expect: 100-continue of its own accord. It waits a second for an answer before it
    // sends the body anyway: 30 here, so that a busy machine's slow answer is not taken for none.
    writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, 120))
    const curl = async (...args: string[]): Promise<string> => (await promisify(execFile)('curl', ['-sS', '--expect100-timeout', '30', '-o', '/dev/null', '-w', '%{http_code} %{size_upload}', '--data-binary', `@${file}`, ...args, `${gw.url}/rec/upload`])).stdout
    try {
      assert.equal(await curl('-u', 'admin:not-the-password'), '401 0')
      assert.equal(await curl('-u', `admin:${ADMIN_PASSWORD}`), `200 ${3 * 1024 * 1024}`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    assert.equal(upstream.seen.at(-1)!.bytes, 3 * 1024 * 1024)
  })

  it('leaves a WebSocket upgrade as it was: switched, without a 100, with or without Expect', async () => {
    for (const expect of ['', 'Expect: 100-continue\r\n']) {
      const client = await rawClient(gw.url, '127.0.0.1', `GET /live/events HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${expect}\r\n`)
      const answer = await eventually(client.received, (text) => text.includes('\r\n\r\n'), 10_000)
      client.socket.destroy()
      assert.deepEqual(statuses(answer), ['101'], answer)
      assert.match(answer, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i)
    }
  })

  it('still answers an expectation other than 100-continue with 417', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', `${upload('/rec/upload', `Authorization: ${adminAuth.authorization}\r\nExpect: 200-ok\r\n`, 5)}\r\n`)
    assert.deepEqual(statuses(await untilClosed(client)), ['417'], client.received())
  })
})
