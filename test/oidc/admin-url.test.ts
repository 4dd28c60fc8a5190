import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KoaContextWithOIDC } from 'oidc-provider'
import { rememberAdapterSessions, takeAdapterSessions } from '../../src/oidc/admin-url.ts'
import { setProviderClock } from '../../src/oidc/provider-clock.ts'
import { storeBackends } from '../helpers/backends.ts'

/** The token endpoint's context as oidc-provider leaves it after a code was redeemed by `clientId` for `grantId`. */
function redeemed(clientId: string, grantId: string, state: string): KoaContextWithOIDC {
  return {
    status: 200,
    oidc: { route: 'token', params: { grant_type: 'authorization_code' }, client: { clientId }, entities: { AuthorizationCode: { grantId } }, body: { client_session_state: state } },
  } as unknown as KoaContextWithOIDC
}

describe('adapter sessions kept for a client\'s admin URL', () => {
  it('are dated and found by oidc-provider\'s clock, the database\'s, not the machine\'s', async (t) => {
    const { store, cleanup } = await storeBackends[0]!.open()
    t.after(async () => {
      setProviderClock(() => Date.now())
      await store.close()
      await cleanup()
    })
    const remember = rememberAdapterSessions({ records: store.oidc, hasAdminUrl: () => true, keptSeconds: 60 })
    // Ten minutes behind the machine: what it keeps for a minute has expired by the machine's clock.
    const behind = Date.now() - 600_000
    setProviderClock(() => behind)
    await remember(redeemed('app', 'grant-1', 'adapter-session-1'), async () => {})
    const kept = await store.oidc.find('AdapterSession', 'grant-1', behind)
    assert.equal(kept?.expiresAt, behind + 60_000)
    assert.deepEqual(await takeAdapterSessions(store.oidc, ['grant-1'], 'app'), ['adapter-session-1'])
  })
})
