import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { tokenRequest, testRealms } from '../helpers/oidc.ts'

const LIMIT = 3

describe('login lockout for a directory user signing in by uid or by mail', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    const ldap = directory.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: '(|(uid={username})(mail={username}))' } })
    gw = await startGateway({ config: { ldap, realms: testRealms } })
    await gw.app.settings.update({ login_failures_before_lockout: LIMIT, login_lockout_spares_clean_addresses: false })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  const code = async (username: string, password: string) =>
    (await json(await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } }))).code as string | undefined

  it('locks the user under both names once the wrong passwords given under either reach the limit', async () => {
    assert.equal(await code('alice', 'wrong-1'), 'invalid_credentials')
    assert.equal(await code('alice@example.test', 'wrong-2'), 'invalid_credentials')
    assert.equal(await code('alice@example.test', 'wrong-3'), 'invalid_credentials')
    assert.equal((await gw.store.loginFailures.find('alice'))?.failures, LIMIT, 'every failure counts against the account')
    assert.equal((await gw.store.loginFailures.find('alice@example.test'))?.failures, 2, 'and, as before, against the name typed')
    assert.equal(await code('alice', PASSWORDS.alice!), 'account_locked')
    const byMail = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice@example.test', PASSWORDS.alice!) } })
    assert.equal(byMail.status, 401)
    assert.equal((await json(byMail)).code, 'account_locked')
    assert.ok(Number(byMail.headers.get('retry-after')) >= 1)
    const grant = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice@example.test', password: PASSWORDS.alice! })
    assert.deepEqual({ status: grant.status, body: grant.body }, { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid user credentials' } })
    assert.equal((await gw.store.loginFailures.find('alice'))?.failures, LIMIT, 'refused checks are not counted')
    assert.equal((await gw.store.loginFailures.find('alice@example.test'))?.failures, 2)
  })

  it('lets the user in under the other name once the account\'s lock is cleared', async () => {
    await gw.app.accounts.lockout.clear('alice')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice@example.test', PASSWORDS.alice!) } })).status, 200)
  })

  it('clears the account\'s count on a success under the other name', async () => {
    assert.equal(await code('bob', 'wrong-1'), 'invalid_credentials')
    assert.equal(await code('bob', 'wrong-2'), 'invalid_credentials')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('bob@example.test', PASSWORDS.bob!) } })).status, 200)
    assert.equal(await gw.store.loginFailures.find('bob'), undefined)
    assert.equal(await code('bob', 'wrong-3'), 'invalid_credentials', 'the count started again')
  })

  it('lets a burst of parallel wrong passwords under both names try exactly the limit', async () => {
    const names = ['dave', 'dave@example.test', 'dave', 'dave@example.test', 'dave', 'dave@example.test', 'dave', 'dave@example.test']
    const codes = await Promise.all(names.map((name, i) => code(name, `wrong-${i}`)))
    assert.equal(codes.filter((c) => c === 'invalid_credentials').length, LIMIT, codes.join(' '))
    assert.deepEqual(new Set(codes.filter((c) => c !== 'invalid_credentials')), new Set(['account_locked']))
    assert.equal((await gw.store.loginFailures.find('dave'))?.failures, LIMIT)
    assert.equal(await code('dave@example.test', PASSWORDS.dave!), 'account_locked')
  })

  it('counts an unknown name under that name alone, as before, and locks it after the limit', async () => {
    for (let i = 0; i < LIMIT; i++) assert.equal(await code('nobody@example.test', `wrong-${i}`), 'invalid_credentials')
    assert.equal(await code('nobody@example.test', 'anything'), 'account_locked')
    assert.equal((await gw.store.loginFailures.find('nobody@example.test'))?.failures, LIMIT)
    assert.equal(await code('nobody', 'wrong'), 'invalid_credentials', 'a name nobody has shares no count with another')
    assert.equal((await gw.store.loginFailures.find('nobody'))?.failures, 1)
  })

  it('answers a wrong password under an alias of an unlocked user as it answers an unknown name', async () => {
    assert.equal(await code('carol@example.test', 'wrong'), 'invalid_credentials')
    assert.equal(await code('no-such-person@example.test', 'wrong'), 'invalid_credentials')
  })
})
