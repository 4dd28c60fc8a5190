import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BoundedCache, type TopicSource } from '../../src/store/cache.ts'

interface Item {
  readonly id: string
  readonly userId: number
  readonly expiresAt: number
}

const item = (id: string, userId = 1, expiresAt = Infinity): Item => ({ id, userId, expiresAt })

/** A monotonic clock the test steps: `clock.at` is what the cache reads. */
function steppedClock() {
  const clock = { at: 0, read: () => clock.at }
  return clock
}

function cache(maxAgeMs = 1000, maxEntries = 100, clock = steppedClock()): BoundedCache<string, Item> {
  return new BoundedCache({ maxEntries, maxAgeMs, expiresAt: (value) => value.expiresAt, userOf: (value) => value.userId, clock: clock.read })
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
    const clock = steppedClock()
    const entries = cache(1000, 100, clock)
    entries.set('a', item('a'))
    entries.set('b', item('b', 1, 500))
    clock.at = 999
    assert.equal(entries.get('a', 0)?.id, 'a')
    assert.equal(entries.get('b', 499)?.id, 'b')
    assert.equal(entries.get('b', 500), undefined, 'its own expiry is a time of the caller\'s clock')
    clock.at = 1000
    assert.equal(entries.get('a', 0), undefined)
    assert.equal(entries.size, 0, 'stale entries are dropped when found')
  })

  it('ages entries by the monotonic clock, whatever the clock its caller reads expiries with says', async () => {
    // The OIDC bearer cache reads expiries by the database's clock, the others by this machine's, which an NTP
    // correction or a virtual machine resumed may step back an hour: no entry may outlive its maximum age for it.
    const clock = steppedClock()
    const entries = cache(1000, 100, clock)
    const wallNow = Date.now()
    await entries.load('a', async () => item('a'), wallNow)
    entries.set('b', item('b'))
    clock.at = 999
    assert.equal(entries.get('a', wallNow - 3600_000)?.id, 'a')
    clock.at = 1000
    assert.equal(entries.get('a', wallNow - 3600_000), undefined, 'the wall clock stepped back keeps nothing longer')
    assert.equal(entries.get('b', wallNow - 3600_000), undefined)
    await entries.load('c', async () => item('c'), wallNow)
    clock.at = 1999
    assert.equal(entries.get('c', wallNow + 3600_000)?.id, 'c', 'the wall clock stepped ahead ages nothing before its time')
  })

  it('ages a loaded entry from before its read', async () => {
    const clock = steppedClock()
    const entries = cache(1000, 100, clock)
    await entries.load('a', async () => (clock.at = 400, item('a')))
    clock.at = 999
    assert.equal(entries.get('a')?.id, 'a')
    clock.at = 1000
    assert.equal(entries.get('a'), undefined)
  })

  it('holds at most its bound, dropping the oldest entry first', () => {
    const entries = cache(1000, 2)
    entries.set('a', item('a'))
    entries.set('b', item('b'))
    entries.set('c', item('c'))
    assert.deepEqual(['a', 'b', 'c'].map((key) => entries.get(key)?.id), [undefined, 'b', 'c'])
  })

  it('stores nothing when its maximum age is 0', () => {
    const entries = cache(0)
    entries.set('a', item('a'))
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
    const clock = steppedClock()
    const entries = new BoundedCache<string, number>({ maxEntries: 10, maxAgeMs: 1000, userOf: (userId) => userId, shareLoads: true, refreshAheadMs: 200, clock: clock.read })
    let calls = 0
    let finish!: () => void
    let done = new Promise<void>((resolve) => (finish = resolve))
    const loader = async () => (calls++, await done, 1)
    entries.set('k', 1)

    // Young: served, nothing loaded.
    clock.at = 700
    assert.equal(await entries.load('k', loader), 1)
    assert.equal(calls, 0)
    // In its last 200 ms: served at once (the load is still pending), and one load started for all the lookups.
    clock.at = 850
    assert.equal(await entries.load('k', loader), 1)
    clock.at = 900
    assert.equal(await entries.load('k', loader), 1)
    assert.equal(calls, 1)
    finish()
    await new Promise((resolve) => setImmediate(resolve))
    // Renewed (aged from when its load began, at 850): served past the old entry's age without a load.
    clock.at = 1500
    assert.equal(await entries.load('k', loader), 1)
    assert.equal(calls, 1)

    // A renewal that fails leaves the entry to end at its age; past it, the lookup waits for a load of its own.
    clock.at = 0
    entries.set('f', 1)
    let failures = 0
    const failing = async () => (failures++, Promise.reject(new Error('the password changed')))
    clock.at = 900
    assert.equal(await entries.load('f', failing), 1)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(failures, 1)
    clock.at = 1000
    await assert.rejects(entries.load('f', failing), /the password changed/)
    assert.equal(failures, 2)

    // A renewal that raced an invalidation stores nothing.
    clock.at = 0
    entries.set('r', 1)
    done = new Promise<void>((resolve) => (finish = resolve))
    clock.at = 900
    assert.equal(await entries.load('r', loader), 1)
    entries.forgetUser(1)
    finish()
    await new Promise((resolve) => setImmediate(resolve))
    clock.at = 901
    assert.equal(entries.get('r'), undefined)
  })
})
