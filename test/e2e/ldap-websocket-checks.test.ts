import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import WebSocket from 'ws'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'

const CACHE_SECONDS = 2
const SOCKETS = 6

/** Opens a WebSocket to the controller and resolves once the demo service's first message came. */
async function open(gw: TestGateway, headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/api/controller/v2/websocket/`, { headers })
  ws.on('error', () => undefined)
  await once(ws, 'message')
  return ws
}

describe('WebSockets opened with one directory Basic credential', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory({ logSearches: true })
    gw = await startGateway({
      config: {
        ldap: directory.config({ account_check: { interval_seconds: 0 } }),
        auth: { basic_cache_seconds: CACHE_SECONDS },
      },
    })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('share one directory check of the password per basic_cache_seconds, however many sockets hold it', async () => {
    const auth = { authorization: basic('alice', PASSWORDS.alice!) }
    const sockets: WebSocket[] = []
    try {
      for (let i = 0; i < SOCKETS; i++) sockets.push(await open(gw, auth))
      const seconds = CACHE_SECONDS * 4
      const before = directory.searches('(uid=alice)')
      await sleep(seconds * 1000)
      const lookups = directory.searches('(uid=alice)') - before
      assert.ok(sockets.every((ws) => ws.readyState === WebSocket.OPEN), 'every socket stays open')
      // One check per CACHE_SECONDS, give or take one at either end under load; one per socket would be SOCKETS times that.
      assert.ok(lookups >= 1 && lookups <= seconds / CACHE_SECONDS + 2, `${lookups} directory lookups in ${seconds} s for ${SOCKETS} sockets`)
    } finally {
      for (const ws of sockets) ws.close()
    }
  })
})
