import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { LoadedKeys, RotatingKeys, type RealmKeySet } from '../../src/oidc/keys.ts'
import type { SigningKeyRepository } from '../../src/store/signing-keys.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

const DAY = 86400

/** A repository's methods bound to it, to be spread into a stand-in that replaces one of them. */
function bound<T extends object>(repository: T): T {
  const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(repository)).filter((name) => name !== 'constructor')
  return Object.fromEntries(methods.map((name) => [name, (repository as Record<string, (...args: unknown[]) => unknown>)[name]!.bind(repository)])) as T
}
const AHEAD = 330
const GRACE = 120

for (const backend of storeBackends) {
  describe(`keys published ahead of signing, on ${backend.name}`, () => {
    const opened = openForSuite(backend)
    const keysOf = (purpose: string, store = opened.store) => new RotatingKeys(store, { purpose, alg: 'ES256', rotationSeconds: 30 * DAY, graceSeconds: GRACE, publishAheadSeconds: AHEAD })

    it('signs with the first key at once', async () => {
      const t0 = Date.now()
      const first = await keysOf('ahead-first').load(t0)
      assert.equal(first.changed, true)
      assert.deepEqual(first.keys.publicJwks.map((k) => k.kid), [first.keys.activeKid])
      assert.equal(first.keys.publicJwks[0]!.d, undefined)
      assert.equal(first.keys.publicJwks[0]!.x5c, undefined)
      assert.equal(first.keys.reloadAt, t0 + 30 * DAY * 1000)
    })

    it('publishes the next key before it signs, and keeps the old one until its tokens have expired', async () => {
      const keys = keysOf('ahead-rotation')
      const t0 = Date.now()
      const old = (await keys.load(t0)).keys.activeKid
      const due = t0 + 30 * DAY * 1000
      const published = await keys.load(due)
      assert.equal(published.changed, true)
      assert.equal(published.keys.activeKid, old)
      const next = published.keys.publicJwks.map((k) => k.kid).find((kid) => kid !== old)!
      assert.deepEqual(published.keys.publicJwks.map((k) => k.kid), [old, next])
      assert.equal(published.keys.reloadAt, due + AHEAD * 1000)
      const stillOld = await keys.load(due + AHEAD * 1000 - 1)
      assert.equal(stillOld.changed, false)
      assert.equal(stillOld.keys.activeKid, old)
      const switched = await keys.load(due + AHEAD * 1000)
      assert.equal(switched.keys.activeKid, next)
      assert.deepEqual(switched.keys.publicJwks.map((k) => k.kid), [next, old])
      assert.equal(switched.keys.reloadAt, due + (AHEAD + GRACE) * 1000)
      const later = await keys.load(due + (AHEAD + GRACE) * 1000 + 1)
      assert.deepEqual(later.keys.publicJwks.map((k) => k.kid), [next])
      assert.equal(later.keys.reloadAt, due + AHEAD * 1000 + 30 * DAY * 1000)
    })

    it('rotates at once on request, signing only once the key is published long enough', async () => {
      const keys = keysOf('ahead-now')
      const t0 = Date.now()
      const old = (await keys.load(t0)).keys.activeKid
      const { kid, signsFrom } = await keys.rotate(t0 + 1000)
      assert.equal(signsFrom, t0 + 1000 + AHEAD * 1000)
      const published = await keys.load(t0 + 1000)
      assert.equal(published.keys.activeKid, old)
      assert.deepEqual(published.keys.publicJwks.map((k) => k.kid), [old, kid])
      assert.equal((await keys.load(signsFrom)).keys.activeKid, kid)
    })

    it('signs with a key another configuration published (a keys rotate run with its own) after this process\'s own time ahead', async () => {
      const server = keysOf('ahead-other-config')
      const command = new RotatingKeys(opened.store, { purpose: 'ahead-other-config', alg: 'ES256', rotationSeconds: 30 * DAY, graceSeconds: GRACE, publishAheadSeconds: 2 })
      const t0 = Date.now()
      const old = (await server.load(t0)).keys.activeKid
      const { kid, signsFrom } = await command.rotate(t0 + 1000)
      assert.equal(signsFrom, t0 + 1000 + 2000, 'by the command\'s own options')
      // The server sends its own max-age with its JWKS: services may keep the one without the key that long.
      assert.equal((await server.load(signsFrom)).keys.activeKid, old)
      assert.equal((await server.load(t0 + 1000 + AHEAD * 1000 - 1)).keys.activeKid, old)
      assert.equal((await server.load(t0 + 1000 + AHEAD * 1000)).keys.activeKid, kid)
      // And the other way round: a command with a longer time ahead does not hold back a server with a shorter one.
      const patient = new RotatingKeys(opened.store, { purpose: 'ahead-other-config', alg: 'ES256', rotationSeconds: 30 * DAY, graceSeconds: GRACE, publishAheadSeconds: 3600 })
      const t1 = t0 + 2000 * 1000
      const later = await patient.rotate(t1)
      assert.equal((await server.load(t1 + AHEAD * 1000)).keys.activeKid, later.kid)
    })

    it('starts two processes at once on one first key, whichever clock is ahead', async () => {
      const other = await opened.reopen()
      try {
        const t0 = Date.now()
        // Both find no key; A writes its first, then B (5 ms ahead) tries to write its own.
        const { promise: bListed, resolve: listedByB } = Promise.withResolvers<void>()
        const { promise: aAdded, resolve: addedByA } = Promise.withResolvers<void>()
        const interleaved = (store: typeof opened.store, overrides: Partial<SigningKeyRepository>) =>
          ({ ...store, signingKeys: { ...bound(store.signingKeys), ...overrides } }) as unknown as typeof opened.store
        const b = keysOf('first-race', interleaved(other, {
          list: async (purpose) => {
            const keys = await other.signingKeys.list(purpose)
            listedByB()
            return keys
          },
          addFirst: async (key) => {
            await aAdded
            return await other.signingKeys.addFirst(key)
          },
        }))
        let fromB: Promise<Awaited<ReturnType<RotatingKeys['load']>>> | undefined
        const a = keysOf('first-race', interleaved(opened.store, {
          addFirst: async (key) => {
            fromB = b.load(t0 + 5)
            await bListed
            const added = await opened.store.signingKeys.addFirst(key)
            addedByA()
            await fromB
            return added
          },
        }))
        const fromA = await a.load(t0)
        const settledB = await fromB!
        assert.equal(fromA.keys.activeKid, settledB.keys.activeKid)
        assert.deepEqual(fromA.keys.publicJwks.map((k) => k.kid), [fromA.keys.activeKid])
        assert.deepEqual(settledB.keys.publicJwks.map((k) => k.kid), [fromA.keys.activeKid])
      } finally {
        await other.close()
      }
    })

    it('signs at once with a key another process made first with its clock ahead', async () => {
      const t0 = Date.now()
      const ahead = await keysOf('first-ahead').load(t0 + 5000)
      const behind = await keysOf('first-ahead').load(t0)
      assert.equal(behind.changed, false)
      assert.equal(behind.keys.activeKid, ahead.keys.activeKid)
      assert.deepEqual(behind.keys.publicJwks.map((k) => k.kid), [ahead.keys.activeKid])
    })

    it('lets processes that published a next key at once agree on it', async () => {
      const other = await opened.reopen()
      try {
        const a = keysOf('ahead-race')
        const b = keysOf('ahead-race', other)
        const t0 = Date.now()
        await a.load(t0)
        const due = t0 + 30 * DAY * 1000
        await Promise.all([a.load(due), b.load(due)])
        await a.rotate(due + 1)
        const [fromA, fromB] = await Promise.all([a.load(due + 2), b.load(due + 2)])
        assert.deepEqual(fromA.keys.publicJwks.map((k) => k.kid), fromB.keys.publicJwks.map((k) => k.kid))
        // The active key, the newest next one, and those it outran (one or two, as the processes' publications met),
        // published as long as a replaced key.
        assert.ok([3, 4].includes(fromA.keys.publicJwks.length), String(fromA.keys.publicJwks.length))
        // When the newest next key signs (the outrun one's end of publication may come first: GRACE < AHEAD).
        const switchAt = due + 1 + AHEAD * 1000
        const [thenA, thenB] = await Promise.all([a.load(switchAt), b.load(switchAt)])
        assert.equal(thenA.keys.activeKid, thenB.keys.activeKid)
        assert.equal(thenA.keys.activeKid, fromA.keys.publicJwks[1]!.kid)
      } finally {
        await other.close()
      }
    })
  })
}

describe('keys loaded in a process', () => {
  it('reads them again when news of a change came while they were being read', async () => {
    const opened = await storeBackends[0]!.open()
    try {
      let release!: () => void
      const reading = new Promise<void>((resolve) => (release = resolve))
      let markRead!: () => void
      const databaseRead = new Promise<void>((resolve) => (markRead = resolve))
      // Keys whose read waits until the test lets it finish: news arrives in between.
      class SlowKeys extends RotatingKeys {
        override async load(now?: number): Promise<{ keys: RealmKeySet; changed: boolean }> {
          const read = await super.load(now)
          markRead()
          await reading
          return read
        }
      }
      // Telling of the keys it made delivers this process's own news to it too, as the event bus does.
      const loaded: LoadedKeys = new LoadedKeys(new SlowKeys(opened.store, { purpose: 'slow', alg: 'ES256', rotationSeconds: 30 * DAY, graceSeconds: GRACE }), async () => loaded.reload())
      const now = Date.now()
      const first = loaded.get(now)
      // The news comes once the database has been read, before the read is done with.
      await databaseRead
      loaded.reload()
      release()
      await first
      assert.equal(loaded.fresh(now), undefined)
      await loaded.get(now)
      assert.notEqual(loaded.fresh(now), undefined)
    } finally {
      await opened.store.close()
      await opened.cleanup()
    }
  })
})
