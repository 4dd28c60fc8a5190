import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { exportJWK, generateKeyPair } from 'jose'
import type { Store } from '../../src/store/store.ts'
import { IDENTITY_KEYS_TOPIC, KEYS_TOPIC } from '../../src/store/topics.ts'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, REALM } from '../helpers/oidc.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'

const IDENTITY_JWKS = '/api/gateway/v1/jwks/'
const REALM_CERTS = `/realms/${REALM}/protocol/openid-connect/certs`

/**
 * A key as another process leaves it in the shared table: `retireAt` for one a rotation replaced (published until
 * then), `created` in the future for one published ahead of signing.
 */
async function addKey(store: Store, purpose: string, alg: 'ES256' | 'RS256', created: number, retireAt: number | null): Promise<string> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true })
  const kid = randomUUID()
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk
  await store.signingKeys.add({ kid, purpose, alg, privateJwk, publicJwk, created, retireAt })
  return kid
}

async function kids(gw: TestGateway, path: string): Promise<string[]> {
  const response = await gw.fetch(path)
  const body = await json(response)
  assert.equal(response.status, 200, `${path}: ${JSON.stringify(body)}`)
  return body.keys.map((k: { kid: string }) => k.kid).sort()
}

/** A request through the gateway to a demo service, answered with what the service received. */
async function throughGateway(gw: TestGateway, path: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const response = await gw.fetch(path, { headers, signal: AbortSignal.timeout(5000) })
  return { status: response.status, body: await json(response) }
}

async function untilTime(at: number): Promise<void> {
  await sleep(Math.max(0, at - Date.now()))
}

/**
 * The signing keys are read again when the set in memory says so (a replaced key to drop, the next key to take
 * over). A database that does not answer then must not fail what the keys in memory can still do.
 */
describe('signing keys while the database is down', () => {
  let cluster: PgCluster
  const logLines: Record<string, unknown>[] = []
  let gw: TestGateway
  before(async () => {
    cluster = await startPgCluster()
    gw = await startGateway({ databaseUrl: cluster.url, logLines })
  })
  after(async () => {
    await gw?.close()
    cluster?.destroy()
  })

  it('signs and verifies with the keys in memory while the signing key\'s turn lasts, then refuses to sign', async () => {
    const { access_token: accessToken } = await passwordLogin(gw, 'admin', ADMIN_PASSWORD)
    const bearer = { authorization: `Bearer ${accessToken}` }
    assert.equal((await throughGateway(gw, '/demo-app/reports/', bearer)).status, 200)
    assert.equal((await throughGateway(gw, '/api/controller/v2/hosts/', adminAuth)).body.identity?.verified, true)
    const [identityKid] = await kids(gw, IDENTITY_JWKS)
    const [realmKid] = await kids(gw, REALM_CERTS)

    // Another process rotated: the replaced keys are published a few seconds more, and the next identity key signs
    // a few seconds after that. Both are due to be read again while the database is down.
    const t0 = Date.now()
    const retireAt = t0 + 4000
    const nextSigns = t0 + 9000
    const retiredIdentity = await addKey(gw.store, 'identity', 'ES256', t0 - 1000, retireAt)
    const nextIdentity = await addKey(gw.store, 'identity', 'ES256', nextSigns, null)
    const retiredRealm = await addKey(gw.store, `oidc:${REALM}`, 'RS256', t0 - 1000, retireAt)
    await gw.app.bus.publish(IDENTITY_KEYS_TOPIC, 'identity')
    await gw.app.bus.publish(KEYS_TOPIC, REALM)
    assert.deepEqual(await kids(gw, IDENTITY_JWKS), [identityKid!, retiredIdentity, nextIdentity].sort())
    assert.deepEqual(await kids(gw, REALM_CERTS), [realmKid!, retiredRealm].sort())

    cluster.stop()
    try {
      await untilTime(retireAt + 500)
      // A service not asked before: its identity token is signed now, and it fetches the JWKS now.
      const galaxy = await throughGateway(gw, '/api/galaxy/v3/collections/', adminAuth)
      assert.equal(galaxy.status, 200, JSON.stringify(galaxy.body))
      assert.deepEqual([galaxy.body.identity?.username, galaxy.body.identity?.verified], ['admin', true])
      assert.ok((await kids(gw, IDENTITY_JWKS)).includes(identityKid!), 'the identity JWKS is served from memory')
      assert.equal((await throughGateway(gw, '/demo-app/reports/', bearer)).status, 200, 'a realm access token still verifies')
      assert.ok((await kids(gw, REALM_CERTS)).includes(realmKid!), 'the realm JWKS is served from memory')
      assert.ok(logLines.some((line) => line.level === 40 && /signing keys could not be read again/.test(String(line.msg))), 'a warning says so')

      await untilTime(nextSigns + 500)
      // The key in memory no longer signs, and the one that does cannot be confirmed: nothing is signed.
      const eda = await throughGateway(gw, '/api/eda/v1/rulebooks/', adminAuth)
      assert.deepEqual([eda.status, eda.body.code], [503, 'database_unavailable'])
      assert.ok((await kids(gw, IDENTITY_JWKS)).includes(identityKid!), 'services still verify the tokens signed before')
      assert.ok((await kids(gw, REALM_CERTS)).includes(realmKid!), 'the realm\'s key signs for a long time yet')
    } finally {
      cluster.start()
    }
    const deadline = Date.now() + 15_000
    let eda = await throughGateway(gw, '/api/eda/v1/rulebooks/', adminAuth)
    while (eda.status !== 200 && Date.now() < deadline) {
      await sleep(200)
      eda = await throughGateway(gw, '/api/eda/v1/rulebooks/', adminAuth)
    }
    assert.equal(eda.status, 200, 'signing again once the database answers')
  })
})
