import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { tokenRequest, testRealms } from '../helpers/oidc.ts'

describe('login lockout for directory (LDAP) accounts', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: 2 } }), realms: testRealms } })
    await gw.app.settings.update({ login_failures_before_lockout: 3 })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  const code = async (username: string, password: string) =>
    (await json(await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } }))).code as string | undefined

  it('locks a directory user after wrong passwords, and then refuses the right one without asking the directory', async () => {
    for (let i = 0; i < 3; i++) assert.equal(await code('alice', `wrong-${i}`), 'invalid_credentials')
    await directory.stop()
    try {
      assert.equal(await code('alice', PASSWORDS.alice!), 'account_locked', 'not directory_unavailable: the directory is not asked')
    } finally {
      await directory.start()
    }
    const grant = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: PASSWORDS.alice! })
    assert.deepEqual(grant.body, { error: 'invalid_grant', error_description: 'Invalid user credentials' })
    await gw.app.accounts.lockout.clear('alice')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status, 200)
  })

  it('does not count a directory outage as a failed login', async () => {
    await directory.stop()
    try {
      for (let i = 0; i < 4; i++) assert.equal(await code('bob', PASSWORDS.bob!), 'directory_unavailable')
    } finally {
      await directory.start()
    }
    assert.equal(await gw.store.loginFailures.find('bob'), undefined)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('bob', PASSWORDS.bob!) } })).status, 200)
  })
})
