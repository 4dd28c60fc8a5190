import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { droppingRelay, PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'

/** The messages a login sends on its connection, in order: the service bind, the user search, the group search, the user's bind. */
const SERVICE_BIND = 1
const USER_SEARCH = 2
const GROUP_SEARCH = 3

describe('a directory server that drops the connection in the middle of a login', () => {
  let directory: TestDirectory
  let first: Awaited<ReturnType<typeof droppingRelay>>
  let second: Awaited<ReturnType<typeof droppingRelay>>
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    first = await droppingRelay(directory.url, Infinity)
    second = await droppingRelay(directory.url, Infinity)
    gw = await startGateway({
      config: {
        ldap: directory.config({ servers: [first.url, second.url], timeouts: { connect_seconds: 1, lookup_seconds: 3 } }),
        auth: { basic_cache_seconds: 0 },
      },
    })
  })
  after(async () => {
    await gw?.close()
    await first?.close()
    await second?.close()
    await directory?.close()
  })

  const me = (username: string, password: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })

  /** What a login does to both servers: how many connections each got, and how many the first dropped. */
  async function loginWithFirstDroppingAt(message: number, username: string, password: string): Promise<{ response: Response; cut: number; secondConnections: number }> {
    first.pass(message - 1)
    const [cut, connections] = [first.cut(), second.connections()]
    try {
      const response = await me(username, password)
      return { response, cut: first.cut() - cut, secondConnections: second.connections() - connections }
    } finally {
      first.pass(Infinity)
    }
  }

  it('signs the user in on the next server when the first drops the connection during the user search', async () => {
    const { response, cut, secondConnections } = await loginWithFirstDroppingAt(USER_SEARCH, 'carol', PASSWORDS.carol!)
    assert.equal(response.status, 200)
    assert.equal((await json(response)).results[0].username, 'carol')
    assert.deepEqual([cut, secondConnections], [1, 1])
  })

  it('signs the user in on the next server, groups and all, when the first drops the connection during the group search', async () => {
    const { response, cut, secondConnections } = await loginWithFirstDroppingAt(GROUP_SEARCH, 'alice', PASSWORDS.alice!)
    assert.equal(response.status, 200)
    assert.deepEqual([cut, secondConnections], [1, 1])
    const [alice] = (await json(await gw.fetch('/api/gateway/v1/users/?username=alice', { headers: adminAuth }))).results
    assert.equal(alice.is_superuser, true, 'the groups were read from the next server')
    assert.deepEqual(alice.groups, ['developers'])
  })

  it('refuses a wrong password checked on the next server after a drop, and asks no further', async () => {
    const { response, cut, secondConnections } = await loginWithFirstDroppingAt(GROUP_SEARCH, 'bob', 'not-bobs-password')
    assert.equal(response.status, 401)
    assert.deepEqual([cut, secondConnections], [1, 1])
  })

  it('takes a password the first server refuses as refused, without asking the next server', async () => {
    const connections = second.connections()
    const response = await me('bob', 'not-bobs-password')
    assert.equal(response.status, 401)
    assert.equal(second.connections(), connections)
  })

  it('never sends a password to a second server when the first drops the connection during the user\'s bind', async () => {
    const { response, cut, secondConnections } = await loginWithFirstDroppingAt(GROUP_SEARCH + 1, 'dave', PASSWORDS.dave!)
    assert.equal(response.status, 503)
    assert.equal((await json(response)).code, 'directory_unavailable')
    assert.deepEqual([cut, secondConnections], [1, 0])
  })

  it('fails with directory_unavailable when the last server drops the connection too', async () => {
    second.pass(SERVICE_BIND)
    try {
      const { response, cut } = await loginWithFirstDroppingAt(USER_SEARCH, 'erin', PASSWORDS.erin!)
      assert.equal(response.status, 503)
      assert.equal((await json(response)).code, 'directory_unavailable')
      assert.equal(cut, 1)
      assert.equal(second.cut(), 1)
    } finally {
      second.pass(Infinity)
    }
  })
})
