import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { openStore } from '../../src/store/store.ts'

/**
 * The event log is pruned by age. A process that had not read it for that long (stopped, suspended, or behind a
 * pruner whose clock runs ahead) finds the news it missed gone: it must notice and drop everything it cached,
 * not go on answering from memory as if nothing had changed.
 */
describe('a process that missed pruned events, on SQLite', () => {
  let pair: GatewayPair
  before(async () => {
    pair = await spawnGatewayPair()
  })
  after(async () => {
    pair?.second.process.kill('SIGCONT')
    await pair?.stop()
  })

  const hosts = (url: string, token: string) => fetch(`${url}/api/controller/v2/hosts/`, { headers: { authorization: `Bearer ${token}` } })

  async function createToken(): Promise<{ id: number; token: string }> {
    const created = await fetch(`${pair.first.url}/api/gateway/v1/tokens/`, { method: 'POST', headers: adminAuth })
    assert.equal(created.status, 201)
    return json(created)
  }
  const revoke = async (id: number) => assert.equal((await fetch(`${pair.first.url}/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)

  it('drops what it cached and refuses a token revoked while it was not reading', async () => {
    const { id, token } = await createToken()
    const later = await createToken()
    assert.equal((await hosts(pair.second.url, token)).status, 200)

    pair.second.process.kill('SIGSTOP')
    try {
      await revoke(id)
      await revoke(later.id)
      // The hourly prune, as run by a process whose clock is a minute ahead: the first revocation's news is gone.
      const store = await openStore({ dataDir: pair.dir }, { migrate: false })
      try {
        await store.events.prune(-60_000)
      } finally {
        await store.close()
      }
    } finally {
      pair.second.process.kill('SIGCONT')
    }

    const refused = await hosts(pair.second.url, token)
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'invalid_token')
  })
})
