import assert from 'node:assert/strict'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { call, grant } from '../helpers/access.ts'
import { basic, spawnGateway, spawnGatewayPair, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { awxkitOauth2Token } from '../helpers/platform-clients.ts'
import { jsonLines } from '../helpers/logged.ts'
import { eventually } from '../helpers/raw-client.ts'
import { at, login, withCsrf } from '../helpers/session.ts'

/**
 * A WebSocket lives as long as its credential, whichever gateway process it is open on and whichever process the
 * credential ends through: sockets are opened on one process (or, under `serve --workers`, on connections the
 * primary hands to each worker in turn) and the credential is ended through the other.
 */
interface Processes {
  /** Where the sockets are opened. */
  readonly opened: string
  /** Where the change is made. */
  readonly changed: string
  /** The JSON lines the processes logged so far (at level info: a line per request, and per closed socket). */
  logLines(): Record<string, any>[]
  stop(): Promise<void>
}

const CONTROLLER = '/api/controller/v2/events/'
/** The demo eda service lets a Platform Auditor read (src/demo: its access rules). */
const EDA = '/api/eda/v1/events/'
/** The demo service that takes the realm's access tokens, which an OAuth2 application's are. */
const DEMO_APP = '/demo-app/events/'
/** JSON lines (the output is no terminal), a line per request and per closed socket among them. */
const LOG_EACH_REQUEST = { GATEHOUSE_LOG_LEVEL: 'info' }

/** Opens a socket and waits for the demo service's greeting; the greeting says who the service was told it is. */
async function openSocket(base: string, path: string, headers: Record<string, string>): Promise<{ socket: WebSocket; username: string }> {
  const socket = new WebSocket(`${base.replace('http:', 'ws:')}${path}`, { headers })
  socket.on('error', () => undefined)
  const [greeting] = await once(socket, 'message')
  return { socket, username: JSON.parse(String(greeting)).identity?.username }
}

/** Two sockets on two connections: under `--workers 2` each worker holds one. */
async function openTwo(base: string, path: string, headers: Record<string, string>, username: string): Promise<WebSocket[]> {
  const sockets = await Promise.all([openSocket(base, path, headers), openSocket(base, path, headers)])
  for (const opened of sockets) assert.equal(opened.username, username)
  return sockets.map((opened) => opened.socket)
}

/**
 * Runs `change`, which makes a change through one process and returns its request's id, and resolves with how long
 * after that process answered it the last of `username`'s `sockets` was closed for its credential, both as the
 * processes logged them (the lines' `time`): this process's own delays in hearing of either, on a loaded machine, do
 * not count against the gateway. Fails while the sockets are still open ten seconds after the change, or if a client
 * was not told its credential was revoked.
 */
async function closedAfter(processes: Processes, username: string, sockets: WebSocket[], change: () => Promise<string | null>): Promise<number> {
  const closed = Promise.all(sockets.map((socket) => once(socket, 'close').then(([code, reason]) => {
    assert.deepEqual({ code, reason: String(reason) }, { code: 1008, reason: 'credential revoked' })
  })))
  const requestId = await change()
  assert.ok(requestId, 'the change was answered with its request id')
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('socket(s) still open 10 s after the change')), 10_000)))
  try {
    await Promise.race([closed, timeout])
  } finally {
    clearTimeout(timer)
  }
  // Each process logs as it acts; the lines reach this one through pipes.
  const logged = () => {
    const lines = processes.logLines()
    return {
      changed: lines.find((line) => line.msg === 'request' && line.reqId === requestId),
      closes: lines.filter((line) => line.msg === 'websocket closed' && line.user === username && line.closed_by === 'credential_revoked'),
    }
  }
  const { changed, closes } = await eventually(logged, (found) => found.changed !== undefined && found.closes.length >= sockets.length, 10_000)
  assert.ok(changed, 'the change is logged')
  assert.equal(closes.length, sockets.length, 'each socket\'s close is logged')
  // When each process decided to close: the close frames' exchange after it (closing_ms) is the clients' own pace.
  return Math.max(...closes.map((line) => line.time - line.closing_ms)) - changed.time
}

async function stillOpenAfterASecond(sockets: WebSocket[]): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1100))
  for (const socket of sockets) assert.equal(socket.readyState, WebSocket.OPEN, 'a socket whose credential is still good stays open')
}

async function createToken(base: string, auth: Record<string, string>): Promise<{ id: number; token: string }> {
  const { status, body } = await call(at(base), 'POST', 'tokens/', {}, auth)
  assert.equal(status, 201, JSON.stringify(body))
  return body
}

function socketsAcrossProcesses(name: string, start: () => Promise<Processes>): void {
  describe(`WebSockets closed across processes: ${name}`, () => {
    let processes: Processes
    let users = 0
    /** A user of each test's own, so one test's ending of credentials cannot close another's sockets. */
    async function newUser(): Promise<{ username: string; password: string; auth: Record<string, string> }> {
      const username = `wsuser${++users}`
      const password = `${username}-password-long`
      assert.equal((await call(at(processes.changed), 'POST', 'users/', { username, password })).status, 201)
      return { username, password, auth: { authorization: basic(username, password) } }
    }

    before(async () => {
      processes = await start()
    })
    after(async () => {
      await processes?.stop()
    })

    it('closes the session\'s sockets within a second of a logout through the other process, and keeps a token\'s open', async () => {
      const user = await newUser()
      const session = await login(at(processes.changed), user.username, user.password)
      const bySession = await openTwo(processes.opened, CONTROLLER, { cookie: session.cookie }, user.username)
      const { token } = await createToken(processes.changed, user.auth)
      const byToken = await openTwo(processes.opened, CONTROLLER, { authorization: `Bearer ${token}` }, user.username)
      const ms = await closedAfter(processes, user.username, bySession, async () => {
        const response = await at(processes.changed).fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session, { referer: `${processes.changed}/` }), redirect: 'manual' })
        assert.ok(response.status < 400, `logout answered ${response.status}`)
        return response.headers.get('x-request-id')
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the logout`)
      await stillOpenAfterASecond(byToken)
      for (const socket of byToken) socket.close()
    })

    it('closes session and Basic sockets within a second of a password change through the other process, and keeps a token\'s open', async () => {
      const user = await newUser()
      const session = await login(at(processes.changed), user.username, user.password)
      const { token } = await createToken(processes.changed, user.auth)
      const bySession = await openTwo(processes.opened, CONTROLLER, { cookie: session.cookie }, user.username)
      const byBasic = await openTwo(processes.opened, CONTROLLER, user.auth, user.username)
      const byToken = await openTwo(processes.opened, CONTROLLER, { authorization: `Bearer ${token}` }, user.username)
      const ms = await closedAfter(processes, user.username, [...bySession, ...byBasic], async () => {
        const changed = await call(at(processes.changed), 'POST', 'me/password/', { current_password: user.password, new_password: `${user.password}-new` }, user.auth)
        assert.ok(changed.status < 300, JSON.stringify(changed.body))
        return changed.requestId
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the password change`)
      await stillOpenAfterASecond(byToken)
      for (const socket of byToken) socket.close()
    })

    it('closes a token\'s sockets within a second of its deletion through the other process', async () => {
      const user = await newUser()
      const { id, token } = await createToken(processes.changed, user.auth)
      const sockets = await openTwo(processes.opened, CONTROLLER, { authorization: `Bearer ${token}` }, user.username)
      const ms = await closedAfter(processes, user.username, sockets, async () => {
        const deleted = await call(at(processes.changed), 'DELETE', `tokens/${id}/`, undefined, user.auth)
        assert.equal(deleted.status, 204)
        return deleted.requestId
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the deletion`)
    })

    const accountEndings = [
      ['disabled', (id: number) => call(at(processes.changed), 'PATCH', `users/${id}/`, { is_active: false }), 200],
      ['deleted', (id: number) => call(at(processes.changed), 'DELETE', `users/${id}/`), 204],
    ] as const
    for (const [ending, end, status] of accountEndings) {
      it(`closes every socket of a user within a second of the account being ${ending} through the other process`, async () => {
        const user = await newUser()
        const { token } = await createToken(processes.changed, user.auth)
        const sockets = [...await openTwo(processes.opened, CONTROLLER, { authorization: `Bearer ${token}` }, user.username), ...await openTwo(processes.opened, CONTROLLER, user.auth, user.username)]
        const { body: found } = await call(at(processes.changed), 'GET', `users/?username=${user.username}`)
        const ms = await closedAfter(processes, user.username, sockets, async () => {
          const ended = await end(found.results[0].id)
          assert.equal(ended.status, status)
          return ended.requestId
        })
        assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the account was ${ending}`)
      })
    }

    it('closes the sockets of an application\'s token within a second of the application being deleted through the other process', async () => {
      const user = await newUser()
      const created = await call(at(processes.changed), 'POST', 'applications/', { name: `app-${user.username}`, client_type: 'confidential', authorization_grant_type: 'password' })
      assert.equal(created.status, 201, JSON.stringify(created.body))
      // Issued where it is used: each process here has an address, and so a realm issuer, of its own.
      const { status, token } = await awxkitOauth2Token(processes.opened, { username: user.username, password: user.password, clientId: created.body.client_id, clientSecret: created.body.client_secret })
      assert.equal(status, 201)
      assert.ok(token)
      const sockets = await openTwo(processes.opened, DEMO_APP, { authorization: `Bearer ${token}` }, user.username)
      const ms = await closedAfter(processes, user.username, sockets, async () => {
        const deleted = await call(at(processes.changed), 'DELETE', `applications/${created.body.id}/`)
        assert.equal(deleted.status, 204)
        return deleted.requestId
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the application was deleted`)
    })

    it('closes a socket within a second of a role revoked through the other process making the service\'s rules refuse its user', async () => {
      const user = await newUser()
      const auditor = await grant(at(processes.changed), user.username, 'Platform Auditor')
      assert.equal(auditor.status, 201, JSON.stringify(auditor.body))
      const sockets = await openTwo(processes.opened, EDA, user.auth, user.username)
      const ms = await closedAfter(processes, user.username, sockets, async () => {
        const revoked = await call(at(processes.changed), 'DELETE', `role_user_assignments/${auditor.body.id}/`)
        assert.equal(revoked.status, 204)
        return revoked.requestId
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the role was revoked`)
    })

    // Last: it deletes the organization the demo's rules name.
    it('closes a socket within a second of the organization it was let in by being deleted through the other process', async () => {
      const user = await newUser()
      const { body: organizations } = await call(at(processes.changed), 'GET', 'organizations/?name=Research')
      const member = await grant(at(processes.changed), user.username, 'Organization Member', organizations.results[0].id)
      assert.equal(member.status, 201, JSON.stringify(member.body))
      const sockets = await openTwo(processes.opened, EDA, user.auth, user.username)
      const ms = await closedAfter(processes, user.username, sockets, async () => {
        const deleted = await call(at(processes.changed), 'DELETE', `organizations/${organizations.results[0].id}/`)
        assert.equal(deleted.status, 204)
        return deleted.requestId
      })
      assert.ok(ms < 1000, `closed ${Math.round(ms)} ms after the organization was deleted`)
    })
  })
}

function twoProcesses(storage: () => Promise<{ args: string[] | undefined; cleanup: () => Promise<void> }>): () => Promise<Processes> {
  return async () => {
    const chosen = await storage()
    const pair = await spawnGatewayPair(chosen.args, LOG_EACH_REQUEST)
    return {
      opened: pair.first.url,
      changed: pair.second.url,
      logLines: () => jsonLines(pair.first.output() + pair.second.output()),
      async stop() {
        await pair.stop()
        await chosen.cleanup()
      },
    }
  }
}

socketsAcrossProcesses('two processes on SQLite', twoProcesses(async () => ({ args: undefined, cleanup: async () => {} })))
socketsAcrossProcesses('two processes on PostgreSQL', twoProcesses(async () => {
  const database = await createTestDatabase()
  return { args: ['--database', database.url], cleanup: database.drop }
}))
socketsAcrossProcesses('serve --workers 2 on SQLite', async () => {
  const dir = tempDir()
  const gateway: GatewayProcess = await spawnGateway(['--demo', '--data-dir', dir, '--workers', '2'], LOG_EACH_REQUEST)
  return {
    opened: gateway.url,
    changed: gateway.url,
    logLines: () => jsonLines(gateway.output()),
    async stop() {
      await gateway.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
