import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { EventBus } from '../../src/store/event-bus.ts'
import { storeBackends, type OpenedStore } from '../helpers/backends.ts'
import { queryPlan } from '../helpers/query-plan.ts'
import { asAnEarlierVersion } from '../helpers/username-pairs.ts'

/** One conformance suite, run on every backend: what passes here behaves the same on SQLite and PostgreSQL. */
function storeConformance(backend: string, open: () => Promise<OpenedStore>): void {
  describe(`store on ${backend}`, () => {
    let store: Store
    let reopen: () => Promise<Store>
    let cleanup: () => Promise<void>
    before(async () => {
      ;({ store, reopen, cleanup } = await open())
    })
    after(async () => {
      await store.close()
      await cleanup()
    })

    it('creates users with defaults and reads them back by id and username', async () => {
      const created = await store.users.create({ username: 'ada', email: 'ada@example.com', passwordHash: 'h1', isSuperuser: true }, 1_700_000_000_000)
      assert.equal(typeof created.id, 'number')
      assert.equal(created.isSuperuser, true)
      assert.equal(created.isActive, true)
      assert.equal(created.external, false)
      assert.equal(created.source, 'local')
      assert.equal(created.created, 1_700_000_000_000)
      assert.equal(created.lastLogin, null)
      assert.deepEqual(await store.users.findById(created.id), created)
      assert.deepEqual(await store.users.findByUsername('ada'), created)
      assert.equal(await store.users.findByUsername('ADA'), undefined)
    })

    it('finds another account of a name in any letter case, the exact spelling first, through an index on lower(username)', async () => {
      // Pairs like these can no longer be made, but a database from an earlier version may hold them.
      const [lower, upper] = await asAnEarlierVersion(store, async () => [
        await store.users.create({ username: 'case-pair' }),
        await store.users.create({ username: 'CASE-PAIR' }),
      ])
      assert.equal((await store.users.findCaseVariant('case-pair'))?.id, lower.id)
      assert.equal((await store.users.findCaseVariant('CASE-PAIR'))?.id, upper.id)
      assert.equal((await store.users.findCaseVariant('CASE-PAIR', upper.id))?.id, lower.id, 'not the account being renamed')
      assert.ok([lower.id, upper.id].includes((await store.users.findCaseVariant('Case-Pair'))!.id))
      assert.equal(await store.users.findCaseVariant('case-pairs'), undefined)
      const plan = await queryPlan(store, store.database.db.selectFrom('users').select('id').where((eb) => eb(eb.fn('lower', ['username']), '=', 'case-pair')))
      assert.match(plan, /users_username_lower/)
    })

    it('refuses a duplicate username', async () => {
      await assert.rejects(store.users.create({ username: 'ada' }), (error: Error) => /UNIQUE|duplicate|23505/i.test(String((error as { code?: string }).code ?? '') + error.message))
    })

    it('updates only the given fields and keeps booleans as booleans', async () => {
      const user = await store.users.create({ username: 'grace', source: 'ldap', external: true })
      const updated = await store.users.update(user.id, { isActive: false, email: 'g@example.com' }, 1_800_000_000_000)
      assert.equal(updated?.isActive, false)
      assert.equal(updated?.email, 'g@example.com')
      assert.equal(updated?.external, true)
      assert.equal(updated?.source, 'ldap')
      assert.equal(updated?.modified, 1_800_000_000_000)
      assert.equal(await store.users.update(999_999, { email: 'x' }), undefined)
    })

    it('pages and filters the user list', async () => {
      for (let i = 0; i < 5; i++) await store.users.create({ username: `page${i}` })
      const all = await store.users.list({ offset: 0, limit: 100 })
      const firstTwo = await store.users.list({ offset: 0, limit: 2 })
      assert.equal(firstTwo.count, all.count)
      assert.equal(firstTwo.users.length, 2)
      assert.deepEqual(firstTwo.users.map((u) => u.id), all.users.slice(0, 2).map((u) => u.id))
      const ldap = await store.users.list({ offset: 0, limit: 100, source: 'ldap' })
      assert.deepEqual(ldap.users.map((u) => u.username), ['grace'])
      assert.equal((await store.users.list({ offset: 0, limit: 10, username: 'page3' })).count, 1)
    })

    it('records the last login and deletes users', async () => {
      const user = await store.users.create({ username: 'temp' })
      const recorded = await store.users.recordLogin(user.id, null, 1_900_000_000_000)
      assert.equal(recorded?.lastLogin, 1_900_000_000_000)
      assert.deepEqual(recorded, await store.users.findById(user.id))
      assert.equal(await store.users.delete(user.id), true)
      assert.equal(await store.users.delete(user.id), false)
      assert.equal(await store.users.findById(user.id), undefined)
      assert.equal(await store.users.recordLogin(user.id, null), undefined)
    })

    it('records a login only while the account has the password hash it verified', async () => {
      const user = await store.users.create({ username: 'hashed', passwordHash: 'hash-one' })
      assert.equal(await store.users.hasPasswordHash(user.id, 'hash-one'), true)
      assert.equal((await store.users.recordLogin(user.id, 'hash-one', 1_900_000_000_000))?.lastLogin, 1_900_000_000_000)
      await store.users.update(user.id, { passwordHash: 'hash-two' })
      assert.equal(await store.users.hasPasswordHash(user.id, 'hash-one'), false)
      assert.equal(await store.users.hasPasswordHash(user.id, null), false)
      assert.equal(await store.users.recordLogin(user.id, 'hash-one', 1_900_000_001_000), undefined)
      assert.equal((await store.users.findById(user.id))?.lastLogin, 1_900_000_000_000)
      await store.users.update(user.id, { passwordHash: null })
      assert.equal(await store.users.hasPasswordHash(user.id, null), true)
      assert.equal(await store.users.recordLogin(user.id, 'hash-two'), undefined)
    })

    it('replaces a password hash only while the account has the one it replaces, and nothing else', async () => {
      const user = await store.users.create({ username: 'rehashed', passwordHash: 'hash-old' }, 1_900_000_000_000)
      const replaced = await store.users.replacePasswordHash(user.id, 'hash-old', 'hash-new')
      assert.deepEqual(replaced, { ...user, passwordHash: 'hash-new' })
      assert.equal(await store.users.replacePasswordHash(user.id, 'hash-old', 'hash-other'), undefined)
      assert.equal((await store.users.findById(user.id))?.passwordHash, 'hash-new')
    })

    it('keeps an account\'s not-before times, 0 until set', async () => {
      const user = await store.users.create({ username: 'not-before' })
      assert.equal(user.notBefore, 0)
      assert.equal(user.tokensNotBefore, 0)
      const updated = await store.users.update(user.id, { notBefore: 1_900_000_000_123, tokensNotBefore: 1_900_000_000_456 })
      assert.equal(updated?.notBefore, 1_900_000_000_123)
      assert.equal((await store.users.findById(user.id))?.tokensNotBefore, 1_900_000_000_456)
    })

    it('stores settings as JSON values and overwrites them', async () => {
      await store.settings.put({ session_cookie_age: 1200, gateway_basic_auth_enabled: false })
      await store.settings.put({ session_cookie_age: 60 })
      assert.deepEqual(await store.settings.all(), { session_cookie_age: 60, gateway_basic_auth_enabled: false })
    })

    it('keeps an ordered event log and prunes old entries', async () => {
      const first = await store.events.append('user', '1', 1000)
      const second = await store.events.append('settings', 'x')
      assert.ok(second > first)
      assert.equal(await store.events.latestId(), second)
      assert.deepEqual((await store.events.after(first)).map((e) => [e.topic, e.key]), [['settings', 'x']])
      await store.events.prune(60_000)
      assert.deepEqual((await store.events.after(first - 1)).map((e) => e.id), [second])
      // However old, the newest event stays: a reader that missed the pruned ones sees the hole behind it.
      const third = await store.events.append('settings', 'y', 3000)
      await store.events.prune(-60_000)
      assert.deepEqual((await store.events.after(0)).map((e) => e.id), [third])
      assert.equal(await store.events.oldestId(), third)
    })

    it('stores signing keys and retires them', async () => {
      await store.signingKeys.add({ kid: 'k1', purpose: 'test', alg: 'ES256', privateJwk: { d: 'secret' }, publicJwk: { x: '1' }, created: 1, retireAt: null })
      await store.signingKeys.add({ kid: 'k2', purpose: 'test', alg: 'ES256', privateJwk: { d: 's2' }, publicJwk: { x: '2' }, created: 2, retireAt: null })
      assert.deepEqual((await store.signingKeys.list('test')).map((k) => k.kid), ['k2', 'k1'])
      await store.signingKeys.add({ kid: 'other', purpose: 'other', alg: 'ES256', privateJwk: {}, publicJwk: {}, created: 1, retireAt: 5 })
      await store.signingKeys.retire('k1', 10)
      await store.signingKeys.deleteRetiredBefore('test', 11)
      assert.deepEqual((await store.signingKeys.list('test')).map((k) => [k.kid, k.publicJwk]), [['k2', { x: '2' }]])
      assert.equal((await store.signingKeys.list('other')).length, 1, 'keys of another purpose stay')
    })

    it('tells a second connection about changes through the event bus', async () => {
      const other = await reopen()
      const bus = new EventBus(other)
      const seen: string[] = []
      bus.on('user', (key) => void seen.push(key))
      await bus.start(60_000)
      try {
        const publisher = new EventBus(store)
        await publisher.publish('user', '42')
        await bus.freshen()
        // PostgreSQL delivers by NOTIFY, asynchronously; a sync is what the safety timer would do.
        if (!seen.length) await bus.sync()
        assert.deepEqual(seen, ['42'])
        await bus.freshen()
        assert.deepEqual(seen, ['42'], 'an event is delivered once')
      } finally {
        await bus.stop()
        await other.close()
      }
    })

    it('writes a change and its events together, or neither when the change fails', async () => {
      const bus = new EventBus(store)
      const heard: string[] = []
      bus.on('user', (key) => void heard.push(key))
      const before = await store.events.latestId()
      await assert.rejects(bus.change(async (tx, announce) => {
        await tx.users.create({ username: 'half-done' })
        announce('user', 'half-done')
        throw new Error('the change fails after writing')
      }), /the change fails/)
      assert.equal(await store.users.findByUsername('half-done'), undefined, 'the write was undone')
      assert.equal(await store.events.latestId(), before, 'no event was written')
      assert.deepEqual(heard, [])

      const created = await bus.change(async (tx, announce) => {
        const user = await tx.users.create({ username: 'all-done' })
        announce('user', String(user.id))
        return user
      })
      assert.deepEqual(heard, [String(created.id)], 'this process heard it before the change returned')
      assert.deepEqual((await store.events.after(before)).map((e) => [e.topic, e.key]), [['user', String(created.id)]])
    })

    it('refuses text containing a NUL character, whatever the field', async () => {
      await assert.rejects(store.users.create({ username: 'nul', firstName: 'a\u0000b' }), (error: Error) => (error as { code?: string }).code === 'invalid')
      assert.equal(await store.users.findByUsername('nul'), undefined)
      await assert.rejects(store.users.findByUsername('a\u0000'), (error: Error) => (error as { code?: string }).code === 'invalid')
    })

    it('runs migrations idempotently', async () => {
      assert.deepEqual(await store.database.migrate(), [])
      assert.equal(await store.database.ping(), true)
    })
  })
}

for (const backend of storeBackends) storeConformance(backend.name, backend.open)
