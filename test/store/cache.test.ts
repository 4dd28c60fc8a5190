import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BoundedCache, type TopicSource } from '../../src/store/cache.ts'

interface Item {
  readonly id: string
  readonly userId: number
  readonly expiresAt: number
}

const item = (id: string, userId = 1, expiresAt = Infinity): Item => ({ id, userId, expiresAt })

function cache(maxAgeMs = 1000, maxEntries = 100): BoundedCache<string, Item> {
  return new BoundedCache({ maxEntries, maxAgeMs, expiresAt: (value) => value.expiresAt, userOf: (value) => value.userId })
}

/** A read the test finishes when it wants, so an invalidation can land while it is in flight. */
function pendingRead(value: Item | undefined) {
  let finish!: () => void
  const done = new Promise<void>((resolve) => (finish = resolve))
  return { loader: async () => (await done, value), finish }
}

/** Stands in for the event bus: `emit` delivers an event of a topic to its listeners. */
function topics(): TopicSource & { emit(topic: string, key: string): void } {
  const listeners = new Map<string, ((key: string) => void | Promise<void>)[]>()
  return {
    on: (topic, listener) => void listeners.set(topic, [...(listeners.get(topic) ?? []), listener]),
    emit: (topic, key) => listeners.get(topic)?.forEach((listener) => listener(key)),
  }
}

describe('the bounded cache every request-path cache uses', () => {
  it('serves an entry until its maximum age and never past its own expiry', () => {
    const entries = cache(1000)
    entries.set('a', item('a'), 0)
    entries.set('b', item('b', 1, 500), 0)
    assert.equal(entries.get('a', 999)?.id, 'a')
    assert.equal(entries.get('a', 1000), undefined)
    assert.equal(entries.get('b', 499)?.id, 'b')
    assert.equal(entries.get('b', 500), undefined)
    assert.equal(entries.size, 0, 'stale entries are dropped when found')
  })

  it('ages a loaded entry by the clock its caller reads it with, not by this process\'s', async () => {
    // The OIDC bearer cache reads by the database's clock: one a minute behind this process's must not keep a
    // verification a minute past its maximum age.
    const behind = Date.now() - 60_000
    const entries = cache(1000)
    await entries.load('a', async () => item('a'), behind)
    assert.equal(entries.get('a', behind + 999)?.id, 'a')
    assert.equal(entries.get('a', behind + 1000), undefined)
    const ahead = Date.now() + 60_000
    await entries.load('b', async () => item('b'), ahead)
    assert.equal(entries.get('b', ahead + 999)?.id, 'b', 'a clock ahead does not age an entry before its time')
  })

  it('holds at most its bound, dropping the oldest entry first', () => {
    const entries = cache(1000, 2)
    entries.set('a', item('a'), 0)
    entries.set('b', item('b'), 0)
    entries.set('c', item('c'), 0)
    assert.deepEqual(['a', 'b', 'c'].map((key) => entries.get(key, 1)?.id), [undefined, 'b', 'c'])
  })

  it('stores nothing when its maximum age is 0', () => {
    const entries = cache(0)
    entries.set('a', item('a'), 0)
    assert.equal(entries.size, 0)
  })

  it('does not remember a read that raced an invalidation, whichever invalidation it was', async () => {
    const invalidations: [string, (entries: BoundedCache<string, Item>) => void][] = [
      ['forget', (entries) => entries.forget('a')],
      ['forgetUser', (entries) => entries.forgetUser(1)],
      ['forgetWhere', (entries) => entries.forgetWhere((value) => value.id === 'a')],
      ['clear', (entries) => entries.clear()],
    ]
    for (const [name, invalidate] of invalidations) {
      const entries = cache()
      const read = pendingRead(item('a'))
      const loading = entries.load('a', read.loader)
      invalidate(entries)
      read.finish()
      assert.equal((await loading)?.id, 'a', `${name}: the request that read it still gets its answer`)
      assert.equal(entries.get('a'), undefined, `${name}: but the answer is not kept`)
      assert.equal((await entries.load('a', async () => item('a')))?.id, 'a')
      assert.equal(entries.get('a')?.id, 'a', `${name}: a read after the invalidation is kept`)
    }
  })

  it('follows an event topic: a key forgets its entry, user:<id> the user\'s entries, all everything', () => {
    const bus = topics()
    const entries = cache()
    entries.follow(bus, 'session')
    for (const [key, userId] of [['a', 1], ['b', 1], ['c', 2], ['d', 3]] as const) entries.set(key, item(key, userId))
    bus.emit('session', 'a')
    assert.deepEqual(['a', 'b', 'c', 'd'].map((key) => entries.get(key)?.id), [undefined, 'b', 'c', 'd'])
    bus.emit('session', 'user:1')
    assert.deepEqual(['b', 'c', 'd'].map((key) => entries.get(key)?.id), [undefined, 'c', 'd'])
    bus.emit('other', 'all')
    assert.equal(entries.get('c')?.id, 'c', 'another topic is not followed')
    bus.emit('session', 'all')
    assert.equal(entries.size, 0)
  })

  it('follows a topic whose keys name entries by something else than their cache key', () => {
    const bus = topics()
    const entries = cache()
    entries.followWhere(bus, 'token', (id, value) => value.id === id)
    entries.set('hash-1', item('7'))
    entries.set('hash-2', item('8'))
    bus.emit('token', '7')
    assert.deepEqual([entries.get('hash-1'), entries.get('hash-2')?.id], [undefined, '8'])
  })

  it('shares one load among concurrent lookups of a key, but not with lookups after an invalidation', async () => {
    const entries = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 1000, userOf: (userId) => userId, shareLoads: true })
    let calls = 0
    let finish!: () => void
    const done = new Promise<void>((resolve) => (finish = resolve))
    const loader = async () => (calls++, await done, 1)
    const first = entries.load('k', loader)
    const second = entries.load('k', loader)
    entries.forgetUser(1)
    const third = entries.load('k', loader)
    finish()
    assert.deepEqual(await Promise.all([first, second, third]), [1, 1, 1])
    assert.equal(calls, 2, 'the first two shared a load; the one after the invalidation started its own')
  })

  it('serves an entry near its maximum age at once while one shared load renews it, and never past that age', async () => {
    const entries = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 1000, userOf: (userId) => userId, shareLoads: true, refreshAheadMs: 200 })
    let calls = 0
    let finish!: () => void
    let done = new Promise<void>((resolve) => (finish = resolve))
    const loader = async () => (calls++, await done, 1)
    const start = Date.now()
    entries.set('k', 1, start)

    // Young: served, nothing loaded.
    assert.equal(await entries.load('k', loader, start + 700), 1)
    assert.equal(calls, 0)
    // In its last 200 ms: served at once (the load is still pending), and one load started for all the lookups.
    assert.equal(await entries.load('k', loader, start + 850), 1)
    assert.equal(await entries.load('k', loader, start + 900), 1)
    assert.equal(calls, 1)
    finish()
    await new Promise((resolve) => setImmediate(resolve))
    // Renewed: served past the old entry's age without a load.
    assert.equal(await entries.load('k', loader, Date.now() + 700), 1)
    assert.equal(calls, 1)

    // A renewal that fails leaves the entry to end at its age; past it, the lookup waits for a load of its own.
    entries.set('f', 1, start)
    let failures = 0
    const failing = async () => (failures++, Promise.reject(new Error('the password changed')))
    assert.equal(await entries.load('f', failing, start + 900), 1)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(failures, 1)
    await assert.rejects(entries.load('f', failing, start + 1000), /the password changed/)
    assert.equal(failures, 2)

    // A renewal that raced an invalidation stores nothing.
    entries.set('r', 1, start)
    done = new Promise<void>((resolve) => (finish = resolve))
    assert.equal(await entries.load('r', loader, start + 900), 1)
    entries.forgetUser(1)
    finish()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(entries.get('r', start + 901), undefined)
  })
})
