import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
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
