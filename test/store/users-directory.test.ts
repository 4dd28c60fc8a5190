import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

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
  })
}
