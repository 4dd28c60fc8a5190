import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { UpstreamPool } from '../../src/gateway/upstream-pool.ts'

/** A stand-in for a response: admit() is given its 'close' event. */
function response(): { closed: EventEmitter; onceClosed: (listener: () => void) => void; close: () => void } {
  const closed = new EventEmitter()
  return { closed, onceClosed: (listener) => closed.once('close', listener), close: () => closed.emit('close') }
}

describe('the upstream pool', () => {
  it('admits at once while the client is under its share and a connection is free', async () => {
    const pool = new UpstreamPool({ connections: 3, perClient: 2, waitMs: 10 })
    assert.equal(pool.admit('a', 'svc', response().onceClosed), undefined)
    assert.equal(pool.admit('a', 'svc', response().onceClosed), undefined)
    const third = pool.admit('a', 'svc', response().onceClosed)
    assert.ok(third instanceof Promise)
    assert.equal(pool.admit('b', 'svc', response().onceClosed), undefined)
    await assert.rejects(third, { code: 'upstream_busy' })
  })

  it('lets one client take more than its share only while more than half of the pool is free', async () => {
    const pool = new UpstreamPool({ connections: 8, perClient: 2, waitMs: 10 })
    for (let i = 0; i < 4; i++) assert.equal(pool.admit('burst', 'svc', response().onceClosed), undefined, `request ${i}`)
    const fifth = pool.admit('burst', 'svc', response().onceClosed)
    assert.ok(fifth instanceof Promise)
    for (let i = 0; i < 2; i++) assert.equal(pool.admit('other', 'svc', response().onceClosed), undefined)
    await assert.rejects(fifth, { code: 'upstream_busy' })
  })

  it('hands a freed connection to the first waiting client under its share, passing over those at theirs', async () => {
    const pool = new UpstreamPool({ connections: 3, perClient: 1, waitMs: 1000 })
    const a = response()
    const x = response()
    pool.admit('a', 'svc', a.onceClosed)
    pool.admit('b', 'svc', response().onceClosed)
    pool.admit('x', 'svc', x.onceClosed)
    const order: string[] = []
    const aAgain = pool.admit('a', 'svc', response().onceClosed)!.then(() => order.push('a'))
    const c = pool.admit('c', 'svc', response().onceClosed)!.then(() => order.push('c'))
    x.close()
    await c
    assert.deepEqual(order, ['c'])
    a.close()
    await aAgain
    assert.deepEqual(order, ['c', 'a'])
  })

  it('answers 503 upstream_busy after the wait, and gives up the place of a client that went away', async () => {
    const pool = new UpstreamPool({ connections: 1, perClient: 1, waitMs: 50 })
    const holder = response()
    pool.admit('a', 'svc', holder.onceClosed)
    await assert.rejects(pool.admit('b', 'svc', response().onceClosed)!, { status: 503, code: 'upstream_busy' })
    const leaving = response()
    const gone = pool.admit('c', 'svc', leaving.onceClosed)!
    leaving.close()
    await assert.rejects(gone, { code: 'upstream_busy' })
    const next = pool.admit('d', 'svc', response().onceClosed)!
    holder.close()
    await next
  })

  it('takes back a connection granted to a waiter once its response closes', async () => {
    const pool = new UpstreamPool({ connections: 1, perClient: 1, waitMs: 1000 })
    const first = response()
    pool.admit('a', 'svc', first.onceClosed)
    const second = response()
    const waiting = pool.admit('b', 'svc', second.onceClosed)!
    first.close()
    await waiting
    second.close()
    assert.equal(pool.admit('c', 'svc', response().onceClosed), undefined)
  })
})
