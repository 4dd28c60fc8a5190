import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { signInWithSso, SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

/**
 * An account a directory login or an SSO sign-in makes or changes is in the audit trail as a `create` or an `update`
 * of the user, made by the source on the user's behalf (as the memberships it maps are), with the fields it set.
 */
describe('accounts made and changed by a sign-in, in the audit trail', () => {
  let directory: TestDirectory
  let corp: UpstreamIdp
  let gw: TestGateway

  before(async () => {
    directory = await startDirectory()
    corp = await startUpstreamIdp({
      uma: { sub: 'sub-uma', password: 'uma-upstream-pw', claims: { preferred_username: 'uma', email: 'uma@corp.example', given_name: 'Uma', family_name: 'Upstream', groups: [] } },
    })
    gw = await startGateway({
      config: {
        ldap: directory.config(),
        sso: [corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret', superuser_groups: ['gatehouse-admins'] })],
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

  async function userEntries(username: string) {
    await gw.app.audit.flush()
    const { entries } = await gw.store.audit.list({ offset: 0, limit: 500 })
    return entries.filter((e) => e.contentType === 'user' && e.objectName === username && (e.operation === 'create' || e.operation === 'update'))
      .sort((a, b) => a.id - b.id)
  }
  const aliceLogsIn = async () => (await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status

  it('records the account a first LDAP login makes, and the superuser flag a later one clears', async () => {
    assert.equal(await aliceLogsIn(), 200)
    const alice = (await gw.store.users.findByUsername('alice'))!
    const [created, ...others] = await userEntries('alice')
    assert.equal(others.length, 0)
    assert.equal(created!.operation, 'create')
    assert.equal(created!.objectId, String(alice.id))
    assert.equal(created!.authMethod, 'ldap')
    assert.equal(created!.actorId, alice.id)
    assert.equal(created!.actorUsername, 'alice')
    const added = (created!.changes as { added_fields: Record<string, unknown> }).added_fields
    assert.equal(added.is_superuser, true)
    assert.equal(added.source, 'ldap')
    assert.equal(added.email, 'alice@example.test')

    assert.equal(await aliceLogsIn(), 200)
    assert.equal((await userEntries('alice')).length, 1, 'an unchanged account is no entry')

    await directory.setMembers(GROUPS.admins, [`uid=carol,ou=people,${SUFFIX}`])
    try {
      assert.equal(await aliceLogsIn(), 200)
      assert.equal((await gw.store.users.findByUsername('alice'))!.isSuperuser, false)
      const [, updated, ...more] = await userEntries('alice')
      assert.equal(more.length, 0)
      assert.equal(updated!.operation, 'update')
      assert.equal(updated!.authMethod, 'ldap')
      assert.equal(updated!.actorUsername, 'alice')
      assert.deepEqual(updated!.changes, { added_fields: {}, removed_fields: {}, changed_fields: { is_superuser: [true, false] } })
    } finally {
      await directory.setMembers(GROUPS.admins, [`uid=alice,ou=people,${SUFFIX}`])
    }
  })

  it('records the account a first SSO sign-in makes, and the address a later one changes', async () => {
    await signInWithSso(gw, 'Corp ID', 'uma', corp)
    const uma = (await gw.store.users.findByUsername('uma'))!
    const [created, ...others] = await userEntries('uma')
    assert.equal(others.length, 0)
    assert.equal(created!.operation, 'create')
    assert.equal(created!.objectId, String(uma.id))
    assert.equal(created!.authMethod, 'sso')
    assert.equal(created!.actorUsername, 'uma')
    const added = (created!.changes as { added_fields: Record<string, unknown> }).added_fields
    assert.equal(added.email, 'uma@corp.example')
    assert.equal(added.source, 'sso')
    assert.equal(added.is_superuser, false)

    corp.users.get('uma')!.claims.email = 'uma@new.example'
    await signInWithSso(gw, 'Corp ID', 'uma', corp)
    assert.equal((await gw.store.users.findByUsername('uma'))!.email, 'uma@new.example')
    const [, updated, ...more] = await userEntries('uma')
    assert.equal(more.length, 0)
    assert.equal(updated!.operation, 'update')
    assert.equal(updated!.authMethod, 'sso')
    assert.deepEqual(updated!.changes, { added_fields: {}, removed_fields: {}, changed_fields: { email: ['uma@corp.example', 'uma@new.example'] } })

    await signInWithSso(gw, 'Corp ID', 'uma', corp)
    assert.equal((await userEntries('uma')).length, 2, 'an unchanged account is no entry')
  })
})
