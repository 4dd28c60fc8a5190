import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateToken, hashToken } from '../../src/auth/token-format.ts'
import { UniqueViolation } from '../../src/store/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

/** The token repository's conformance cases, run on both backends. */
for (const backend of storeBackends) {
  describe(`token repository on ${backend.name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>
    let alice: number
    let bob: number
    before(async () => {
      ;({ store, cleanup } = await backend.open())
      alice = (await store.users.create({ username: 'alice' })).id
      bob = (await store.users.create({ username: 'bob' })).id
    })
    after(async () => {
      await store.close()
      await cleanup()
    })

    const newToken = (userId: number, scope: 'read' | 'write' = 'write') =>
      ({ userId, tokenHash: hashToken(generateToken()), scope, description: '', expires: Date.now() + 3600_000 })

    it('stores a token by its hash and finds it by hash and by id', async () => {
      const input = { ...newToken(alice, 'read'), description: 'ci' }
      const created = await store.tokens.create(input, 1_700_000_000_000)
      assert.deepEqual(created, {
        id: created.id, userId: alice, tokenHash: input.tokenHash, scope: 'read', description: 'ci',
        created: 1_700_000_000_000, modified: 1_700_000_000_000, expires: input.expires, lastUsed: null,
      })
      assert.deepEqual(await store.tokens.findByHash(input.tokenHash), created)
      assert.deepEqual(await store.tokens.findById(created.id), created)
      assert.equal(await store.tokens.findByHash(hashToken(generateToken())), undefined)
    })

    it('refuses a second token with the same hash', async () => {
      const input = newToken(alice)
      await store.tokens.create(input)
      await assert.rejects(store.tokens.create(input), UniqueViolation)
    })

    it('lists by user, with a count and pages', async () => {
      for (let i = 0; i < 3; i++) await store.tokens.create(newToken(bob))
      const page = await store.tokens.list({ offset: 1, limit: 1, userId: bob })
      assert.equal(page.count, 3)
      assert.equal(page.tokens.length, 1)
      assert.equal(page.tokens[0]!.userId, bob)
      const all = await store.tokens.list({ offset: 0, limit: 100 })
      assert.deepEqual(new Set(all.tokens.map((t) => t.userId)), new Set([alice, bob]))
      assert.deepEqual(all.tokens.map((t) => t.id), [...all.tokens.map((t) => t.id)].sort((a, b) => a - b))
    })

    it('updates description and scope', async () => {
      const { id } = await store.tokens.create(newToken(alice))
      const updated = await store.tokens.update(id, { description: 'narrowed', scope: 'read' }, 1_800_000_000_000)
      assert.equal(updated!.description, 'narrowed')
      assert.equal(updated!.scope, 'read')
      assert.equal(updated!.modified, 1_800_000_000_000)
      assert.equal(await store.tokens.update(999_999, { description: 'x' }), undefined)
    })

    it('records last use without moving it backwards', async () => {
      const first = await store.tokens.create(newToken(alice))
      const second = await store.tokens.create(newToken(alice))
      await store.tokens.recordLastUsed(new Map([[first.id, 2000], [second.id, 3000], [999_999, 1]]))
      await store.tokens.recordLastUsed(new Map([[first.id, 1000]]))
      assert.equal((await store.tokens.findById(first.id))!.lastUsed, 2000)
      assert.equal((await store.tokens.findById(second.id))!.lastUsed, 3000)
    })

    it('deletes one token, a user\'s tokens, and all tokens', async () => {
      const one = await store.tokens.create(newToken(alice))
      assert.equal(await store.tokens.delete(one.id), true)
      assert.equal(await store.tokens.delete(one.id), false)
      const bobsBefore = (await store.tokens.list({ offset: 0, limit: 1, userId: bob })).count
      assert.equal(await store.tokens.deleteByUser(bob), bobsBefore)
      assert.equal((await store.tokens.list({ offset: 0, limit: 1, userId: bob })).count, 0)
      assert.ok((await store.tokens.list({ offset: 0, limit: 1, userId: alice })).count > 0)
      assert.ok((await store.tokens.deleteAll()) > 0)
      assert.equal((await store.tokens.list({ offset: 0, limit: 1 })).count, 0)
    })

    it('drops a user\'s tokens with the user', async () => {
      const carol = await store.users.create({ username: 'carol' })
      const token = await store.tokens.create(newToken(carol.id))
      await store.users.delete(carol.id)
      assert.equal(await store.tokens.findById(token.id), undefined)
    })
  })
}
