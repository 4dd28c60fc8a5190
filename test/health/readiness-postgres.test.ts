import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'

const TIMEOUT_MS = 300

/** Probes /readyz until it answers `status`, and returns how long after `since` that was. */
async function readyzBecomes(gw: TestGateway, status: number, since: number, withinMs: number): Promise<{ ms: number; body: any }> {
  for (;;) {
    const response = await gw.fetch('/readyz')
    const body = await json(response)
    const ms = performance.now() - since
    if (response.status === status) return { ms, body }
    assert.ok(ms < withinMs, `/readyz still ${response.status} after ${Math.round(ms)} ms: ${JSON.stringify(body)}`)
    await sleep(20)
  }
}

function databaseCheck(body: { checks: { name: string; status: string; data: Record<string, unknown> }[] }) {
  return body.checks.find((c) => c.name === 'database')!
}

describe('readiness on PostgreSQL when the database goes away', () => {
  let cluster: PgCluster
  let gw: TestGateway
  before(async () => {
    cluster = await startPgCluster()
    gw = await startGateway({ databaseUrl: cluster.url, config: { server: { port: 0, readiness_timeout_ms: TIMEOUT_MS } } })
  })
  after(async () => {
    cluster?.thaw()
    await gw?.close()
    cluster?.destroy()
  })

  it('answers 503 within a second of PostgreSQL stopping, and 200 again once it is back', async () => {
    assert.equal((await gw.fetch('/readyz')).status, 200)
    cluster.stop()
    const down = await readyzBecomes(gw, 503, performance.now(), 1000)
    assert.equal(down.body.code, 'not_ready')
    assert.equal(databaseCheck(down.body).status, 'DOWN')
    assert.equal(databaseCheck(down.body).data.reason, 'unreachable')
    assert.equal((await gw.fetch('/healthz')).status, 200)

    cluster.start()
    const up = await readyzBecomes(gw, 200, performance.now(), 5000)
    assert.equal(up.body.status, 'UP')
  })

  it('answers within its timeout while PostgreSQL is frozen, however many probes come', async () => {
    assert.equal((await gw.fetch('/readyz')).status, 200)
    cluster.freeze()
    try {
      const started = performance.now()
      const responses = await Promise.all(Array.from({ length: 20 }, () => gw.fetch('/readyz')))
      const elapsed = performance.now() - started
      assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([503]))
      assert.equal(databaseCheck(await json(responses[0]!)).data.reason, 'timeout')
      // The probe's own bound, with room for a loaded machine; a hung query would never answer.
      assert.ok(elapsed < TIMEOUT_MS + 2000, `took ${Math.round(elapsed)} ms`)
      // A later probe does not queue another query behind the hung one.
      const again = await gw.fetch('/readyz')
      assert.equal(again.status, 503)
      assert.equal(databaseCheck(await json(again)).data.reason, 'timeout')
    } finally {
      cluster.thaw()
    }
    await readyzBecomes(gw, 200, performance.now(), 5000)
  })
})
