import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/** Opens a WebSocket to the controller and resolves once the demo service's first message came. */
async function open(gw: TestGateway, headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/controller/v2/websocket/`, { headers })
  await once(ws, 'message')
  return ws
}

/** The status and code the gateway answers an upgrade it refuses. */
async function refused(gw: TestGateway, headers: Record<string, string>): Promise<{ status: number; code: string }> {
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/controller/v2/websocket/`, { headers })
  ws.on('error', () => undefined)
  const [, response] = await once(ws, 'unexpected-response')
  let text = ''
  for await (const chunk of response) text += chunk
  return { status: response.statusCode, code: JSON.parse(text).code }
}

/** The close code and reason the client is sent, within `ms` of `after` having been done. */
async function closedAfter(ws: WebSocket, after: () => Promise<void>, ms: number): Promise<{ code: number; reason: string }> {
  // Listened for first: the socket may close while `after` is still under way.
  const closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }))
  await after()
  const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms).unref())
  return Promise.race([closed, late])
}

describe('a WebSocket opened with directory Basic credentials while the directory is down', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({
      config: {
        ldap: directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: 4 } }),
        // The shortest a verified password is remembered: the socket's check asks the directory again soon.
        auth: { basic_cache_seconds: 1 },
      },
    })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('keeps no other socket waiting while one socket\'s check waits on a directory that hangs: a revoked token\'s closes within a second', async () => {
    const alice = await open(gw, { authorization: basic('alice', PASSWORDS.alice!) })
    alice.on('error', () => undefined)
    const created = await createToken(gw, adminAuth)
    const admin = await open(gw, bearer(created.token))
    directory.pause()
    try {
      // alice's password is no longer remembered: her socket's next check asks the directory, which never answers.
      await sleep(1500)
      const revokedAt = performance.now()
      const { code, reason } = await closedAfter(admin, async () => {
        assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
      }, 5000)
      const ms = performance.now() - revokedAt
      assert.deepEqual({ code, reason }, { code: 1008, reason: 'credential revoked' })
      assert.ok(ms < 1000, `the revoked token's socket was closed ${Math.round(ms)} ms after the revocation`)
    } finally {
      directory.resume()
      alice.terminate()
    }
  })

  it('is closed as one to try again later (1013), not as a revoked credential, and the reconnection is told 503', async () => {
    const auth = { authorization: basic('alice', PASSWORDS.alice!) }
    const ws = await open(gw, auth)
    ws.on('error', () => undefined)
    try {
      const { code, reason } = await closedAfter(ws, () => directory.stop(), 20_000)
      assert.deepEqual({ code, reason }, { code: 1013, reason: 'directory unavailable' })
      const again = await refused(gw, auth)
      assert.deepEqual(again, { status: 503, code: 'directory_unavailable' })
    } finally {
      await directory.start()
    }
    const back = await open(gw, auth)
    back.close()
  })
})
