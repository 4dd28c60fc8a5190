import assert from 'node:assert/strict'
import { createHash, X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { LoadedKeys, RealmKeys, type KeysKept } from '../../src/oidc/keys.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { browse, CookieJar, decodeJwtPart, passwordLogin, REALM, realmUrl, submitForm, tokenRequest } from '../helpers/oidc.ts'

const DAY = 86400

/** Realm keys whose reads fail while `failing` is set, as they do while the database does not answer. */
class FlakyKeys extends RealmKeys {
  failing = false
  reads = 0

  override async load(now = Date.now()) {
    this.reads++
    if (this.failing) throw new Error('the database does not answer')
    return super.load(now)
  }
}

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

  it('reads the keys again when another process\'s news comes while this one tells of its own change, and not for its own news alone', async () => {
    // Telling the others delivers this process's own news to it as well (EventBus.change), before it resolves.
    const keys = new RealmKeys(store, 'news-race', 30 * DAY, 360)
    let othersToo = true
    const loaded: LoadedKeys = new LoadedKeys(keys, async () => {
      loaded.reload()
      if (othersToo) loaded.reload()
      othersToo = false
    })
    const t0 = Date.now()
    const set = await loaded.get(t0)
    assert.equal(loaded.fresh(t0), undefined, 'the news that came meanwhile may not be in what was read')
    assert.equal((await loaded.get(t0 + 1)).activeKid, set.activeKid)
    assert.equal(loaded.fresh(t0 + 1)?.activeKid, set.activeKid, 'read again, then kept')

    const alone = new RealmKeys(store, 'own-news', 30 * DAY, 360)
    const told: LoadedKeys = new LoadedKeys(alone, async () => told.reload())
    const own = await told.get(t0)
    assert.equal(told.fresh(t0)?.activeKid, own.activeKid, 'its own news is in what it read')
  })

  it('go on from memory while the signing key\'s turn lasts, read again with backoff, then fail signing but not verifying', async () => {
    const keys = new FlakyKeys(store, 'flaky', 30 * DAY, 360)
    const loaded = new LoadedKeys(keys, async () => {})
    const kept: KeysKept[] = []
    loaded.onKept((k) => kept.push(k))
    const t0 = Date.now()
    const set = await loaded.get(t0)
    assert.equal(set.signsUntil, t0 + 30 * DAY * 1000)

    keys.failing = true
    loaded.reload()
    assert.equal(await loaded.get(t0 + 1), set, 'the read failed: the keys in memory')
    assert.equal(keys.reads, 2)
    assert.deepEqual(kept.map((k) => [k.purpose, k.signsUntil]), [['oidc:flaky', set.signsUntil]])
    assert.equal(await loaded.get(t0 + 900), set)
    assert.equal(keys.reads, 2, 'not read again within a second')
    // Each further failure doubles the wait: 1 s after the first, then 2 s, then 4 s.
    const readsAt = (at: number) => loaded.get(at).then(async (answer) => {
      assert.equal(answer, set)
      await new Promise((resolve) => setImmediate(resolve))
      return keys.reads
    })
    assert.equal(await readsAt(t0 + 1001), 3)
    assert.equal(await readsAt(t0 + 2500), 3)
    assert.equal(await readsAt(t0 + 3002), 4)
    assert.equal(await readsAt(t0 + 6000), 4)
    assert.equal(await readsAt(t0 + 7003), 5)
    assert.equal(kept.length, 1, 'one warning for the whole outage')

    const turnOver = set.signsUntil + 1
    await assert.rejects(loaded.get(turnOver), /does not answer/, 'past the signing key\'s turn, nothing to sign with')
    assert.equal(await loaded.known(turnOver), set, 'but the keys known still verify')

    keys.failing = false
    assert.equal(await loaded.get(t0 + 60_000), set, 'answered at once; the read goes on behind')
    while (!loaded.fresh(t0 + 60_000)) await new Promise((resolve) => setImmediate(resolve))
    assert.equal(loaded.fresh(t0 + 60_000)!.activeKid, set.activeKid, 'read again once the database answers')
    keys.failing = true
    loaded.reload()
    await loaded.get(t0 + 60_001)
    assert.equal(kept.length, 2, 'a new outage is told again')
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

  it('keeps a replaced key while the sessions its ID tokens name may last, so that a logout can name them by id_token_hint', async () => {
    const login = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const realm = gw.app.oidc.get(REALM)!
    const { access_token_seconds: accessSeconds, sso_session_max_seconds: sessionSeconds } = realm.config
    const oldKid = decodeJwtPart(login.id_token, 0).kid
    // Rotated, then read again once the old key's access tokens have all expired: its ID token's session goes on.
    const rotatedAt = (await realm.keySet()).signsUntil
    await realm.keySet(rotatedAt)
    await realm.keySet(rotatedAt + (accessSeconds + 61) * 1000)
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    assert.ok(certs.keys.some((k: { kid: string }) => k.kid === oldKid), 'the key of a live session\'s ID token is still published')
    const refresh = () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    assert.equal((await refresh()).status, 200)

    const browser = new CookieJar()
    const page = await browse(gw, browser, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: login.id_token })}`))
    assert.equal(page.response.status, 200)
    const done = await submitForm(gw, browser, page, {})
    assert.match(await done.response.text(), /You are logged out\./)
    assert.equal((await refresh()).status, 400, 'the hinted session ended')

    // Once every session it could name has ended, the key goes.
    await realm.keySet(rotatedAt + (Math.max(accessSeconds, sessionSeconds) + 61) * 1000)
    const later = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    assert.equal(later.keys.some((k: { kid: string }) => k.kid === oldKid), false)
  })
})
