import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Compilable } from 'kysely'
import { Migrator, sql } from '../../src/store/kysely.ts'
import { ValidationFailed } from '../../src/errors.ts'
import { StoreAdapter } from '../../src/oidc/adapter.ts'
import { recordKey, userCodeKey } from '../../src/oidc/record-keys.ts'
import { migrationProvider } from '../../src/store/migrations/index.ts'
import type { Store } from '../../src/store/store.ts'
import { openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'
import { queryPlan as planOf } from '../helpers/query-plan.ts'

/**
 * Resolves once a statement on `store`'s database is waiting for a lock another connection holds: on PostgreSQL,
 * once the server says so; on SQLite a statement waits off the event loop, trying again, with nothing to ask, so
 * after a while of tries.
 */
async function untilBlocked(store: Store): Promise<void> {
  if (store.database.dialect !== 'postgres') return new Promise((resolve) => setTimeout(resolve, 200))
  for (let tries = 0; tries < 500; tries++) {
    const { rows } = await sql<{ waiting: number }>`select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(store.database.db)
    if (rows[0]!.waiting > 0) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('no statement came to wait for a lock')
}

/** The OpenID Connect provider's records and its adapter, on both backends. */
for (const backend of storeBackends) {
  describe(`OIDC records on ${backend.name}`, () => {
    const db = openForSuite(backend)
    let readerStore: Store
    let reader: Store['oidc']
    before(async () => {
      readerStore = await db.reopen()
      reader = readerStore.oidc
    })
    after(() => readerStore.close())

    it('stores, replaces and finds records by id, uid and user code', async () => {
      await db.store.oidc.upsert({ model: 'Session', id: 's1', payload: { uid: 'u1', accountId: '7' }, uid: 'u1', expiresAt: Date.now() + 60_000 })
      await db.store.oidc.upsert({ model: 'Session', id: 's1', payload: { uid: 'u1', accountId: '8' }, uid: 'u1', expiresAt: Date.now() + 60_000 })
      assert.deepEqual((await db.store.oidc.find('Session', 's1', Date.now()))!.payload, { uid: 'u1', accountId: '8' })
      assert.equal((await db.store.oidc.findByUid('Session', 'u1', Date.now()))!.id, 's1')
      assert.equal(await db.store.oidc.find('Grant', 's1', Date.now()), undefined)
      await db.store.oidc.upsert({ model: 'DeviceCode', id: 'd1', payload: { userCode: 'ABCD' }, userCode: 'ABCD' })
      assert.equal((await db.store.oidc.findByUserCode('DeviceCode', 'ABCD', Date.now()))!.id, 'd1')
    })

    it('writes a record once where none of its key is live: of writes at once, one only; an expired one counts as none', async () => {
      const now = Date.now()
      const writes = await Promise.all(Array.from({ length: 6 }, () => db.store.oidc.insertOnce({ model: 'ReplayDetection', id: 'jti-1', payload: { iss: 'c' }, expiresAt: now + 60_000 }, now)))
      assert.deepEqual(writes.filter(Boolean).length, 1)
      assert.equal(await db.store.oidc.insertOnce({ model: 'ReplayDetection', id: 'jti-1', payload: { iss: 'c' }, expiresAt: now + 60_000 }, now + 1_000), false)
      // Past its expiry (not yet swept), the key is free again, as a single-use store's entry expires.
      assert.equal(await db.store.oidc.insertOnce({ model: 'ReplayDetection', id: 'jti-1', payload: { iss: 'c' }, expiresAt: now + 180_000 }, now + 61_000), true)
      assert.equal(await db.store.oidc.insertOnce({ model: 'ReplayDetection', id: 'jti-1', payload: { iss: 'c' }, expiresAt: now + 180_000 }, now + 62_000), false)
      assert.equal((await db.store.oidc.find('ReplayDetection', 'jti-1', now + 62_000))!.payload.iss, 'c')
    })

    let gatewaySessions = 0
    /** A gateway session (its key hash) of a new user. */
    const gatewaySession = async () => {
      const user = await db.store.users.create({ username: `gateway-user-${++gatewaySessions}` })
      const keyHash = `gateway-session-${gatewaySessions}-`.padEnd(64, '0')
      await db.store.sessions.create({ keyHash, userId: user.id, created: Date.now(), expiresAt: Date.now() + 60_000, ip: '127.0.0.1', userAgent: 'test' })
      return keyHash
    }

    it('ends the realm sessions linked to gateway sessions, with their grants and tokens, offline grants and other sessions left alone', async () => {
      const oidc = db.store.oidc
      const later = Date.now() + 60_000
      const [gatewayA, gatewayB, gatewayC] = [await gatewaySession(), await gatewaySession(), await gatewaySession()]
      const linked = { uid: 'uid-linked', accountId: '9', authorizations: { app: { grantId: 'g-online' }, cli: { grantId: 'g-offline', persistsLogout: true } } }
      assert.equal(await oidc.saveSession({ id: 'linked', payload: linked, uid: 'uid-linked', gatewaySession: gatewayA!, expiresAt: later }), true)
      // Saved again without a gateway session (the browser had none live): the link stays.
      await oidc.upsert({ model: 'Session', id: 'linked', payload: linked, uid: 'uid-linked', expiresAt: later })
      assert.equal(await oidc.saveSession({ id: 'other', payload: { uid: 'uid-other', accountId: '9', authorizations: { app: { grantId: 'g-other' } } }, uid: 'uid-other', gatewaySession: gatewayB!, expiresAt: later }), true)
      for (const grantId of ['g-online', 'g-offline', 'g-other']) {
        await oidc.upsert({ model: 'Grant', id: grantId, payload: { accountId: '9' }, expiresAt: later })
        await oidc.upsert({ model: 'RefreshToken', id: `rt-${grantId}`, payload: { accountId: '9', grantId }, grantId, expiresAt: later })
        await oidc.upsert({ model: 'AccessToken', id: `at-${grantId}`, payload: { accountId: '9', grantId }, grantId, expiresAt: later })
      }
      assert.deepEqual(await oidc.endLinkedSessions([gatewayA!, 'gateway-unknown']), ['g-online'])
      assert.equal(await oidc.find('Session', 'linked', Date.now()), undefined)
      for (const [model, id] of [['Grant', 'g-online'], ['RefreshToken', 'rt-g-online'], ['AccessToken', 'at-g-online']]) assert.equal(await oidc.find(model!, id!, Date.now()), undefined, id)
      for (const [model, id] of [['Session', 'other'], ['Grant', 'g-offline'], ['RefreshToken', 'rt-g-offline'], ['Grant', 'g-other'], ['AccessToken', 'at-g-other']]) assert.ok(await oidc.find(model!, id!, Date.now()), id)

      // Passed on to another gateway session, a realm session ends with that one.
      await oidc.relinkSessions(gatewayB!, gatewayC!)
      assert.deepEqual(await oidc.endLinkedSessions([gatewayB!]), [])
      assert.deepEqual(await oidc.endLinkedSessions([gatewayC!]), ['g-other'])
      assert.equal(await oidc.find('Session', 'other', Date.now()), undefined)
    })

    it('ends every session and grant of one realm (online, offline, password logins), with their tokens, and the gateway sessions linked to them', async () => {
      const oidc = db.store.oidc
      const later = Date.now() + 60_000
      const resource = (realm: string) => ({ [`urn:gatehouse:realm:${realm}`]: 'openid' })
      const gateway = await gatewaySession()
      const inRealm = { uid: 'uid-in-realm', accountId: '11', gatehouseRealm: 'north', authorizations: { app: { grantId: 'n-browser' } } }
      assert.equal(await oidc.saveSession({ id: 'in-realm', payload: inRealm, uid: 'uid-in-realm', gatewaySession: gateway, expiresAt: later }), true)
      await oidc.upsert({ model: 'Session', id: 'elsewhere', payload: { uid: 'uid-elsewhere', accountId: '11', gatehouseRealm: 'south', authorizations: { app: { grantId: 's-browser' } } }, uid: 'uid-elsewhere', expiresAt: later })
      for (const [grantId, realm] of [['n-browser', 'north'], ['n-offline', 'north'], ['n-password', 'north'], ['s-browser', 'south']] as const) {
        await oidc.upsert({ model: 'Grant', id: grantId, payload: { accountId: '11', clientId: 'app', resources: resource(realm) }, expiresAt: later })
        await oidc.upsert({ model: 'RefreshToken', id: `rt-${grantId}`, payload: { accountId: '11', grantId }, grantId, expiresAt: later })
      }
      const { grants, gatewaySessions } = await oidc.endRealmSignIns('gatehouseRealm', 'north', 'urn:gatehouse:realm:north')
      assert.deepEqual([...grants].sort(), ['n-browser', 'n-offline', 'n-password'])
      assert.deepEqual(gatewaySessions, [gateway])
      assert.equal(await db.store.sessions.findByKeyHash(gateway), undefined, 'the linked gateway session ended with them')
      for (const [model, id] of [['Session', 'in-realm'], ['Grant', 'n-offline'], ['RefreshToken', 'rt-n-password'], ['RefreshToken', 'rt-n-browser']]) assert.equal(await oidc.find(model!, id!, Date.now()), undefined, id)
      for (const [model, id] of [['Session', 'elsewhere'], ['Grant', 's-browser'], ['RefreshToken', 'rt-s-browser']]) assert.ok(await oidc.find(model!, id!, Date.now()), id)
      assert.equal(await oidc.saveSession({ id: 'in-realm', payload: inRealm, uid: 'uid-in-realm', expiresAt: later }), false, 'an ended session is not saved back')
    })

    it('refuses to link a realm session to a gateway session that no longer exists, and leaves a record it had alone', async () => {
      const oidc = db.store.oidc
      const ended = await gatewaySession()
      await db.store.sessions.deleteByKeyHash(ended)
      const payload = { uid: 'uid-late', accountId: '9', authorizations: {} }
      assert.equal(await oidc.saveSession({ id: 'late', payload, uid: 'uid-late', gatewaySession: ended, expiresAt: Date.now() + 60_000 }), false)
      assert.equal(await oidc.find('Session', 'late', Date.now()), undefined)

      await oidc.upsert({ model: 'Session', id: 'kept', payload: { ...payload, uid: 'uid-kept' }, uid: 'uid-kept', expiresAt: Date.now() + 60_000 })
      assert.equal(await oidc.saveSession({ id: 'kept', payload: { ...payload, uid: 'uid-kept', changed: true }, uid: 'uid-kept', gatewaySession: ended, expiresAt: Date.now() + 60_000 }), false)
      assert.equal((await oidc.find('Session', 'kept', Date.now()))!.payload.changed, undefined)
    })

    /**
     * Ends a gateway session, holding the end's transaction open once all its statements ran while `save` comes in from
     * another connection; checks the save waits for it. The grants the end ended, and what the save gave.
     */
    async function endRacingSave<T>(keyHash: string, save: () => Promise<T>): Promise<{ ended: string[]; saved: T }> {
      let commit!: () => void
      const committing = new Promise<void>((resolve) => { commit = resolve })
      let ending!: () => void
      const endUnderWay = new Promise<void>((resolve) => { ending = resolve })
      const end = db.store.transaction(async (tx) => {
        await tx.sessions.deleteByKeyHash(keyHash)
        const grants = await tx.oidc.endLinkedSessions([keyHash])
        ending()
        await committing
        return grants
      })
      await endUnderWay
      let saveSettled = false
      const saving = save().finally(() => { saveSettled = true })
      await untilBlocked(db.store)
      assert.equal(saveSettled, false, 'the save waits for the end under way')
      commit()
      return { ended: await end, saved: await saving }
    }

    it('lets the end of a gateway session win over a save of its realm session that races with it', async () => {
      const keyHash = await gatewaySession()
      const payload = { uid: 'uid-racing', accountId: '9', authorizations: { app: { grantId: 'g-racing' } } }
      assert.equal(await db.store.oidc.saveSession({ id: 'racing', payload, uid: 'uid-racing', gatewaySession: keyHash, expiresAt: Date.now() + 60_000 }), true)
      const race = await endRacingSave(keyHash, () => reader.saveSession({ id: 'racing', payload: { ...payload, saved: 'late' }, uid: 'uid-racing', gatewaySession: keyHash, expiresAt: Date.now() + 60_000 }))
      assert.deepEqual(race, { ended: ['g-racing'], saved: false })
      assert.equal(await reader.find('Session', 'racing', Date.now()), undefined)
    })

    it('ends a realm session whose gateway session ended before its save, with the grants of its sign-ins, and reports them', async () => {
      const keyHash = await gatewaySession()
      const revoked: string[] = []
      const deps = {
        records: db.store.oidc,
        revoke: async (keys: string | readonly string[], destroy: (records: typeof db.store.oidc) => Promise<unknown>) => {
          await destroy(db.store.oidc)
          revoked.push(...keys)
        },
        realm: 'platform', detectsRefreshTokenReuse: () => false,
        gatewaySession: async () => keyHash,
      }
      const sessions = new StoreAdapter('Session', deps)
      await new StoreAdapter('Grant', deps).upsert('g-first', { accountId: '9' }, 300)
      await sessions.upsert('adapted', { uid: 'uid-adapted', accountId: '9', authorizations: { app: { grantId: 'g-first' } } }, 300)
      assert.ok(await db.store.oidc.find('Session', recordKey('adapted'), Date.now()))

      await db.store.sessions.deleteByKeyHash(keyHash)
      await new StoreAdapter('Grant', deps).upsert('g-second', { accountId: '9' }, 300)
      await new StoreAdapter('AuthorizationCode', deps).upsert('code-second', { accountId: '9', grantId: 'g-second' }, 60)
      await sessions.upsert('adapted', { uid: 'uid-adapted', accountId: '9', authorizations: { app: { grantId: 'g-first' }, other: { grantId: 'g-second' }, cli: { grantId: 'g-offline', persistsLogout: true } } }, 300)
      assert.equal(await db.store.oidc.find('Session', recordKey('adapted'), Date.now()), undefined)
      for (const [model, id] of [['Grant', 'g-first'], ['Grant', 'g-second']]) assert.equal(await db.store.oidc.find(model!, id!, Date.now()), undefined, id)
      // The code outlives its grant until it expires, refused for it (CODE_MODELS).
      assert.ok(await db.store.oidc.find('AuthorizationCode', recordKey('code-second'), Date.now()))
      assert.deepEqual(revoked, ['grant:g-first', 'grant:g-second'])
    })

    /** A StoreAdapter for realm sessions on `records`, saving as a request without a gateway session does; `revoked` collects what it ended. */
    const unlinkedSessions = (records: Store['oidc'], revoked: string[] = []) => new StoreAdapter('Session', {
      records,
      revoke: async (keys: string | readonly string[], destroy: (records: Store['oidc']) => Promise<unknown>) => {
        await destroy(records)
        revoked.push(...keys)
      },
      realm: 'platform', detectsRefreshTokenReuse: () => false,
      gatewaySession: async () => undefined,
    })

    it('never saves back a realm session that was ended, even by a save with no gateway session, and ends the grants that save carries', async () => {
      const oidc = db.store.oidc
      const later = Date.now() + 60_000
      const ending: [string, (link: string) => Promise<unknown>][] = [
        ['its gateway session ending', (link) => oidc.endLinkedSessions([link])],
        ['its account\'s records ending', () => oidc.destroyByAccount('31')],
      ]
      for (const [how, end] of ending) {
        const id = `ended-by-${how.replaceAll(/\W+/g, '-')}`
        // Stored under the key the adapter keeps a realm session's id under.
        const key = recordKey(id)
        const link = await gatewaySession()
        const payload = { uid: `uid-${id}`, accountId: '31', authorizations: { app: { grantId: `g-${id}` } } }
        assert.equal(await oidc.saveSession({ id: key, payload, uid: payload.uid, gatewaySession: link, expiresAt: later }), true)
        await end(link)
        assert.equal(await oidc.find('Session', key, Date.now()), undefined, how)
        // A request that loaded the realm session before the end, with no gateway session cookie, saves it after.
        await oidc.upsert({ model: 'Grant', id: `g-${id}-late`, payload: { accountId: '31' }, expiresAt: later })
        const revoked: string[] = []
        await unlinkedSessions(oidc, revoked).upsert(id, { ...payload, authorizations: { ...payload.authorizations, other: { grantId: `g-${id}-late` } } }, 60)
        assert.equal(await oidc.find('Session', key, Date.now()), undefined, `${how}: the save brought it back`)
        assert.equal(await oidc.find('Grant', `g-${id}-late`, Date.now()), undefined, `${how}: the grant of the late save's sign-in outlived it`)
        assert.deepEqual(revoked, [`grant:g-${id}`, `grant:g-${id}-late`], how)
        // Nor does a save of the same record under any other name, nor one linked to a live gateway session.
        await oidc.upsert({ model: 'Session', id: key, payload, uid: payload.uid, expiresAt: later })
        assert.equal(await oidc.saveSession({ id: key, payload, uid: payload.uid, gatewaySession: await gatewaySession(), expiresAt: later }), false)
        assert.equal(await oidc.find('Session', key, Date.now()), undefined, how)
        assert.equal(await oidc.findByUid('Session', payload.uid, Date.now()), undefined, how)
      }
    })

    it('ends nothing for a late save of a realm session that oidc-provider destroyed to renew its identifier', async () => {
      const oidc = db.store.oidc
      const payload = { uid: 'uid-renewed', accountId: '34', authorizations: { app: { grantId: 'g-renewed' } } }
      await oidc.upsert({ model: 'Grant', id: 'g-renewed', payload: { accountId: '34' }, expiresAt: Date.now() + 60_000 })
      const revoked: string[] = []
      await unlinkedSessions(oidc, revoked).upsert('renewed-old', payload, 60)
      // A new login renews the identifier: the session goes on under the new one, with its grants.
      await oidc.destroy('Session', recordKey('renewed-old'))
      await unlinkedSessions(oidc, revoked).upsert('renewed-new', payload, 60)
      await unlinkedSessions(oidc, revoked).upsert('renewed-old', payload, 60)
      assert.deepEqual(revoked, [])
      assert.ok(await oidc.find('Grant', 'g-renewed', Date.now()))
    })

    it('remembers an ended realm session no longer than the session would have lasted: the expiry sweep removes it', async () => {
      const oidc = db.store.oidc
      const link = await gatewaySession()
      const expiresAt = Date.now() + 60_000
      const payload = { uid: 'uid-swept', accountId: '32' }
      assert.equal(await oidc.saveSession({ id: 'swept', payload, uid: payload.uid, gatewaySession: link, expiresAt }), true)
      await oidc.endLinkedSessions([link])
      const remembered = () => db.store.database.db.selectFrom('oidc_records').select('expires_at').where('model', '=', 'Session').where('id', '=', 'swept').execute()
      assert.deepEqual((await remembered()).map((row) => Number(row.expires_at)), [expiresAt])
      await oidc.pruneExpired(expiresAt - 1)
      assert.equal((await remembered()).length, 1)
      await oidc.pruneExpired(expiresAt)
      assert.equal((await remembered()).length, 0)
    })

    it('lets the end of a gateway session win over a save with no gateway session that races with it, from another connection', async () => {
      const keyHash = await gatewaySession()
      const payload = { uid: 'uid-unlinked-race', accountId: '33', authorizations: { app: { grantId: 'g-unlinked-race' } } }
      assert.equal(await db.store.oidc.saveSession({ id: recordKey('unlinked-race'), payload, uid: payload.uid, gatewaySession: keyHash, expiresAt: Date.now() + 60_000 }), true)
      const race = await endRacingSave(keyHash, () => unlinkedSessions(reader).upsert('unlinked-race', { ...payload, saved: 'late' }, 60))
      assert.deepEqual(race.ended, ['g-unlinked-race'])
      assert.equal(await reader.find('Session', recordKey('unlinked-race'), Date.now()), undefined)
      const row = await readerStore.database.db.selectFrom('oidc_records').select(['payload', 'account_id']).where('model', '=', 'Session').where('id', '=', recordKey('unlinked-race')).executeTakeFirstOrThrow()
      assert.deepEqual({ ...row }, { payload: '{}', account_id: null }, 'the late save wrote over the ended session')
    })

    it('saves a realm session whose gateway session was replaced by a new one of the same browser linked to the new one', async () => {
      const [replaced, current] = [await gatewaySession(), await gatewaySession()]
      const deps = { records: db.store.oidc, revoke: async () => assert.fail('nothing is ended'), realm: 'platform', detectsRefreshTokenReuse: () => false, gatewaySession: async () => replaced }
      const sessions = new StoreAdapter('Session', deps)
      await sessions.upsert('passed-on', { uid: 'uid-passed-on', accountId: '9', authorizations: { app: { grantId: 'g-passed-on' } } }, 300)
      // A new login in the same browser replaces the gateway session after this request looked it up (SessionManager.start).
      await db.store.transaction(async (tx) => {
        await tx.sessions.deleteByKeyHash(replaced)
        await tx.oidc.relinkSessions(replaced, current)
      })
      await sessions.upsert('passed-on', { uid: 'uid-passed-on', accountId: '9', authorizations: { app: { grantId: 'g-passed-on' }, other: { grantId: 'g-later' } } }, 300)
      assert.deepEqual((await db.store.oidc.find('Session', recordKey('passed-on'), Date.now()))!.payload.authorizations, { app: { grantId: 'g-passed-on' }, other: { grantId: 'g-later' } })
      assert.deepEqual(await db.store.oidc.endLinkedSessions([current]), ['g-passed-on', 'g-later'], 'it ends with the new gateway session')
    })

    it('keeps a used code until its grant would expire, but no unused one, nor one past a grant expiring sooner', async () => {
      const now = Date.now()
      const code = (id: string, grantId: string) => db.store.oidc.upsert({ model: 'AuthorizationCode', id, payload: { grantId }, grantId, expiresAt: now + 60_000 })
      await db.store.oidc.upsert({ model: 'Grant', id: 'code-grant', payload: {}, expiresAt: now + 3600_000 })
      await db.store.oidc.upsert({ model: 'Grant', id: 'code-short-grant', payload: {}, expiresAt: now + 30_000 })
      await Promise.all([code('code-used', 'code-grant'), code('code-unused', 'code-grant'), code('code-short', 'code-short-grant'), code('code-no-grant', 'code-gone-grant')])
      for (const id of ['code-used', 'code-short', 'code-no-grant']) assert.equal(await db.store.oidc.consume('AuthorizationCode', id, now), true, id)
      assert.equal(await db.store.oidc.consume('AuthorizationCode', 'code-used', now), false, 'used once only')
      const afterItsMinute = now + 120_000
      assert.equal((await db.store.oidc.find('AuthorizationCode', 'code-used', afterItsMinute))?.consumedAt, now)
      for (const id of ['code-unused', 'code-short', 'code-no-grant']) assert.equal(await db.store.oidc.find('AuthorizationCode', id, afterItsMinute), undefined, id)
      assert.equal(await db.store.oidc.find('AuthorizationCode', 'code-used', now + 3600_000), undefined, 'gone with its grant\'s expiry')
    })

    it('keeps of a used code the payload its use gives, and takes its whole one back when it is put back unused', async () => {
      const now = Date.now()
      const whole = { grantId: 'kept-grant', accountId: '7', nonce: 'n', redirectUri: 'https://app.example/', claims: { id_token: { email: null } } }
      await db.store.oidc.upsert({ model: 'Grant', id: 'kept-grant', payload: {}, expiresAt: now + 3600_000 })
      await db.store.oidc.upsert({ model: 'AuthorizationCode', id: 'code-kept', payload: whole, grantId: 'kept-grant', expiresAt: now + 60_000 })
      assert.equal(await db.store.oidc.consume('AuthorizationCode', 'code-kept', now, { grantId: 'kept-grant', accountId: '7' }), true)
      assert.equal(await db.store.oidc.consume('AuthorizationCode', 'code-kept', now, { grantId: 'kept-grant' }), false, 'used once only')
      const used = await db.store.oidc.find('AuthorizationCode', 'code-kept', now + 120_000)
      assert.deepEqual(used?.payload, { grantId: 'kept-grant', accountId: '7' })
      assert.equal(used?.consumedAt, now)
      await db.store.oidc.release('AuthorizationCode', 'code-kept', whole)
      const released = await db.store.oidc.find('AuthorizationCode', 'code-kept', now)
      assert.deepEqual(released?.payload, whole)
      assert.equal(released?.consumedAt, null)
    })

    it('never returns an expired record, and prunes it', async () => {
      await db.store.oidc.upsert({ model: 'AccessToken', id: 'old', payload: {}, expiresAt: Date.now() - 1 })
      assert.equal(await db.store.oidc.find('AccessToken', 'old', Date.now()), undefined)
      assert.ok(await db.store.oidc.pruneExpired(Date.now()) >= 1)
      assert.equal((await db.store.database.db.selectFrom('oidc_records').select('id').where('id', '=', 'old').execute()).length, 0)
    })

    it('prunes more expired records than one batch deletes, of every model, and no live one', async () => {
      const now = Date.now()
      const record = (model: string, id: string, expiresAt: number) => ({ model, id, payload: '{}', grant_id: null, uid: null, user_code: null, account_id: null, gateway_session: null, expires_at: expiresAt, ended_at: null, consumed_at: null })
      for (const model of ['AccessToken', 'RefreshToken', 'Grant']) {
        for (let i = 0; i < 3; i++) await db.store.database.db.insertInto('oidc_records').values(Array.from({ length: 500 }, (_, j) => record(model, `bulk-${i}-${j}`, now - 10))).execute()
      }
      await db.store.database.db.insertInto('oidc_records').values([record('AccessToken', 'bulk-live', now + 60_000), record('Grant', 'bulk-0-0-live', now + 60_000)]).execute()
      assert.ok(await db.store.oidc.pruneExpired(now) >= 4500)
      const left = await db.store.database.db.selectFrom('oidc_records').select(['model', 'id']).where('id', 'like', 'bulk-%').orderBy('id').execute()
      assert.deepEqual(left.map((row) => `${row.model} ${row.id}`), ['Grant bulk-0-0-live', 'AccessToken bulk-live'])
    })

    it('finds an account\'s live grants past a limit, oldest first, never the one kept', async () => {
      const now = Date.now()
      const grant = (id: string, accountId: string, iat: number, expiresAt: number) => db.store.oidc.upsert({ model: 'Grant', id, payload: { accountId, iat }, expiresAt })
      await grant('limit-new', '77', 1_000_300, now + 60_000)
      await grant('limit-old', '77', 1_000_100, now + 90_000)
      await grant('limit-mid-late', '77', 1_000_200, now + 80_000)
      await grant('limit-mid-early', '77', 1_000_200, now + 70_000)
      await grant('limit-expired', '77', 1_000_000, now - 1)
      await grant('limit-other', '78', 1_000_000, now + 60_000)
      assert.deepEqual(await db.store.oidc.grantsPastLimit('77', 4, 'limit-new', now), [])
      assert.deepEqual((await db.store.oidc.grantsPastLimit('77', 2, 'limit-new', now)).sort(), ['limit-mid-early', 'limit-old'])
      // Saved at once, two new grants agree on which is newer: the older one's save ends nothing of the newer, the
      // newer one's ends the older (never each other), and one kept is never ended by its own save.
      assert.deepEqual((await db.store.oidc.grantsPastLimit('77', 1, 'limit-new', now)).sort(), ['limit-mid-early', 'limit-mid-late', 'limit-old'])
      assert.deepEqual((await db.store.oidc.grantsPastLimit('77', 1, 'limit-old', now)).sort(), ['limit-mid-early', 'limit-mid-late'])
      await grant('limit-twin-a', '79', 1_000_000, now + 60_000)
      await grant('limit-twin-b', '79', 1_000_000, now + 60_000)
      const [a, b] = [await db.store.oidc.grantsPastLimit('79', 1, 'limit-twin-a', now), await db.store.oidc.grantsPastLimit('79', 1, 'limit-twin-b', now)]
      assert.equal(a.length + b.length, 1, `one of the twins ends the other, not each the other: ${a} ${b}`)
      // A grant without `iat` (written by hand) is the oldest, on both databases.
      await db.store.oidc.upsert({ model: 'Grant', id: 'limit-no-iat', payload: { accountId: '79' }, expiresAt: now + 90_000 })
      assert.deepEqual(await db.store.oidc.grantsPastLimit('79', 2, 'limit-twin-a', now), ['limit-no-iat'])
    })

    it('finds the newest live refresh token of a chain of a grant\'s refreshes, by the time its id begins with, none expired or of another chain or grant', async () => {
      const now = Date.now()
      const token = (id: string, grantId: string, iiat: number, expiresAt: number) => db.store.oidc.upsert({ model: 'RefreshToken', id, payload: { grantId, iiat }, grantId, expiresAt })
      await token('0190000000a0Zz.1000.0a0a0a0a0a0a.chain-grant', 'chain-grant', 1000, now + 60_000)
      await token('0190000000b0aa.1000.0a0a0a0a0a0a.chain-grant', 'chain-grant', 1000, now + 60_000)
      await token('0190000000c0-_.1000.0a0a0a0a0a0a.chain-grant', 'chain-grant', 1000, now - 1)
      // Begun in the same second as the first chain: another chain all the same.
      await token('0190000000c8AA.1000.0b0b0b0b0b0b.chain-grant', 'chain-grant', 1000, now + 60_000)
      await token('0190000000d0AA.2000.0a0a0a0a0a0a.chain-grant', 'chain-grant', 2000, now + 60_000)
      await token('0190000000e0AA.1000.0a0a0a0a0a0a.other-grant', 'other-grant', 1000, now + 60_000)
      await db.store.oidc.upsert({ model: 'AccessToken', id: '0190000000f0AA.1000.0a0a0a0a0a0a.chain-grant', payload: { grantId: 'chain-grant', iiat: 1000 }, grantId: 'chain-grant', expiresAt: now + 60_000 })
      assert.equal(await db.store.oidc.newestRefreshTokenOfChain('chain-grant', '1000.0a0a0a0a0a0a', now), '0190000000b0aa.1000.0a0a0a0a0a0a.chain-grant')
      assert.equal(await db.store.oidc.newestRefreshTokenOfChain('chain-grant', '1000.0A0A0A0A0A0A', now), undefined, 'a tag of another case is no chain\'s')
      assert.equal(await db.store.oidc.newestRefreshTokenOfChain('chain-grant', '3000.0a0a0a0a0a0a', now), undefined)
      assert.equal(await db.store.oidc.newestRefreshTokenOfChain('chain-grant', '1000.%', now), undefined)
      assert.equal(await db.store.oidc.newestRefreshTokenOfChain('no-such-grant', '1000.0a0a0a0a0a0a', now), undefined)
    })

    it('revokes everything of a grant and reports it', async () => {
      const revoked: string[] = []
      const deps = {
        records: db.store.oidc,
        revoke: async (key: string, destroy: (records: typeof db.store.oidc) => Promise<unknown>) => {
          await destroy(db.store.oidc)
          revoked.push(key)
        },
        realm: 'platform', detectsRefreshTokenReuse: () => true,
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
      const deps = { records: db.store.oidc, revoke: async () => {}, realm: 'platform', detectsRefreshTokenReuse: (clientId: string) => clientId === 'rotating' }
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      await refreshTokens.upsert('r-rotating', { clientId: 'rotating' }, 300)
      await refreshTokens.upsert('r-keeping', { clientId: 'keeping' }, 300)
      await refreshTokens.consume('r-rotating')
      await refreshTokens.consume('r-keeping')
      assert.equal(typeof (await refreshTokens.find('r-rotating'))!.consumed, 'number')
      assert.equal((await refreshTokens.find('r-keeping'))!.consumed, undefined)
      // Marked once: a second request that read it unused learns that another used it first.
      await refreshTokens.find('r-rotating')
      assert.equal(await refreshTokens.consumeFirst('r-rotating'), false)
      await refreshTokens.find('r-keeping')
      assert.equal(await refreshTokens.consumeFirst('r-keeping'), true)
      await refreshTokens.upsert('r-raced', { clientId: 'rotating' }, 300)
      await refreshTokens.find('r-raced')
      assert.deepEqual(await Promise.all([refreshTokens.consumeFirst('r-raced'), refreshTokens.consumeFirst('r-raced')]).then((firsts) => firsts.sort()), [false, true])
    })

    it('keeps a record used once it is, whatever is saved of it later, and does not find a device code that gave its tokens', async () => {
      const deps = { records: db.store.oidc, revoke: async () => {}, realm: 'platform', detectsRefreshTokenReuse: () => true }
      const deviceCodes = new StoreAdapter('DeviceCode', deps)
      await deviceCodes.upsert('dc-saved', { clientId: 'tv', userCode: 'BCDF-GHJK' }, 60)
      assert.equal(await deviceCodes.consumeFirst('dc-saved'), true)
      // A save of what a request read before it was used (a second approval, say) does not make it unused again.
      await deviceCodes.upsert('dc-saved', { clientId: 'tv', userCode: 'BCDF-GHJK', accountId: '7' }, 60)
      assert.equal(await deviceCodes.consumeFirst('dc-saved'), false)
      assert.equal(await deviceCodes.find('dc-saved'), undefined)
      assert.equal(typeof (await deviceCodes.findByUserCode('BCDF-GHJK'))!.consumed, 'number')
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      await refreshTokens.upsert('r-saved', { clientId: 'rotating' }, 300)
      await refreshTokens.consume('r-saved')
      await refreshTokens.upsert('r-saved', { clientId: 'rotating', scope: 'openid' }, 300)
      assert.equal(typeof (await refreshTokens.find('r-saved'))!.consumed, 'number')
    })

    it('uses a code up as it is first found: of finds at once, one finds it unused', async () => {
      const deps = { records: db.store.oidc, revoke: async () => {}, realm: 'platform', detectsRefreshTokenReuse: () => false }
      const codes = new StoreAdapter('AuthorizationCode', deps)
      await codes.upsert('code', { clientId: 'keeping' }, 60)
      assert.equal((await codes.find('code'))!.consumed, undefined)
      assert.equal(typeof (await codes.find('code'))!.consumed, 'number')
      await codes.upsert('code-raced', { clientId: 'keeping' }, 60)
      const found = await Promise.all([codes.find('code-raced'), codes.find('code-raced')])
      assert.deepEqual(found.map((payload) => typeof payload!.consumed).sort(), ['number', 'undefined'])
      // Another realm does not find it, so does not use it up.
      const elsewhere = new StoreAdapter('AuthorizationCode', { ...deps, realm: 'elsewhere' })
      await codes.upsert('code-kept', { clientId: 'keeping' }, 60)
      assert.equal(await elsewhere.find('code-kept'), undefined)
      assert.equal((await codes.find('code-kept'))!.consumed, undefined)
    })

    it('finds the grants of a sign-in that no browser session holds by its tokens\' sid, among one account\'s live tokens only', async () => {
      const later = Date.now() + 60_000
      for (const [model, id, accountId, grantId, sid, expiresAt] of [
        ['RefreshToken', 'sid-r1', '51', 'sid-g1', 'login-1', later],
        ['AccessToken', 'sid-a1', '51', 'sid-g1', 'login-1', later],
        ['RefreshToken', 'sid-r2', '51', 'sid-g2', 'login-2', later],
        ['RefreshToken', 'sid-r3', '52', 'sid-g3', 'login-1', later],
        ['RefreshToken', 'sid-r4', '51', 'sid-g4', 'login-1', Date.now() - 1000],
      ] as const) {
        await db.store.oidc.upsert({ model, id, payload: { accountId, clientId: 'script', sid }, grantId, expiresAt })
      }
      assert.deepEqual(await db.store.oidc.grantsOfSignIn('51', 'login-1', Date.now()), [{ grantId: 'sid-g1', clientId: 'script' }])
      assert.deepEqual(await db.store.oidc.grantsOfSignIn('51', 'login-3', Date.now()), [])
      await db.store.oidc.endGrants(['sid-g1'])
      assert.equal(await db.store.oidc.find('RefreshToken', 'sid-r1', Date.now()), undefined)
      assert.deepEqual(await db.store.oidc.grantsOfSignIn('51', 'login-1', Date.now()), [])
      assert.ok(await db.store.oidc.find('RefreshToken', 'sid-r2', Date.now()), 'another sign-in of the account is left alone')
    })

    it('deletes every record of one account but its codes, and nothing of anyone else', async () => {
      const later = Date.now() + 60_000
      for (const [model, id, accountId] of [['Session', 'acct-s', '41'], ['Grant', 'acct-g', '41'], ['RefreshToken', 'acct-r', '41'], ['AccessToken', 'acct-a', '41'], ['AuthorizationCode', 'acct-c', '41'], ['Grant', 'other-g', '42']] as const) {
        await db.store.oidc.upsert({ model, id, payload: { accountId, clientId: 'c' }, grantId: id, expiresAt: later })
      }
      await db.store.oidc.upsert({ model: 'ClientCredentials', id: 'service', payload: { clientId: 'c' }, expiresAt: later })
      assert.equal(await db.store.oidc.destroyByAccount('41'), 4)
      for (const [model, id] of [['Session', 'acct-s'], ['Grant', 'acct-g'], ['RefreshToken', 'acct-r'], ['AccessToken', 'acct-a']]) {
        assert.equal(await db.store.oidc.find(model!, id!, Date.now()), undefined, model)
      }
      // The code outlives its grant until it expires, refused for it (CODE_MODELS).
      assert.ok(await db.store.oidc.find('AuthorizationCode', 'acct-c', Date.now()))
      assert.ok(await db.store.oidc.find('Grant', 'other-g', Date.now()))
      assert.ok(await db.store.oidc.find('ClientCredentials', 'service', Date.now()))
      assert.equal(await db.store.oidc.destroyByAccount('41'), 0)
    })

    it('tells the realm sessions an account\'s end ended as they were when ended, a sign-in saved into one meanwhile from another connection too', async () => {
      const told: Record<string, unknown>[] = []
      db.store.oidc.onSessionsEnded(({ sessions }) => told.push(...sessions.filter((session) => session.accountId === '45')))
      const payload = { uid: 'uid-account-race', accountId: '45', authorizations: { app: { grantId: 'g-race-app' } } }
      assert.equal(await db.store.oidc.saveSession({ id: 'account-race', payload, uid: payload.uid, expiresAt: Date.now() + 60_000 }), true)
      // Another process's sign-in to a second client, saving the session as the account's end starts.
      let commit!: () => void
      const committed = new Promise<void>((resolve) => (commit = resolve))
      let saving!: () => void
      const saved = new Promise<void>((resolve) => (saving = resolve))
      const signIn = readerStore.transaction(async (tx) => {
        assert.equal(await tx.oidc.saveSession({ id: 'account-race', payload: { ...payload, authorizations: { ...payload.authorizations, wiki: { grantId: 'g-race-wiki' } } }, uid: payload.uid, expiresAt: Date.now() + 60_000 }), true)
        saving()
        await committed
      })
      await saved
      const ending = db.store.transaction((tx) => tx.oidc.destroyByAccount('45'))
      await untilBlocked(db.store)
      commit()
      await signIn
      assert.equal(await ending, 1)
      assert.deepEqual(told.map((session) => Object.keys(session.authorizations as object).sort()), [['app', 'wiki']])
      assert.equal(await db.store.oidc.find('Session', 'account-race', Date.now()), undefined)
    })

    /** Counts the statements run on the suite's store until `stop` is called. */
    function countStatements(): { readonly count: number; stop(): void } {
      const counter = { count: 0, counting: true, stop: () => { counter.counting = false } }
      db.store.database.onQuery(() => {
        if (counter.counting) counter.count++
      })
      return counter
    }

    it('consumes a refresh token it has just read without reading it again', async () => {
      const deps = { records: db.store.oidc, revoke: async () => {}, realm: 'platform', detectsRefreshTokenReuse: (clientId: string) => clientId === 'rotating' }
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      await refreshTokens.upsert('read-then-used', { clientId: 'rotating' }, 300)
      await refreshTokens.upsert('read-then-kept', { clientId: 'keeping' }, 300)
      const statements = countStatements()
      await refreshTokens.find('read-then-used')
      await refreshTokens.consume('read-then-used')
      await refreshTokens.find('read-then-kept')
      await refreshTokens.consume('read-then-kept')
      statements.stop()
      assert.equal(statements.count, 3)
      assert.equal(typeof (await refreshTokens.find('read-then-used'))!.consumed, 'number')
      assert.equal((await refreshTokens.find('read-then-kept'))!.consumed, undefined)
    })

    it('reads a refresh token and its grant in one statement, and serves the grant to the next find of it in the same turn', async () => {
      const deps = { records: db.store.oidc, revoke: async () => {}, realm: 'platform', detectsRefreshTokenReuse: () => false }
      const refreshTokens = new StoreAdapter('RefreshToken', deps)
      const grants = new StoreAdapter('Grant', deps)
      await grants.upsert('along-grant', { accountId: '5', clientId: 'c', openid: { scope: 'openid' } }, 300)
      await refreshTokens.upsert('along-token', { grantId: 'along-grant', clientId: 'c' }, 300)

      let statements = countStatements()
      assert.equal((await refreshTokens.find('along-token'))!.grantId, 'along-grant')
      assert.deepEqual(await grants.find('along-grant'), { accountId: '5', clientId: 'c', openid: { scope: 'openid' } })
      statements.stop()
      assert.equal(statements.count, 1)

      // Served once: the next find reads the database.
      statements = countStatements()
      assert.ok(await grants.find('along-grant'))
      statements.stop()
      assert.equal(statements.count, 1)

      // Not past the turn it was read in.
      await refreshTokens.find('along-token')
      await new Promise((resolve) => setImmediate(resolve))
      statements = countStatements()
      assert.ok(await grants.find('along-grant'))
      statements.stop()
      assert.equal(statements.count, 1)

      // Nor past a change: a grant deleted after it was read along is not found.
      await refreshTokens.find('along-token')
      await db.store.oidc.destroy('Grant', 'along-grant')
      assert.equal(await grants.find('along-grant'), undefined)
      // A token whose grant is gone reads as such, without asking again.
      statements = countStatements()
      assert.ok(await refreshTokens.find('along-token'))
      assert.equal(await grants.find('along-grant'), undefined)
      statements.stop()
      assert.equal(statements.count, 1)
    })

    it('keeps no grant read along while grants were deleted or written, and keeps it through other records\' writes', async () => {
      await db.store.oidc.upsert({ model: 'Grant', id: 'raced-grant', payload: { accountId: '5' }, expiresAt: Date.now() + 60_000 })
      await db.store.oidc.upsert({ model: 'RefreshToken', id: 'raced-token', payload: { grantId: 'raced-grant' }, grantId: 'raced-grant', expiresAt: Date.now() + 60_000 })
      // The grant is deleted while the token and its grant are being read: the read may still see it, but not keep it.
      const reading = db.store.oidc.findWithGrant('RefreshToken', 'raced-token', Date.now())
      const deleting = db.store.oidc.destroy('Grant', 'raced-grant')
      assert.ok(await reading)
      await deleting
      assert.equal(await db.store.oidc.find('Grant', 'raced-grant', Date.now()), undefined)

      await db.store.oidc.upsert({ model: 'Grant', id: 'raced-grant', payload: { accountId: '5' }, expiresAt: Date.now() + 60_000 })
      const rereading = db.store.oidc.findWithGrant('RefreshToken', 'raced-token', Date.now())
      const rewriting = db.store.oidc.upsert({ model: 'Grant', id: 'raced-grant', payload: { accountId: '6' }, expiresAt: Date.now() + 60_000 })
      await rereading
      await rewriting
      assert.deepEqual((await db.store.oidc.find('Grant', 'raced-grant', Date.now()))!.payload, { accountId: '6' })

      // Tokens written meanwhile (every refresh writes two) leave it be.
      const read = db.store.oidc.findWithGrant('RefreshToken', 'raced-token', Date.now())
      const other = db.store.oidc.upsert({ model: 'AccessToken', id: 'raced-access', payload: {}, grantId: 'raced-grant', expiresAt: Date.now() + 60_000 })
      await read
      const statements = countStatements()
      assert.ok(await db.store.oidc.find('Grant', 'raced-grant', Date.now()))
      statements.stop()
      assert.equal(statements.count, 0)
      await other
    })

    it('serves no grant read along once a transaction deleted it, as a revocation or an account\'s deletion does', async () => {
      const later = Date.now() + 60_000
      await db.store.oidc.upsert({ model: 'Grant', id: 'tx-grant', payload: { accountId: '44' }, expiresAt: later })
      await db.store.oidc.upsert({ model: 'RefreshToken', id: 'tx-token', payload: { grantId: 'tx-grant', accountId: '44' }, grantId: 'tx-grant', expiresAt: later })
      assert.ok(await db.store.oidc.findWithGrant('RefreshToken', 'tx-token', Date.now()))
      await db.store.transaction((tx) => tx.oidc.destroy('Grant', 'tx-grant'))
      assert.equal(await db.store.oidc.find('Grant', 'tx-grant', Date.now()), undefined)

      await db.store.oidc.upsert({ model: 'Grant', id: 'tx-grant', payload: { accountId: '44' }, expiresAt: later })
      assert.ok(await db.store.oidc.findWithGrant('RefreshToken', 'tx-token', Date.now()))
      assert.equal(await db.store.transaction((tx) => tx.oidc.destroyByAccount('44')), 2)
      assert.equal(await db.store.oidc.find('Grant', 'tx-grant', Date.now()), undefined)

      // A grant read along after the transaction's deletion, but before its commit, is dropped when it ends.
      await db.store.oidc.upsert({ model: 'Grant', id: 'tx-grant', payload: { accountId: '44' }, expiresAt: later })
      await db.store.oidc.upsert({ model: 'RefreshToken', id: 'tx-token', payload: { grantId: 'tx-grant', accountId: '44' }, grantId: 'tx-grant', expiresAt: later })
      const uncommitted = db.store.oidc.inTransaction(db.store.database.db)
      await uncommitted.destroyByGrantId('Grant', 'no-such-grant')
      assert.ok(await db.store.oidc.findWithGrant('RefreshToken', 'tx-token', Date.now()))
      uncommitted.transactionEnded()
      const statements = countStatements()
      assert.ok(await db.store.oidc.find('Grant', 'tx-grant', Date.now()))
      statements.stop()
      assert.equal(statements.count, 1)
    })

    it('never serves a grant read along past its expiry, nor anything for a token that does not exist', async () => {
      const now = Date.now()
      await db.store.oidc.upsert({ model: 'Grant', id: 'short-grant', payload: { accountId: '5' }, expiresAt: now + 1000 })
      await db.store.oidc.upsert({ model: 'RefreshToken', id: 'short-token', payload: { grantId: 'short-grant' }, grantId: 'short-grant', expiresAt: now + 60_000 })
      assert.ok(await db.store.oidc.findWithGrant('RefreshToken', 'short-token', now))
      assert.equal(await db.store.oidc.find('Grant', 'short-grant', now + 2000), undefined)
      assert.ok(await db.store.oidc.findWithGrant('RefreshToken', 'short-token', now + 2000))
      assert.equal(await db.store.oidc.find('Grant', 'short-grant', now + 2000), undefined)
      assert.equal(await db.store.oidc.findWithGrant('RefreshToken', 'no-such-token', now), undefined)
      assert.equal(await db.store.oidc.findWithGrant('RefreshToken', 'short-token', now + 120_000), undefined)
    })

    it('writes records that arrive together in one statement, each committed before its caller goes on', async () => {
      const statements = countStatements()
      const later = Date.now() + 60_000
      const ids = Array.from({ length: 20 }, (_, i) => `batched-${i}`)
      await Promise.all(ids.map(async (id) => {
        await db.store.oidc.upsert({ model: 'ClientCredentials', id, payload: { clientId: 'c' }, expiresAt: later })
        // Read through another connection: committed, not merely queued.
        assert.ok(await reader.find('ClientCredentials', id, Date.now()), id)
      }))
      statements.stop()
      assert.equal(statements.count, 1)
    })

    it('reads and writes the same with its statements compiled once, whatever their values', async () => {
      // Each statement's second use runs its compiled SQL with the new values: every value must land where it belongs.
      const batch = (prefix: string, uid: string | undefined, expiresAt: number | undefined) => Promise.all(['a', 'b', 'c'].map((letter, i) =>
        db.store.oidc.upsert({ model: 'Interaction', id: `${prefix}-${letter}`, payload: { n: i, accountId: `${prefix}${i}` }, grantId: `${prefix}-grant`, uid: uid && `${uid}-${letter}`, userCode: `${prefix}-${letter}-code`, expiresAt })))
      const soon = Date.now() + 60_000
      await batch('first', 'first-uid', soon)
      await batch('second', undefined, undefined)
      for (const [prefix, letter, n] of [['first', 'a', 0], ['second', 'c', 2], ['first', 'c', 2], ['second', 'a', 0]] as const) {
        const record = (await db.store.oidc.find('Interaction', `${prefix}-${letter}`, Date.now()))!
        assert.deepEqual(record.payload, { n, accountId: `${prefix}${n}` })
        assert.equal(record.grantId, `${prefix}-grant`)
        assert.equal(record.expiresAt, prefix === 'first' ? soon : null)
        assert.equal((await db.store.oidc.findByUserCode('Interaction', `${prefix}-${letter}-code`, Date.now()))!.id, `${prefix}-${letter}`)
      }
      assert.equal((await db.store.oidc.findByUid('Interaction', 'first-uid-b', Date.now()))!.id, 'first-b')
      assert.equal((await db.store.oidc.findByUid('Interaction', 'first-uid-c', Date.now()))!.id, 'first-c')
      assert.equal(await db.store.oidc.find('Interaction', 'first-a', soon + 1), undefined)
      assert.equal(await db.store.oidc.find('Session', 'first-a', Date.now()), undefined)
      assert.ok(await db.store.oidc.find('Interaction', 'second-b', soon + 1))
    })

    it('lets the last of two writes of one record in a batch win', async () => {
      await Promise.all([
        db.store.oidc.upsert({ model: 'Session', id: 'twice', payload: { n: 1 } }),
        db.store.oidc.upsert({ model: 'Session', id: 'twice', payload: { n: 2 } }),
      ])
      assert.deepEqual((await db.store.oidc.find('Session', 'twice', Date.now()))!.payload, { n: 2 })
    })

    it('fails only the caller whose record the database refuses', async () => {
      const results = await Promise.allSettled([
        db.store.oidc.upsert({ model: 'AccessToken', id: 'fine-1', payload: { clientId: 'c' } }),
        db.store.oidc.upsert({ model: 'AccessToken', id: 'bad\u0000id', payload: { clientId: 'c' } }),
        db.store.oidc.upsert({ model: 'AccessToken', id: 'fine-2', payload: { clientId: 'c' } }),
      ])
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
      assert.ok(results[1]!.status === 'rejected' && results[1]!.reason instanceof ValidationFailed)
      assert.ok(await db.store.oidc.find('AccessToken', 'fine-1', Date.now()))
      assert.ok(await db.store.oidc.find('AccessToken', 'fine-2', Date.now()))
    })

    it('revokes a grant\'s records whose writes were queued before the revocation', async () => {
      const writes = ['queued-1', 'queued-2'].map((id) => db.store.oidc.upsert({ model: 'AccessToken', id, payload: { clientId: 'c' }, grantId: 'queued-grant' }))
      await db.store.oidc.destroyByGrantId('AccessToken', 'queued-grant')
      await Promise.all(writes)
      assert.equal(await db.store.oidc.find('AccessToken', 'queued-1', Date.now()), undefined)
      assert.equal(await db.store.oidc.find('AccessToken', 'queued-2', Date.now()), undefined)
    })

    it('revokes an account\'s records queued before a transaction that deletes them', async () => {
      const write = db.store.oidc.upsert({ model: 'RefreshToken', id: 'queued-rt', payload: { accountId: '43', clientId: 'c' } })
      assert.equal(await db.store.transaction((tx) => tx.oidc.destroyByAccount('43')), 1)
      await write
      assert.equal(await db.store.oidc.find('RefreshToken', 'queued-rt', Date.now()), undefined)
    })
  })
}


for (const backend of unmigratedBackends) {
  describe(`OIDC records written before their account had a column of its own, on ${backend.name}`, () => {
    it('get their account from the payload when the database is upgraded', async () => {
      const { store, cleanup } = await backend.open()
      try {
        const migrator = new Migrator({ db: store.database.db, provider: migrationProvider(store.database.dialect) })
        assert.equal((await migrator.migrateTo('007_login_failures')).error, undefined)
        // A record as the version before 008_oidc_account wrote it.
        await store.database.db.insertInto('oidc_records' as never).values({ model: 'RefreshToken', id: 'before', payload: JSON.stringify({ accountId: '77', clientId: 'c' }) } as never).execute()
        await store.database.db.insertInto('oidc_records' as never).values({ model: 'ClientCredentials', id: 'service', payload: JSON.stringify({ clientId: 'c' }) } as never).execute()
        await store.database.migrate()
        assert.equal(await store.oidc.destroyByAccount('77'), 1)
        assert.ok(await store.oidc.find('ClientCredentials', 'service', Date.now()))
      } finally {
        await store.close()
        await cleanup()
      }
    })
  })
}

for (const backend of unmigratedBackends) {
  describe(`realm sessions saved before ended ones were remembered, on ${backend.name}`, () => {
    it('stay live when the database is upgraded, and once ended are never saved back', async () => {
      const { store, cleanup } = await backend.open()
      try {
        const migrator = new Migrator({ db: store.database.db, provider: migrationProvider(store.database.dialect) })
        assert.equal((await migrator.migrateTo('016_oidc_gateway_session')).error, undefined)
        const keyHash = 'upgraded-gateway-session'.padEnd(64, '0')
        // As version 016 wrote it: its table has no ended_at.
        await store.database.db.insertInto('oidc_records' as never).values({ model: 'Session', id: 'upgraded', payload: JSON.stringify({ uid: 'u-upgraded', accountId: '50' }), uid: 'u-upgraded', account_id: '50', gateway_session: keyHash, expires_at: Date.now() + 60_000 } as never).execute()
        await store.database.migrate()
        // Kept under the SHA-256 of its id since 040_oidc_secret_record_ids.
        assert.ok(await store.oidc.find('Session', recordKey('upgraded'), Date.now()))
        await store.oidc.endLinkedSessions([keyHash])
        assert.equal(await store.oidc.saveSession({ id: recordKey('upgraded'), payload: { uid: 'u-upgraded', accountId: '50' }, uid: 'u-upgraded', expiresAt: Date.now() + 60_000 }), false)
        assert.equal(await store.oidc.find('Session', recordKey('upgraded'), Date.now()), undefined)
      } finally {
        await store.close()
        await cleanup()
      }
    })
  })
}

for (const backend of unmigratedBackends) {
  describe(`OIDC records' uid and user code indexes, on ${backend.name}`, () => {
    it('leave out the records without one when the database is upgraded, and still serve lookups by them', async () => {
      const { store, cleanup } = await backend.open()
      try {
        const { db, dialect } = store.database
        const migrator = new Migrator({ db, provider: migrationProvider(dialect) })
        assert.equal((await migrator.migrateTo('013_application_organization')).error, undefined)
        // As version 013 wrote them: its table lacks the columns of later versions.
        await db.insertInto('oidc_records' as never).values([
          { model: 'Session', id: 's1', payload: JSON.stringify({ uid: 'u1' }), uid: 'u1' },
          { model: 'DeviceCode', id: 'd1', payload: JSON.stringify({ userCode: 'ABCD' }), user_code: 'ABCD' },
          { model: 'AccessToken', id: 'a1', payload: JSON.stringify({ accountId: '1' }), account_id: '1' },
        ] as never).execute()
        await store.database.migrate()

        const definition = await indexDefinitions(store)
        assert.match(definition('oidc_records_uid'), /where \(?"?uid"? is not null\)?$/i)
        assert.match(definition('oidc_records_user_code'), /where \(?"?user_code"? is not null\)?$/i)

        // A realm session's and a device code's ids are kept as their SHA-256 since 040_oidc_secret_record_ids, and a
        // user code as its key since 041_oidc_user_code_keys.
        assert.equal((await store.oidc.findByUid('Session', 'u1', Date.now()))?.id, recordKey('s1'))
        assert.equal((await store.oidc.findByUserCode('DeviceCode', await userCodeKey('ABCD'), Date.now()))?.id, recordKey('d1'))
        assert.equal((await store.oidc.find('AccessToken', 'a1', Date.now()))?.id, 'a1')
        assert.equal(await store.oidc.findByUid('Session', 'u2', Date.now()), undefined)
        for (const [column, index] of [['uid', 'oidc_records_uid'], ['user_code', 'oidc_records_user_code']] as const) {
          assert.match(await queryPlan(store, column), new RegExp(index), `the lookup by ${column} does not use its index`)
        }
      } finally {
        await store.close()
        await cleanup()
      }
    })
  })
}

for (const backend of unmigratedBackends) {
  describe(`OIDC records' grant and account indexes, on ${backend.name}`, () => {
    it('leave out the records without one (a client_credentials token) when the database is upgraded, and still serve every lookup by grant and by account', async () => {
      const { store, cleanup } = await backend.open()
      try {
        const { db, dialect } = store.database
        const migrator = new Migrator({ db, provider: migrationProvider(dialect) })
        assert.equal((await migrator.migrateTo('024_ldap_entries')).error, undefined)
        const later = Date.now() + 60_000
        // As version 024 wrote them: a grant with its tokens, and a client_credentials token with neither.
        await db.insertInto('oidc_records').values([
          { model: 'Grant', id: 'g1', payload: JSON.stringify({ accountId: '1', clientId: 'c' }), account_id: '1', expires_at: later },
          { model: 'RefreshToken', id: 'r1', payload: JSON.stringify({ accountId: '1', clientId: 'c', sid: 'login-1' }), grant_id: 'g1', account_id: '1', expires_at: later },
          { model: 'AccessToken', id: 'a1', payload: JSON.stringify({ accountId: '1', clientId: 'c', sid: 'login-1' }), grant_id: 'g1', account_id: '1', expires_at: later },
          { model: 'ClientCredentials', id: 'cc1', payload: JSON.stringify({ clientId: 'service' }), expires_at: later },
        ]).execute()
        await store.database.migrate()

        const definition = await indexDefinitions(store)
        assert.match(definition('oidc_records_grant_id'), /where \(?"?grant_id"? is not null\)?$/i)
        assert.match(definition('oidc_records_account_id'), /where \(?"?account_id"? is not null\)?$/i)

        const records = () => db.selectFrom('oidc_records').select('id')
        const lookups = {
          'a grant\'s records (endGrants)': [records().where((eb) => eb.or([eb('grant_id', 'in', ['g1', 'g2']), eb.and([eb('model', '=', 'Grant'), eb('id', 'in', ['g1', 'g2'])])])), 'oidc_records_grant_id'],
          'a model\'s records of a grant (destroyByGrantId)': [records().where('model', '=', 'AccessToken').where('grant_id', '=', 'g1'), 'oidc_records_grant_id'],
          'an account\'s records (destroyByAccount)': [records().where('account_id', '=', '1').where('model', 'in', ['Grant', 'AccessToken', 'RefreshToken']), 'oidc_records_account_id'],
        } as const
        for (const [lookup, [query, index]] of Object.entries(lookups)) {
          assert.match(await queryPlan(store, query), new RegExp(index), `${lookup} does not use ${index}`)
        }
        assert.deepEqual(await store.oidc.grantsOfSignIn('1', 'login-1', Date.now()), [{ grantId: 'g1', clientId: 'c' }])
        await store.oidc.destroyByGrantId('AccessToken', 'g1')
        assert.equal(await store.oidc.find('AccessToken', 'a1', Date.now()), undefined)
        assert.equal(await store.oidc.destroyByAccount('1'), 2)
        assert.equal(await store.oidc.find('RefreshToken', 'r1', Date.now()), undefined)
        assert.ok(await store.oidc.find('ClientCredentials', 'cc1', Date.now()))
      } finally {
        await store.close()
        await cleanup()
      }
    })
  })
}

/** The SQL that defines each index of the OIDC records' table, by name ('' for an index that does not exist). */
async function indexDefinitions(store: Store): Promise<(name: string) => string> {
  const { db, dialect } = store.database
  const definitions = dialect === 'postgres'
    ? (await sql<{ name: string; definition: string }>`SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE tablename = 'oidc_records'`.execute(db)).rows
    : (await sql<{ name: string; definition: string }>`SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' AND tbl_name = 'oidc_records'`.execute(db)).rows
  return (name) => definitions.find((index) => index.name === name)?.definition ?? ''
}

/** How the database runs a lookup by `column` as the repository makes it (a model's live records). */
async function queryPlan(store: Store, column: 'uid' | 'user_code'): Promise<string>
/** How the database runs `query`. */
async function queryPlan(store: Store, query: Compilable): Promise<string>
async function queryPlan(store: Store, lookup: 'uid' | 'user_code' | Compilable): Promise<string> {
  const query = typeof lookup !== 'string' ? lookup : store.database.db.selectFrom('oidc_records').selectAll()
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', Date.now())]))
    .where('model', '=', 'Session').where(lookup, '=', 'u1')
  return planOf(store, query)
}
