import assert from 'node:assert/strict'
import { createHash, X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { RealmKeys } from '../../src/oidc/keys.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, REALM } from '../helpers/oidc.ts'

const DAY = 86400

describe('realm signing keys', () => {
  let store: Store
  let dir: string
  before(async () => {
    dir = tempDir()
    store = await openStore({ dataDir: dir })
  })
  after(async () => {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('creates one key, then keeps it until it is due', async () => {
    const keys = new RealmKeys(store, 'r1', 30 * DAY, 360)
    const t0 = Date.now()
    const first = await keys.load(t0)
    assert.equal(first.changed, true)
    const again = await keys.load(t0 + 1000)
    assert.equal(again.changed, false)
    assert.equal(again.keys.activeKid, first.keys.activeKid)
    assert.equal(again.keys.publicJwks.length, 1)
    assert.equal(again.keys.publicJwks[0]!.d, undefined)
    assert.equal(again.keys.privateJwks[0]!.alg, 'RS256')
  })

  it('rotates when due, publishing the old key until its tokens have expired', async () => {
    const keys = new RealmKeys(store, 'r2', 30 * DAY, 360)
    const t0 = Date.now()
    const first = (await keys.load(t0)).keys
    const rotatedAt = t0 + 30 * DAY * 1000
    const rotated = await keys.load(rotatedAt)
    assert.equal(rotated.changed, true)
    assert.notEqual(rotated.keys.activeKid, first.activeKid)
    assert.deepEqual(rotated.keys.publicJwks.map((k) => k.kid), [rotated.keys.activeKid, first.activeKid])
    assert.equal(rotated.keys.reloadAt, rotatedAt + 360_000)
    const later = await keys.load(rotatedAt + 361_000)
    assert.deepEqual(later.keys.publicJwks.map((k) => k.kid), [rotated.keys.activeKid])
    assert.equal((await store.signingKeys.list('oidc:r2')).length, 1)
  })

  it('lets processes that created keys at once agree on one signing key', async () => {
    const a = new RealmKeys(store, 'r3', 30 * DAY, 360)
    const b = new RealmKeys(store, 'r3', 30 * DAY, 360)
    const t0 = Date.now()
    await Promise.all([a.load(t0), b.load(t0)])
    const [fromA, fromB] = await Promise.all([a.load(t0 + 1), b.load(t0 + 1)])
    assert.equal(fromA.keys.activeKid, fromB.keys.activeKid)
  })
})

describe('key rotation in a running realm', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  it('signs new tokens with the new key and still accepts tokens signed with the old one', async () => {
    const before = await passwordLogin(gw, 'alice', 'alice-password')
    const realm = gw.app.oidc.get(REALM)!
    await realm.keySet(Date.now() + realm.config.signing_key_rotation_seconds * 1000)
    const afterRotation = await passwordLogin(gw, 'alice', 'alice-password')
    const oldKid = decodeJwtPart(before.access_token, 0).kid
    const newKid = decodeJwtPart(afterRotation.access_token, 0).kid
    assert.notEqual(newKid, oldKid)
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    assert.deepEqual(certs.keys.map((k: { kid: string }) => k.kid).sort(), [oldKid, newKid].sort())
    for (const key of certs.keys) {
      // Each key comes with its self-signed certificate, as Keycloak's do.
      const certificate = new X509Certificate(Buffer.from(key.x5c[0], 'base64'))
      assert.equal(certificate.subject, `CN=${REALM}`)
      assert.equal(certificate.verify(certificate.publicKey), true)
      assert.equal(certificate.publicKey.export({ format: 'jwk' }).n, key.n)
      assert.equal(key['x5t#S256'], createHash('sha256').update(certificate.raw).digest('base64url'))
      assert.equal(key.x5t, createHash('sha1').update(certificate.raw).digest('base64url'))
    }
    for (const token of [before.access_token, afterRotation.access_token]) {
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 200)
    }
  })
})
