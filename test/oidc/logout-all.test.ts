import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { adminAuth, ADMIN_PASSWORD, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, REALM, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { providerNow } from '../../src/oidc/provider-clock.ts'

const GRANTS = 2000
/** More than a logout-all tells every process of one by one. */
const LINKED_SESSIONS = 150

for (const backend of ['sqlite', 'postgres'] as const) describe(`logout-all of a realm with many grants (${backend})`, () => {
  let first: TestGateway
  let second: TestGateway
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    drop = database?.drop
    first = await startGateway({ databaseUrl: database?.url })
    // Another gateway on the same database: it hears of the logout-all through the event log only.
    second = await startGateway({ dataDir: first.dataDir, databaseUrl: database?.url })
    // Published at one address, as processes behind one load balancer: the realm's issuer is the same on both.
    second.app.publicUrl = first.url
  })
  after(async () => {
    await second?.close()
    await first?.close()
    await drop?.()
  })

  /** Grants of the realm with their tokens, and realm browser sessions linked to gateway sessions, written to the store directly. */
  async function manySignIns(): Promise<string[]> {
    const oidc = first.store.oidc
    const later = Date.now() + 600_000
    const resources = { [`urn:gatehouse:realm:${REALM}`]: 'openid' }
    await Promise.all(Array.from({ length: GRANTS }, (_, i) => [
      oidc.upsert({ model: 'Grant', id: `many-${i}`, payload: { accountId: '1', clientId: 'end-users', resources }, expiresAt: later }),
      oidc.upsert({ model: 'RefreshToken', id: `many-rt-${i}`, payload: { accountId: '1', grantId: `many-${i}` }, grantId: `many-${i}`, expiresAt: later }),
    ]).flat())
    const keyHashes: string[] = []
    for (let i = 0; i < LINKED_SESSIONS; i++) {
      const keyHash = randomBytes(32).toString('hex')
      await first.store.sessions.create({ keyHash, userId: 1, created: Date.now(), expiresAt: later, ip: '127.0.0.1', userAgent: 'test' })
      const payload = { uid: `uid-many-${i}`, accountId: '1', gatehouseRealm: REALM, authorizations: { 'end-users': { grantId: `many-${i}` } } }
      assert.equal(await oidc.saveSession({ id: `session-many-${i}`, payload, uid: `uid-many-${i}`, gatewaySession: keyHash, expiresAt: later }), true)
      keyHashes.push(keyHash)
    }
    return keyHashes
  }

  it('writes a bounded number of events, and another process refuses every older token at once and takes a newer one', async () => {
    const linked = await manySignIns()
    const old = await passwordLogin(first, 'admin', ADMIN_PASSWORD)
    const use = (gw: TestGateway, token: string) => gw.fetch('/demo-app/pipelines/', { headers: { authorization: `Bearer ${token}` } })
    assert.equal((await use(second, old.access_token)).status, 200, 'the other gateway takes the token, and keeps it verified in memory')
    assert.ok(await second.app.sessions.get(linked[0]!), 'the other gateway keeps a linked gateway session in memory')

    const eventsBefore = await first.store.events.latestId()
    const answer = await first.fetch(`/admin/realms/${REALM}/logout-all`, { method: 'POST', headers: adminAuth })
    assert.equal(answer.status, 200)
    const events = (await first.store.events.latestId()) - eventsBefore
    assert.ok(events <= 2, `${events} events for ${GRANTS} grants and ${LINKED_SESSIONS} gateway sessions`)

    assert.equal((await use(second, old.access_token)).status, 401, 'refused on the other gateway from its next request')
    assert.equal(await second.app.sessions.get(linked[0]!), undefined, 'the linked gateway session ended there too')
    assert.equal(await first.store.sessions.findByKeyHash(linked.at(-1)!), undefined)
    assert.equal(await first.store.oidc.find('RefreshToken', `many-rt-${GRANTS - 1}`, Date.now()), undefined)
    const fresh = await passwordLogin(first, 'admin', ADMIN_PASSWORD)
    assert.equal((await use(second, fresh.access_token)).status, 200, 'a token issued since is taken, in the same second too')
    assert.equal((await use(first, fresh.access_token)).status, 200)
  })

  it('lists the realms with their not-before for superusers (Keycloak\'s GET /admin/realms), and no one else', async () => {
    const listed = await first.fetch('/admin/realms', { headers: adminAuth })
    assert.equal(listed.status, 200)
    const [realm, ...others] = await listed.json() as { id: string; realm: string; enabled: boolean; notBefore: number }[]
    assert.deepEqual(others, [])
    assert.deepEqual({ ...realm, notBefore: undefined }, { id: REALM, realm: REALM, enabled: true, notBefore: undefined })
    assert.ok(realm!.notBefore > 0 && realm!.notBefore <= Date.now() / 1000, 'the last logout-all\'s, in epoch seconds')
    await first.app.accounts.create({ username: 'bob', password: 'bob-password' })
    assert.equal((await first.fetch('/admin/realms', { headers: { authorization: basic('bob', 'bob-password') } })).status, 403)
  })
})

for (const backend of ['sqlite', 'postgres'] as const) describe(`logout-all and a service account's tokens, which no grant holds (${backend})`, () => {
  let first: TestGateway
  let later: TestGateway | undefined
  let databaseUrl: string | undefined
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    ;({ url: databaseUrl, drop } = database ?? {})
    first = await startGateway({ config: { realms: testRealms }, databaseUrl })
  })
  after(async () => {
    await later?.close()
    await first?.close()
    await drop?.()
  })

  const serviceToken = async (gw: TestGateway) => (await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })).body.access_token as string
  const use = (gw: TestGateway, token: string) => gw.fetch('/demo-app/pipelines/', { headers: { authorization: `Bearer ${token}` } })
  async function active(gw: TestGateway, token: string): Promise<boolean> {
    const answer = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, { method: 'POST', body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token }) })
    assert.equal(answer.status, 200)
    return (await answer.json() as { active: boolean }).active
  }

  it('refuses one issued before it, on a process started since too, and introspection calls it inactive; one issued since works', async () => {
    const old = await serviceToken(first)
    assert.equal((await use(first, old)).status, 200)
    assert.equal(await active(first, old), true)
    assert.equal((await first.fetch(`/admin/realms/${REALM}/logout-all`, { method: 'POST', headers: adminAuth })).status, 200)

    later = await startGateway({ dataDir: first.dataDir, config: { realms: testRealms }, databaseUrl })
    later.app.publicUrl = first.url
    for (const gw of [first, later]) assert.equal((await use(gw, old)).status, 401)
    assert.equal(await active(first, old), false)
    assert.equal(await active(later, old), false)

    await stampedSinceNotBefore()
    const fresh = await serviceToken(first)
    for (const gw of [first, later]) assert.equal((await use(gw, fresh)).status, 200)
    assert.equal(await active(first, fresh), true)
  })

  /**
   * Until the clock tokens are stamped with has passed the realm's not-before. In a gateway process it is the clock
   * the logout-all waited on, the process's one view of the database's time; the gateways of this process share
   * oidc-provider's one clock, which is the view of whichever loaded it last, and on PostgreSQL two views differ by
   * the few milliseconds each measured: a token stamped at once could fall in the second before.
   */
  async function stampedSinceNotBefore(): Promise<void> {
    const notBefore = await first.app.oidc.get(REALM)!.notBefore()
    while (providerNow() < notBefore * 1000) await sleep(5)
  }

  /** Another gateway on the same database: the one the first test started after its logout-all, or one started now. */
  async function otherGateway(): Promise<TestGateway> {
    if (!later) {
      later = await startGateway({ dataDir: first.dataDir, config: { realms: testRealms }, databaseUrl })
      later.app.publicUrl = first.url
    }
    return later
  }

  /**
   * Issues a token whose record `model` is written only once `meanwhile` has run: the token is signed (its `iat`
   * stamped) before, and recorded after.
   */
  async function recordedAfter(model: string, issue: () => Promise<string>, meanwhile: () => Promise<void>): Promise<string> {
    const records = first.store.oidc
    const upsert = records.upsert
    let reached!: () => void
    let resume!: () => void
    const atRecord = new Promise<void>((resolve) => { reached = resolve })
    const resumed = new Promise<void>((resolve) => { resume = resolve })
    records.upsert = async function (this: typeof records, input) {
      if (input.model === model) {
        reached()
        await resumed
      }
      return upsert.call(this, input)
    }
    try {
      const issued = issue()
      await atRecord
      await meanwhile()
      records.upsert = upsert
      resume()
      return await issued
    } finally {
      records.upsert = upsert
      resume()
    }
  }

  const logoutAll = async () => assert.equal((await first.fetch(`/admin/realms/${REALM}/logout-all`, { method: 'POST', headers: adminAuth })).status, 200)

  it('refuses one signed before it and recorded after it, in its own second too: its not-before is the second after it', async () => {
    const other = await otherGateway()
    const token = await recordedAfter('ClientCredentials', () => serviceToken(first), logoutAll)
    for (const gw of [first, other]) assert.equal((await use(gw, token)).status, 401)
    assert.equal(await active(first, token), false)
    assert.ok(decodeJwtPart(token, 1).iat < await first.app.oidc.get(REALM)!.notBefore())
  })

  it('takes a token issued as soon as it has answered, on every process', async () => {
    const other = await otherGateway()
    await logoutAll()
    await stampedSinceNotBefore()
    const fresh = await serviceToken(first)
    for (const gw of [first, other]) assert.equal((await use(gw, fresh)).status, 200)
    assert.equal(await active(first, fresh), true)
  })

  it('refuses a token whose record was written after the logout-all ended its grant, as introspection does', async () => {
    const other = await otherGateway()
    const token = await recordedAfter('AccessToken', async () => (await passwordLogin(first, 'admin', ADMIN_PASSWORD)).access_token as string, logoutAll)
    assert.equal(await active(first, token), false)
    for (const gw of [first, other]) assert.equal((await use(gw, token)).status, 401)
  })
})
