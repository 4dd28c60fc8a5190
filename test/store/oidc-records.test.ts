import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { StoreAdapter } from '../../src/oidc/adapter.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

/** The OpenID Connect provider's records and its adapter, on both backends. */
for (const backend of storeBackends) {
  describe(`OIDC records on ${backend.name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>

    before(async () => {
      ;({ store, cleanup } = await backend.open())
    })
    after(async () => {
      await store.close()
      await cleanup()
    })

    it('stores, replaces and finds records by id, uid and user code', async () => {
      await store.oidc.upsert({ model: 'Session', id: 's1', payload: { uid: 'u1', accountId: '7' }, uid: 'u1', expiresAt: Date.now() + 60_000 })
      await store.oidc.upsert({ model: 'Session', id: 's1', payload: { uid: 'u1', accountId: '8' }, uid: 'u1', expiresAt: Date.now() + 60_000 })
      assert.deepEqual((await store.oidc.find('Session', 's1'))!.payload, { uid: 'u1', accountId: '8' })
      assert.equal((await store.oidc.findByUid('Session', 'u1'))!.id, 's1')
      assert.equal(await store.oidc.find('Grant', 's1'), undefined)
      await store.oidc.upsert({ model: 'DeviceCode', id: 'd1', payload: { userCode: 'ABCD' }, userCode: 'ABCD' })
      assert.equal((await store.oidc.findByUserCode('DeviceCode', 'ABCD'))!.id, 'd1')
    })

    it('never returns an expired record, and prunes it', async () => {
      await store.oidc.upsert({ model: 'AccessToken', id: 'old', payload: {}, expiresAt: Date.now() - 1 })
      assert.equal(await store.oidc.find('AccessToken', 'old'), undefined)
      assert.ok(await store.oidc.pruneExpired() >= 1)
      assert.equal((await store.database.db.selectFrom('oidc_records').select('id').where('id', '=', 'old').execute()).length, 0)
    })

    it('revokes everything of a grant and reports it', async () => {
      const revoked: string[] = []
      const deps = {
        records: store.oidc,
        revoke: async (key: string, destroy: (records: typeof store.oidc) => Promise<unknown>) => {
          await destroy(store.oidc)
          revoked.push(key)
        },
        detectsRefreshTokenReuse: () => true,
      }
      const accessTokens = new StoreAdapter('AccessToken', deps)
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      await accessTokens.upsert('at1', { grantId: 'g1', clientId: 'c' }, 300)
      await accessTokens.upsert('at2', { grantId: 'g2', clientId: 'c' }, 300)
      await refreshTokens.upsert('rt1', { grantId: 'g1', clientId: 'c' }, 300)
      await accessTokens.revokeByGrantId('g1')
      await refreshTokens.revokeByGrantId('g1')
      assert.equal(await accessTokens.find('at1'), undefined)
      assert.equal(await refreshTokens.find('rt1'), undefined)
      assert.ok(await accessTokens.find('at2'))
      await accessTokens.destroy('at2')
      assert.deepEqual(revoked, ['grant:g1', 'jti:at2'])
    })

    it('marks refresh tokens consumed only for clients with reuse detection', async () => {
      const deps = { records: store.oidc, revoke: async () => {}, detectsRefreshTokenReuse: (clientId: string) => clientId === 'rotating' }
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      await refreshTokens.upsert('r-rotating', { clientId: 'rotating' }, 300)
      await refreshTokens.upsert('r-keeping', { clientId: 'keeping' }, 300)
      await refreshTokens.consume('r-rotating')
      await refreshTokens.consume('r-keeping')
      assert.equal(typeof (await refreshTokens.find('r-rotating'))!.consumed, 'number')
      assert.equal((await refreshTokens.find('r-keeping'))!.consumed, undefined)
      // Other models (codes) are always single-use.
      const codes = new StoreAdapter('AuthorizationCode', deps)
      await codes.upsert('code', { clientId: 'keeping' }, 60)
      await codes.consume('code')
      assert.equal(typeof (await codes.find('code'))!.consumed, 'number')
    })
  })
}
