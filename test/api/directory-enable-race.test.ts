import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, userId } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'

const USER_FILTER = '(&(uid={username})(!(employeeType=former)))'
const personDn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`

/**
 * A superuser enables a directory account again only while the directory lists its entry. Between the API's reading
 * of the account and its write, the account may change: here another administrator enables it and the account check,
 * finding the entry gone, disables it again. The write made on what the API read would enable the account for someone
 * the directory no longer has; it is refused instead, and the account stays as the check left it.
 */
for (const backend of gatewayBackends) {
  describe(`enabling a directory account that changed while the directory was asked (${backend.name})`, () => {
    let directory: TestDirectory
    let gw: TestGateway

    before(async () => {
      directory = await startDirectory()
      gw = await backend.start({ config: { ldap: directory.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: USER_FILTER }, account_check: { interval_seconds: 0 } }) } })
    })
    after(async () => {
      await gw?.close()
      await directory?.close()
    })

    it('answers 409 account_changed and leaves the account disabled', async () => {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', PASSWORDS.carol!) } })).status, 200)
      const id = await userId(gw, 'carol')
      assert.equal((await call(gw, 'PATCH', `users/${id}/`, { is_active: false })).status, 200)

      const ldap = gw.app.directory!
      const listedEntry = ldap.listedEntry.bind(ldap)
      ldap.listedEntry = async (username) => {
        const listed = await listedEntry(username)
        ldap.listedEntry = listedEntry
        await gw.app.accounts.update(id, { isActive: true })
        await directory.replaceAttribute(personDn('carol'), 'employeeType', ['former'])
        assert.equal(await gw.app.directoryCheck!.confirm((await gw.app.accounts.get(id))!), false, 'the check disables it')
        return listed
      }
      try {
        const refused = await call(gw, 'PATCH', `users/${id}/`, { is_active: true })
        assert.deepEqual([refused.status, refused.body.code], [409, 'account_changed'], JSON.stringify(refused.body))
        assert.equal(typeof refused.body.detail, 'string')
      } finally {
        ldap.listedEntry = listedEntry
      }
      assert.equal((await call(gw, 'GET', `users/${id}/`)).body.is_active, false)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', PASSWORDS.carol!) } })).status, 401)

      // Asked again, the directory's answer is the current one.
      const again = await call(gw, 'PATCH', `users/${id}/`, { is_active: true })
      assert.deepEqual([again.status, again.body.code], [403, 'managed_by_source'])
      await directory.replaceAttribute(personDn('carol'), 'employeeType', [])
      const enabled = await call(gw, 'PATCH', `users/${id}/`, { is_active: true })
      assert.equal(enabled.status, 200, JSON.stringify(enabled.body))
    })
  })
}
