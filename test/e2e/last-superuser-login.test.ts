import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { signInWithSso, SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

/**
 * A directory or SSO login that would clear the superuser flag of the last active superuser (their group was
 * removed upstream) keeps the flag: the API refuses the same change (403 self_lockout), and a login must not lock
 * every administrator out either. It says so in the audit trail and the log, and demotes them once another
 * superuser is active.
 */
for (const backend of gatewayBackends) {
  describe(`a login that would demote the last active superuser on ${backend.name}`, () => {
    let directory: TestDirectory
    let corp: UpstreamIdp
    let gw: TestGateway
    const logLines: Record<string, unknown>[] = []

    before(async () => {
      directory = await startDirectory()
      corp = await startUpstreamIdp({ root: { sub: 'sub-root', password: 'root-upstream-pw', claims: { preferred_username: 'root', groups: ['gatehouse-admins'] } } })
      gw = await backend.start({
        logLines,
        config: {
          ldap: directory.config(),
          sso: [corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret', superuser_groups: ['gatehouse-admins'] })],
          // Every basic request checks the directory again, so each one is a login.
          auth: { basic_cache_seconds: 0 },
        },
      })
      corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}${SSO}corp/callback/`] })
    })
    after(async () => {
      await gw?.close()
      await directory?.close()
      await corp?.close()
    })

    const aliceLogsIn = async () => (await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status
    const flag = async (username: string) => (await gw.store.users.findByUsername(username))!.isSuperuser
    const setLocalAdmin = async (isSuperuser: boolean) => gw.app.accounts.update((await gw.store.users.findByUsername('admin'))!.id, { isSuperuser })
    async function keptEntries(username: string) {
      await gw.app.audit.flush()
      const { entries } = await gw.store.audit.list({ offset: 0, limit: 500 })
      return entries.filter((e) => e.contentType === 'user' && e.objectName === username && e.code === 'self_lockout')
    }

    it('keeps the flag of the last active superuser whom the directory no longer lists, and says so', async () => {
      assert.equal(await aliceLogsIn(), 200)
      assert.equal(await flag('alice'), true)
      await setLocalAdmin(false)
      await directory.setMembers(GROUPS.admins, [`uid=carol,ou=people,${SUFFIX}`])
      try {
        assert.equal(await aliceLogsIn(), 200, 'the login itself succeeds')
        assert.equal(await flag('alice'), true, 'still a superuser: no one else is')
        assert.equal(await gw.store.users.activeSuperuserCount(), 1)
        const [entry, ...more] = await keptEntries('alice')
        assert.equal(more.length, 0)
        assert.equal(entry!.operation, 'update')
        assert.equal(entry!.authMethod, 'ldap')
        assert.deepEqual(entry!.changes, { added_fields: {}, removed_fields: {}, changed_fields: { is_superuser: [true, false] } })
        assert.ok(logLines.some((line) => line.level === 40 && line.user === 'alice' && line.source === 'ldap'), 'a warning in the log')
        assert.ok(!JSON.stringify(logLines).includes(PASSWORDS.alice!), 'no password in the log')

        // Once another superuser is active, the directory's word applies at the next login.
        await setLocalAdmin(true)
        assert.equal(await aliceLogsIn(), 200)
        assert.equal(await flag('alice'), false)
        assert.equal((await keptEntries('alice')).length, 1)
      } finally {
        await directory.setMembers(GROUPS.admins, [`uid=alice,ou=people,${SUFFIX}`])
      }
      assert.equal(await aliceLogsIn(), 200)
      assert.equal(await flag('alice'), true)
    })

    it('keeps one superuser when the last two log in at once after the directory dropped them both', async () => {
      const logsIn = async (name: string) => (await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(name, PASSWORDS[name]!) } })).status
      await setLocalAdmin(false)
      try {
        for (let round = 0; round < 4; round++) {
          await directory.setMembers(GROUPS.admins, [`uid=alice,ou=people,${SUFFIX}`, `uid=dave,ou=people,${SUFFIX}`])
          assert.deepEqual([await logsIn('alice'), await logsIn('dave')], [200, 200])
          assert.equal(await gw.store.users.activeSuperuserCount(), 2)
          await directory.setMembers(GROUPS.admins, [`uid=carol,ou=people,${SUFFIX}`])
          assert.deepEqual(await Promise.all([logsIn('alice'), logsIn('dave')]), [200, 200])
          assert.equal(await gw.store.users.activeSuperuserCount(), 1, `round ${round}`)
        }
      } finally {
        await directory.setMembers(GROUPS.admins, [`uid=alice,ou=people,${SUFFIX}`])
        await setLocalAdmin(true)
      }
      assert.deepEqual([await logsIn('alice'), await logsIn('dave')], [200, 200])
      assert.deepEqual([await flag('alice'), await flag('dave')], [true, false])
    })

    it('keeps the flag of the last active superuser whose SSO groups claim no longer carries the group, and says so', async () => {
      await signInWithSso(gw, 'Corp ID', 'root', corp)
      assert.equal(await flag('root'), true)
      await setLocalAdmin(false)
      // alice (the directory's superuser) is disabled: root is the one active superuser left.
      const alice = (await gw.store.users.findByUsername('alice'))!
      await gw.app.accounts.update(alice.id, { isActive: false })
      corp.users.get('root')!.claims.groups = []
      try {
        const { page } = await signInWithSso(gw, 'Corp ID', 'root', corp)
        assert.equal(page.response.status, 200, 'signed in')
        assert.equal(await flag('root'), true)
        assert.equal(await gw.store.users.activeSuperuserCount(), 1)
        const [entry] = await keptEntries('root')
        assert.equal(entry!.authMethod, 'sso')
        assert.ok(logLines.some((line) => line.level === 40 && line.user === 'root' && line.source === 'sso'), 'a warning in the log')

        await setLocalAdmin(true)
        await signInWithSso(gw, 'Corp ID', 'root', corp)
        assert.equal(await flag('root'), false)
      } finally {
        corp.users.get('root')!.claims.groups = ['gatehouse-admins']
        await gw.app.accounts.update(alice.id, { isActive: true })
      }
    })
  })
}
