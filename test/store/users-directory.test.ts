import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'
import { queryPlan } from '../helpers/query-plan.ts'

/** What a directory adds to an account (migration 004_ldap), on both backends. */
for (const backend of storeBackends) {
  describe(`directory accounts on ${backend.name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>
    before(async () => {
      ;({ store, cleanup } = await backend.open())
    })
    after(async () => {
      await store?.close()
      await cleanup?.()
    })

    it('gives accounts no auditor flag and no groups unless told', async () => {
      const local = await store.users.create({ username: 'local-user' })
      assert.equal(local.isSystemAuditor, false)
      assert.deepEqual(local.groups, [])
    })

    it('stores and changes the auditor flag and the named groups of an external account', async () => {
      const created = await store.users.create({ username: 'dir-user', source: 'ldap', external: true, isSystemAuditor: true, groups: ['developers', 'ops'] })
      assert.equal(created.source, 'ldap')
      assert.equal(created.external, true)
      assert.equal(created.isSystemAuditor, true)
      assert.deepEqual(created.groups, ['developers', 'ops'])
      const updated = await store.users.update(created.id, { isSystemAuditor: false, groups: ['ops'] })
      assert.equal(updated!.isSystemAuditor, false)
      assert.deepEqual(updated!.groups, ['ops'])
      const read = await store.users.findByUsername('dir-user')
      assert.deepEqual({ auditor: read!.isSystemAuditor, groups: read!.groups }, { auditor: false, groups: ['ops'] })
      assert.deepEqual((await store.users.list({ offset: 0, limit: 10, source: 'ldap' })).users.map((u) => u.username), ['dir-user'])
    })

    it('pages through the active accounts of a source that hold a live session, token or realm record', async () => {
      const now = Date.now()
      const make = (username: string, fields: { source?: 'ldap' | 'local'; isActive?: boolean } = {}) => store.users.create({ username, source: 'ldap', external: true, ...fields })
      const withSession = await make('holds-session')
      await store.sessions.create({ keyHash: 'live-session', userId: withSession.id, created: now, expiresAt: now + 60_000, ip: '127.0.0.1', userAgent: '' })
      const expired = await make('holds-expired')
      await store.sessions.create({ keyHash: 'expired-session', userId: expired.id, created: now - 120_000, expiresAt: now - 60_000, ip: '127.0.0.1', userAgent: '' })
      await store.tokens.create({ userId: expired.id, tokenHash: 'expired-token', scope: 'read', description: '', expires: now - 1 })
      const withToken = await make('holds-token')
      await store.tokens.create({ userId: withToken.id, tokenHash: 'live-token', scope: 'read', description: '', expires: now + 60_000 })
      const withGrant = await make('holds-grant')
      await store.oidc.upsert({ model: 'RefreshToken', id: 'refresh-1', payload: { accountId: String(withGrant.id) }, expiresAt: now + 60_000 })
      await store.oidc.settled()
      const disabled = await make('holds-but-disabled', { isActive: false })
      await store.tokens.create({ userId: disabled.id, tokenHash: 'disabled-token', scope: 'read', description: '', expires: now + 60_000 })
      const local = await make('local-holder', { source: 'local' })
      await store.tokens.create({ userId: local.id, tokenHash: 'local-token', scope: 'read', description: '', expires: now + 60_000 })
      await make('holds-nothing')

      const first = await store.users.activeHoldersOfCredentials('ldap', 0, 2, now)
      assert.deepEqual(first.map((u) => u.username), ['holds-session', 'holds-token'])
      const second = await store.users.activeHoldersOfCredentials('ldap', first.at(-1)!.id, 2, now)
      assert.deepEqual(second.map((u) => u.username), ['holds-grant'])
    })

    it('leaves out an account whose only live realm records are used up: a code kept past its ended grant, a rotated refresh token', async () => {
      const now = Date.now()
      const make = (username: string) => store.users.create({ username, source: 'ldap', external: true })
      const code = async (id: string, accountId: string, grantId: string) => {
        await store.oidc.upsert({ model: 'Grant', id: grantId, payload: { accountId }, expiresAt: now + 3600_000 })
        await store.oidc.upsert({ model: 'AuthorizationCode', id, payload: { accountId, grantId }, grantId, expiresAt: now + 60_000 })
        await store.oidc.settled()
        assert.equal(await store.oidc.consume('AuthorizationCode', id, now, { accountId, grantId }), true)
      }
      const loggedOut = await make('used-code-only')
      await code('used-code', String(loggedOut.id), 'ended-grant')
      await store.oidc.endGrants(['ended-grant'])
      const rotated = await make('rotated-token-only')
      await store.oidc.upsert({ model: 'RefreshToken', id: 'rotated-refresh', payload: { accountId: String(rotated.id) }, expiresAt: now + 60_000 })
      await store.oidc.settled()
      assert.equal(await store.oidc.consume('RefreshToken', 'rotated-refresh', now), true)
      const signedIn = await make('used-code-live-grant')
      await code('used-code-of-live-grant', String(signedIn.id), 'live-grant')
      const refreshing = await make('live-refresh-token')
      await store.oidc.upsert({ model: 'RefreshToken', id: 'live-refresh', payload: { accountId: String(refreshing.id) }, expiresAt: now + 60_000 })
      await store.oidc.settled()

      const later = now + 120_000
      assert.ok(await store.oidc.find('AuthorizationCode', 'used-code', later), 'the used code is still kept')
      const holders = await store.users.activeHoldersOfCredentials('ldap', loggedOut.id - 1, 10, now)
      assert.deepEqual(holders.map((u) => u.username), ['used-code-live-grant', 'live-refresh-token'])
      assert.deepEqual((await store.users.activeHoldersOfCredentials('ldap', loggedOut.id - 1, 10, later)).map((u) => u.username), ['used-code-live-grant'])
    })

    it('finds an account\'s live realm records through the account index', async () => {
      const records = store.database.db.selectFrom('oidc_records').select('id').where('account_id', '=', '1')
        .where('consumed_at', 'is', null).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', Date.now())]))
      const plan = await queryPlan(store, records)
      assert.match(plan, /oidc_records_account_id/, plan)
    })
  })
}
