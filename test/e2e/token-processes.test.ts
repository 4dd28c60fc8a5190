import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { ADMIN_PASSWORD, basic, json, runCli, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { jsonLines } from '../helpers/logged.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { eventually } from '../helpers/raw-client.ts'

/** Two `gatehouse serve` processes on one database: a revocation made anywhere holds everywhere at once. */
function revocationAcrossProcesses(backend: string, storage: { args: string[]; cleanup: () => Promise<void> } | (() => Promise<{ args: string[]; cleanup: () => Promise<void> }>)): void {
  describe(`token revocation across gateway processes on ${backend}`, () => {
    let dirArgs: string[] = []
    let cleanup = async () => {}
    let first: GatewayProcess
    let second: GatewayProcess
    const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
    const alice = { authorization: basic('alice', 'alice-password') }

    before(async () => {
      ;({ args: dirArgs, cleanup } = typeof storage === 'function' ? await storage() : storage)
      // At level info: a log line per request and per closed socket.
      first = await spawnGateway(['--demo', ...dirArgs], { GATEHOUSE_LOG_LEVEL: 'info' })
      second = await spawnGateway(['--demo', ...dirArgs], { GATEHOUSE_LOG_LEVEL: 'info' })
      const created = await fetch(`${first.url}/api/gateway/v1/users/`, {
        method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
      })
      assert.equal(created.status, 201)
    })
    after(async () => {
      await Promise.all([first?.stop(), second?.stop()])
      await cleanup()
    })

    async function createToken(gateway: GatewayProcess, auth: Record<string, string>): Promise<{ id: number; token: string }> {
      const response = await fetch(`${gateway.url}/api/gateway/v1/tokens/`, { method: 'POST', headers: auth })
      assert.equal(response.status, 201)
      return json(response)
    }
    const hosts = (gateway: GatewayProcess, token: string) =>
      fetch(`${gateway.url}/api/controller/v2/hosts/`, { headers: { authorization: `Bearer ${token}` } })
    async function worksOnBoth(token: string, username: string): Promise<void> {
      for (const gateway of [first, second]) {
        const response = await hosts(gateway, token)
        assert.equal(response.status, 200)
        assert.equal((await json(response)).identity.username, username)
      }
    }
    async function refusedOnBoth(token: string, code: string): Promise<void> {
      for (const gateway of [first, second]) {
        const response = await hosts(gateway, token)
        assert.equal(response.status, 401, `${gateway.url}: ${response.status}`)
        assert.equal((await json(response)).code, code)
      }
    }

    it('refuses a token deleted through one process on the other at once', async () => {
      const { id, token } = await createToken(first, alice)
      await worksOnBoth(token, 'alice')
      assert.equal((await fetch(`${second.url}/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: alice })).status, 204)
      await refusedOnBoth(token, 'invalid_token')
    })

    it('refuses every token of a user revoked through one process on the other at once', async () => {
      const aliceToken = await createToken(second, alice)
      const adminToken = await createToken(first, admin)
      await worksOnBoth(aliceToken.token, 'alice')
      await worksOnBoth(adminToken.token, 'admin')
      const me = await json(await fetch(`${first.url}/api/gateway/v1/me/`, { headers: alice }))
      const revoke = await fetch(`${first.url}/api/gateway/v1/tokens/revoke/`, {
        method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ user: me.results[0].id }),
      })
      assert.equal(revoke.status, 200)
      await refusedOnBoth(aliceToken.token, 'invalid_token')
      await worksOnBoth(adminToken.token, 'admin')
    })

    it('refuses a disabled owner\'s token on the other process at once', async () => {
      await fetch(`${first.url}/api/gateway/v1/users/`, {
        method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bob', password: 'bob-password' }),
      })
      const { token } = await createToken(first, { authorization: basic('bob', 'bob-password') })
      await worksOnBoth(token, 'bob')
      const disabled = await runCli(['users', 'disable', 'bob', ...dirArgs])
      assert.equal(disabled.code, 0, disabled.stderr)
      await refusedOnBoth(token, 'account_disabled')
    })

    it('refuses every token after `gatehouse tokens revoke --all`, on both processes at once', async () => {
      const tokens = [await createToken(first, alice), await createToken(second, admin)]
      for (const { token } of tokens) await worksOnBoth(token, token === tokens[0]!.token ? 'alice' : 'admin')
      const revoked = await runCli(['tokens', 'revoke', '--all', ...dirArgs])
      assert.equal(revoked.code, 0, revoked.stderr)
      assert.match(revoked.stdout, /revoked [1-9]\d* token/)
      for (const { token } of tokens) await refusedOnBoth(token, 'invalid_token')
    })

    it('refuses a user\'s tokens after `gatehouse tokens revoke --user`, on both processes at once', async () => {
      const aliceToken = await createToken(first, alice)
      const adminToken = await createToken(first, admin)
      await worksOnBoth(aliceToken.token, 'alice')
      const revoked = await runCli(['tokens', 'revoke', '--user', 'alice', ...dirArgs])
      assert.equal(revoked.code, 0, revoked.stderr)
      await refusedOnBoth(aliceToken.token, 'invalid_token')
      await worksOnBoth(adminToken.token, 'admin')
    })

    it('closes a WebSocket open on the other process within a second of its token being deleted', async () => {
      const { id, token } = await createToken(first, alice)
      const socket = new WebSocket(`${second.url.replace('http:', 'ws:')}/api/controller/v2/events/`, { headers: { authorization: `Bearer ${token}` } })
      const [greeting] = await once(socket, 'message')
      assert.equal(JSON.parse(String(greeting)).identity.username, 'alice')
      const closed = once(socket, 'close')
      const deleted = await fetch(`${first.url}/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: alice })
      assert.equal(deleted.status, 204)
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the socket is still open 10 s after its token was deleted')), 10_000).unref())
      await Promise.race([closed, timeout])
      // From the answer to the deletion to the close, as the processes logged them: this process's own delays in
      // hearing of either, on a loaded machine, are not the gateway's.
      const logged = () => ({
        deletion: jsonLines(first.output()).find((line) => line.msg === 'request' && line.reqId === deleted.headers.get('x-request-id')),
        close: jsonLines(second.output()).find((line) => line.msg === 'websocket closed' && line.user === 'alice' && line.closed_by === 'credential_revoked'),
      })
      const { deletion, close } = await eventually(logged, (found) => Boolean(found.deletion && found.close), 10_000)
      assert.ok(deletion && close, 'the deletion and the close are logged')
      // When the process decided to close: the close frames' exchange after it (closing_ms) is the client's own pace.
      const ms = close.time - close.closing_ms - deletion.time
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the deletion`)
    })

    it('closes a WebSocket open on the other process within a second of its owner being disabled', async () => {
      await fetch(`${first.url}/api/gateway/v1/users/`, {
        method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', password: 'carol-password' }),
      })
      const { token } = await createToken(first, { authorization: basic('carol', 'carol-password') })
      const socket = new WebSocket(`${second.url.replace('http:', 'ws:')}/api/controller/v2/events/`, { headers: { authorization: `Bearer ${token}` } })
      await once(socket, 'message')
      let closedAt = Number.NaN
      const closed = once(socket, 'close').then(() => (closedAt = performance.now()))
      const disabled = await runCli(['users', 'disable', 'carol', ...dirArgs])
      assert.equal(disabled.code, 0, disabled.stderr)
      const disabledAt = performance.now()
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('the socket is still open 2 s after its owner was disabled')), 2000).unref())
      await Promise.race([closed, timeout])
      assert.ok(closedAt - disabledAt < 1000, `closed ${Math.round(closedAt - disabledAt)} ms after the CLI disabled the owner`)
    })

    it('saves last use when a process stops, so the other process shows it', async () => {
      const extra = await spawnGateway(['--demo', ...dirArgs])
      const { id, token } = await createToken(extra, alice)
      assert.equal((await hosts(extra, token)).status, 200)
      await extra.stop()
      const shown = await json(await fetch(`${first.url}/api/gateway/v1/tokens/${id}/`, { headers: alice }))
      assert.notEqual(shown.last_used, null)
    })
  })
}

const dir = tempDir()
revocationAcrossProcesses('SQLite', { args: ['--data-dir', dir], cleanup: async () => rmSync(dir, { recursive: true, force: true }) })
revocationAcrossProcesses('PostgreSQL', async () => {
  const database = await createTestDatabase()
  return { args: ['--database', database.url], cleanup: database.drop }
})
