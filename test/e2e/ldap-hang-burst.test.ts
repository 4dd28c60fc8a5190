import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'

const LOOKUP_SECONDS = 1
/** Checks from one address that may run at once: a burst of more waits in the lockout's queue. */
const ADDRESS_BUDGET = 4

interface Answer {
  status: number
  code: string | undefined
  ms: number
}

/**
 * A burst of directory logins from one client address while the directory hangs (slapd stopped with SIGSTOP): the
 * lockout lets only the address's budget run at once, and the others wait for them. Each login's directory deadline
 * counts from its arrival, the queue included, and a server that let one pass is tried by one lookup at a time.
 */
describe('a burst of directory logins while the directory hangs', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({
      config: { ldap: directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: LOOKUP_SECONDS } }), auth: { basic_cache_seconds: 0 } },
    })
    await gw.app.settings.update({ login_failures_per_address: ADDRESS_BUDGET })
  })
  after(async () => {
    directory?.resume()
    await gw?.close()
    await directory?.close()
  })

  const login = async (authorization: string): Promise<Answer> => {
    const started = Date.now()
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization }, signal: AbortSignal.timeout(20_000) })
    const body = await response.json() as { code?: string }
    return { status: response.status, code: body.code, ms: Date.now() - started }
  }

  it('answers every login within about lookup_seconds, and a local login from the same address meanwhile too', async () => {
    directory.pause()
    let burst: Answer[]
    let local: Answer
    try {
      const logins = Promise.all(Array.from({ length: ADDRESS_BUDGET * 6 }, (_, i) => login(basic(`person${i}`, 'some-password'))))
      await new Promise((resolve) => setTimeout(resolve, 200))
      local = await login(adminAuth.authorization)
      burst = await logins
    } finally {
      directory.resume()
    }
    assert.deepEqual(new Set(burst.map(({ status, code }) => `${status} ${code}`)), new Set(['503 directory_unavailable']))
    const slowest = Math.max(...burst.map(({ ms }) => ms))
    assert.ok(slowest < LOOKUP_SECONDS * 1000 + 1000, `the slowest took ${slowest} ms`)
    assert.equal(local.status, 200)
    assert.ok(local.ms < LOOKUP_SECONDS * 1000 + 800, `the local login took ${local.ms} ms`)
    // Nothing was counted as a wrong password, and the directory is asked again once it answers.
    assert.equal((await gw.store.loginFailures.findBoth(undefined, '127.0.0.1'))[1], undefined)
    assert.equal((await login(basic('alice', PASSWORDS.alice!))).status, 200)
  })

  it('once a lookup found the directory silent, tries it with one lookup at a time and fails the others at once', async () => {
    directory.pause()
    let others: Answer[]
    let probe: Answer
    try {
      const first = await login(basic('bob', PASSWORDS.bob!))
      assert.equal(first.status, 503)
      const probing = login(basic('carol', PASSWORDS.carol!))
      await new Promise((resolve) => setTimeout(resolve, 100))
      others = await Promise.all(['dave', 'erin', 'frank'].map((name) => login(basic(name, 'some-password'))))
      probe = await probing
    } finally {
      directory.resume()
    }
    for (const other of others) {
      assert.deepEqual([other.status, other.code], [503, 'directory_unavailable'])
      assert.ok(other.ms < 500, `took ${other.ms} ms`)
    }
    assert.deepEqual([probe.status, probe.code], [503, 'directory_unavailable'])
    assert.ok(probe.ms >= LOOKUP_SECONDS * 1000 - 100, `the lookup trying it again waited for it: ${probe.ms} ms`)
    assert.equal((await login(basic('bob', PASSWORDS.bob!))).status, 200, 'the first lookup after it is back gets its answer')
  })
})

/**
 * A directory that answers every lookup, slowly (each request a connection sends reaches slapd after a delay), under
 * a burst from one address: checks that waited in the lockout's queue come to the directory with less than
 * `lookup_seconds` left and may run out of it, but the server answered everything it was given its whole time for,
 * so it is not taken for silent, and logins from other addresses go on being checked.
 */
describe('a burst of directory logins while the directory is slow but answers', () => {
  // A login of about five round trips takes about a second, a quarter of its lookup_seconds: one given its whole time
  // is answered even on a busy machine, and of five from one address, checked one at a time, the last ones are not.
  const DELAY_MS = 200
  const SLOW_LOOKUP_SECONDS = 4
  let directory: TestDirectory
  let gw: TestGateway
  let relay: Server
  before(async () => {
    directory = await startDirectory()
    await directory.addPerson('frank', 'frank-directory-password')
    const slapd = new URL(directory.url)
    relay = createServer((client) => {
      const server = connect(Number(slapd.port), slapd.hostname)
      client.on('data', (data) => setTimeout(() => server.write(data), DELAY_MS))
      server.on('data', (data) => client.write(data))
      for (const [one, other] of [[client, server], [server, client]] as const) {
        one.on('error', () => other.destroy())
        one.on('close', () => other.destroy())
      }
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const { port } = relay.address() as AddressInfo
    const config = directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: SLOW_LOOKUP_SECONDS } }) as Record<string, unknown>
    gw = await startGateway({ config: { ldap: { ...config, servers: [`ldap://127.0.0.1:${port}`] }, auth: { basic_cache_seconds: 0 } } })
    await gw.app.settings.update({ login_failures_per_address: 1 })
  })
  after(async () => {
    await gw?.close()
    relay?.close()
    await directory?.close()
  })

  const passwords: Record<string, string> = { ...PASSWORDS, frank: 'frank-directory-password' }
  const login = async (from: string, name: string): Promise<string> => {
    const response = await requestFrom(from, `${gw.url}/api/gateway/v1/me/`, { headers: { authorization: basic(name, passwords[name]!) } })
    return response.status === 200 ? '200' : `${response.status} ${String(response.json().code)}`
  }

  it('keeps checking logins from other addresses after queued checks ran out of time', async () => {
    const alone = Date.now()
    assert.equal(await login('127.0.0.2', 'alice'), '200')
    assert.ok(Date.now() - alone < SLOW_LOOKUP_SECONDS * 1000, 'one lookup fits in lookup_seconds')
    // One check at a time from this address: the later ones wait, and may find their time run out.
    const burst = await Promise.all(['alice', 'bob', 'carol', 'dave', 'frank'].map((name) => login('127.0.0.5', name)))
    assert.equal(burst[0], '200', 'the check given its whole time is answered')
    for (const answer of burst) assert.ok(['200', '503 directory_unavailable'].includes(answer), answer)
    assert.ok(burst.includes('503 directory_unavailable'), `checks that waited ran out of time: ${burst.join(', ')}`)
    assert.deepEqual(await Promise.all([login('127.0.0.3', 'carol'), login('127.0.0.4', 'dave')]), ['200', '200'], 'the server is not taken for silent')
  })
})
