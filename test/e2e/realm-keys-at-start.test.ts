import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { json, spawnGateway, startGateway, type GatewayProcess, type TestGateway } from '../helpers/gateway.ts'
import { REALM } from '../helpers/oidc.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'

const DISCOVERY = `/realms/${REALM}/.well-known/openid-configuration`
const CERTS = `/realms/${REALM}/protocol/openid-connect/certs`

async function get(base: string, path: string): Promise<{ status: number; body: any }> {
  const response = await fetch(new URL(path, base), { signal: AbortSignal.timeout(10_000) })
  return { status: response.status, body: await json(response) }
}

/** The realm's discovery, JWKS and realm page, as a process answers them now. */
async function realmAnswers(base: string): Promise<{ discovery: number; certs: number; kids: number; realm: number; publicKey: boolean }> {
  const [discovery, certs, realm] = await Promise.all([get(base, DISCOVERY), get(base, CERTS), get(base, `/realms/${REALM}`)])
  return { discovery: discovery.status, certs: certs.status, kids: certs.body.keys?.length ?? 0, realm: realm.status, publicKey: typeof realm.body.public_key === 'string' }
}

async function untilReady(base: string): Promise<any> {
  const deadline = Date.now() + 20_000
  let ready = await get(base, '/readyz')
  while (ready.status !== 200 && Date.now() < deadline) {
    await sleep(200)
    ready = await get(base, '/readyz')
  }
  assert.equal(ready.status, 200, JSON.stringify(ready.body))
  return ready.body
}

const FROM_MEMORY = { discovery: 200, certs: 200, kids: 1, realm: 200, publicKey: true }

/**
 * A realm's keys were read at its first request: a process that had answered none of the realm's requests when the
 * database stopped answering had no keys of it, and answered its discovery and JWKS 503 where the others answered.
 */
describe('the realms\' keys, read before the realm\'s first request', () => {
  let cluster: PgCluster
  before(async () => {
    cluster = await startPgCluster()
  })
  after(() => cluster?.destroy())

  it('are read once `serve` listens: a process asked nothing of the realm serves it from memory in an outage', async () => {
    let first: GatewayProcess | undefined
    let second: GatewayProcess | undefined
    try {
      first = await spawnGateway(['--demo', '--database', cluster.url])
      await untilReady(first.url)
      second = await spawnGateway(['--demo', '--database', cluster.url])
      // Nothing is asked of the second process: the read it starts once it listens is one query.
      await sleep(1500)
      cluster.stop()
      try {
        assert.deepEqual(await realmAnswers(second.url), FROM_MEMORY)
      } finally {
        cluster.start()
      }
    } finally {
      await Promise.all([first?.stop(), second?.stop()])
    }
  })

  describe('a process that could not read them at start', () => {
    let gw: TestGateway
    before(async () => {
      // Started as the tests start the gateway, without `serve`'s read after listening: as a process whose read failed.
      gw = await startGateway({ databaseUrl: cluster.url })
    })
    after(async () => {
      await gw?.close()
    })

    it('is not ready until it has read them, reads them for /readyz, and then serves the realm from them in an outage', async () => {
      assert.equal(gw.app.oidc.get(REALM)!.keysInMemory, false)
      cluster.stop()
      try {
        const unready = await get(gw.url, '/readyz')
        assert.equal(unready.status, 503)
        assert.deepEqual(unready.body.checks.find((check: { name: string }) => check.name === 'realm_keys'), { name: 'realm_keys', status: 'DOWN', data: { reason: 'unread', realms: gw.app.oidc.all().map((realm) => realm.name) } })
        assert.equal((await get(gw.url, DISCOVERY)).status, 503, 'without keys in memory, the realm needs the database')
      } finally {
        cluster.start()
      }
      const ready = await untilReady(gw.url)
      assert.deepEqual(ready.checks.find((check: { name: string }) => check.name === 'realm_keys'), { name: 'realm_keys', status: 'UP', data: { realms: gw.app.oidc.all().length } })
      cluster.stop()
      try {
        assert.deepEqual(await realmAnswers(gw.url), FROM_MEMORY)
      } finally {
        cluster.start()
      }
    })
  })
})
