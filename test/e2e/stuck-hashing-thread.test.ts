import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { hashingThreads, hashPassword } from '../../src/directory/passwords.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { TOKEN_PATH, testRealms } from '../helpers/oidc.ts'
import { csrfToken, LOGIN, login } from '../helpers/session.ts'

/**
 * A hashing thread that takes too long over a check (here: a thread that spins for ever on the password `hang`, as
 * test/fixtures/misbehaving-hashing-thread.js does; a hash of a pathological cost took from under a second to
 * several, on either side of any bound a test could set) is put aside after its bound: the check fails closed with 503 password_check_failed at every
 * door, is no failed login, the other checks go on meanwhile, and the operator is told.
 */
describe('a password check whose hashing thread is stuck', () => {
  let gw: TestGateway
  const PASSWORD = 'hang'
  /** PASSWORD's hash at the usual cost, made beforehand: the threads here would spin on making it. */
  const HASH_OF_PASSWORD = '$argon2id$v=19$m=19456,t=2,p=1$oGlYxdrfzrpRX/6RHn1T+Q$Xdo9QSL7sth+pjK44eoH87LI1rlQKx8asuYi0lSxMUo'
  let malloryId: number
  const logLines: Record<string, unknown>[] = []
  before(async () => {
    // Far above a usual verification (tens of milliseconds, a few hundred on a busy machine); the spinning thread never ends.
    hashingThreads.jobTimeoutMs = 3000
    hashingThreads.script = new URL('../fixtures/misbehaving-hashing-thread.js', import.meta.url)
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0 }, realms: testRealms }, logLines })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
    malloryId = (await gw.app.store.users.create({ username: 'mallory', passwordHash: HASH_OF_PASSWORD })).id
    await gw.app.settings.update({ login_failures_before_lockout: 2 })
  })
  after(() => gw.close())

  async function assertFailedClosed(response: Response, codeMember: 'code' | 'error' = 'code'): Promise<void> {
    assert.equal(response.status, 503)
    assert.ok(Number(response.headers.get('retry-after')) >= 1)
    assert.equal((await json(response))[codeMember], 'password_check_failed')
  }

  it('fails closed at every door while other checks go on, and counts no failed login', async () => {
    const stuck = gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('mallory', PASSWORD) } })
    for (let i = 0; i < 3; i++) {
      const granted = await gw.fetch(TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password-long' }) })
      assert.equal(granted.status, 200)
    }
    await assertFailedClosed(await stuck)
    const putAside = logLines.find((line) => String(line.msg).startsWith('password checks: a hashing thread was put aside'))
    assert.equal(putAside?.level, 50)
    assert.match(String(putAside.reason), /took more than 3000 ms/)
    await assertFailedClosed(await gw.fetch(TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'mallory', password: PASSWORD }) }), 'error')
    const token = await csrfToken(gw)
    await assertFailedClosed(await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
      body: new URLSearchParams({ username: 'mallory', password: PASSWORD }).toString(),
    }))
    // Three checks failed closed, two wrong passwords enough to lock: with a password its thread does not hang on, the account signs in.
    await gw.app.store.users.update(malloryId, { passwordHash: await hashPassword('mallory-password-long') })
    await login(gw, 'mallory', 'mallory-password-long')
  })
})
