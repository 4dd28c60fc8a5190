import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { hash as argon2Hash } from '@node-rs/argon2'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { TOKEN_PATH, testRealms } from '../helpers/oidc.ts'
import { login } from '../helpers/session.ts'

/** Gatehouse's own parameters, as every hash it makes carries them. */
const OWN_PARAMETERS = '$argon2id$v=19$m=19456,t=2,p=1$'

/**
 * Hashes stored from elsewhere (a database restored from another installation, accounts imported): one whose cost
 * Gatehouse will not run, and one it runs once and replaces with its own.
 */
describe('stored password hashes of another cost', () => {
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []
  /**
   * A valid argon2id hash of a hundred million passes over 8 KiB: its verification would run for hours on a hashing
   * thread that cannot be stopped.
   */
  const SALT = 'c29tZXNhbHRzb21lc2FsdA'
  const ENDLESS_HASH = `$argon2id$v=19$m=8,t=100000000,p=1$${SALT}$cG9pbnRsZXNzcG9pbnRsZXNzcG9pbnRsZXNzcG9pbnQ`
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms }, logLines })
  })
  after(() => gw.close())

  it('answers a sign-in against a hash above the ceiling as a wrong password, without running it, and names the account to the administrator without the hash', async () => {
    await gw.store.users.create({ username: 'costly', passwordHash: ENDLESS_HASH })
    const basicAnswer = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('costly', 'any-password-at-all') } })
    assert.equal(basicAnswer.status, 401)
    assert.equal((await json(basicAnswer)).code, 'invalid_credentials')
    const granted = await gw.fetch(TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'costly', password: 'any-password-at-all' }) })
    assert.equal(granted.status, 400)
    assert.equal((await json(granted)).error, 'invalid_grant')
    const refused = logLines.filter((line) => line.username === 'costly' && String(line.msg).includes('password hash'))
    assert.equal(refused.length, 2, 'each refused check is logged')
    assert.equal(refused[0]!.level, 40)
    assert.match(String(refused[0]!.reason), /100000000 passes/)
    assert.ok(!JSON.stringify(logLines).includes(SALT), 'the hash is not logged')
  })

  it('verifies a hash of another cost within the ceiling and replaces it at the sign-in with one of its own parameters, ending nothing', async () => {
    // Keycloak's argon2 parameters (7 MiB, 5 passes), as an account imported from it carries.
    const imported = await gw.store.users.create({ username: 'imported', passwordHash: await argon2Hash('imported-password-long', { algorithm: 2, memoryCost: 7168, timeCost: 5, parallelism: 1 }) })
    const session = await login(gw, 'imported', 'imported-password-long')
    const rehashed = (await gw.store.users.findById(imported.id))!
    assert.ok(rehashed.passwordHash!.startsWith(OWN_PARAMETERS), rehashed.passwordHash!)
    assert.equal(rehashed.notBefore, imported.notBefore, 'no session or token ends')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('imported', 'imported-password-long') } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('imported', 'not-the-password') } })).status, 401)
    assert.equal((await gw.store.users.findById(imported.id))!.passwordHash, rehashed.passwordHash, 'replaced once')
  })
})
