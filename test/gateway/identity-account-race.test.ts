import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import type { User } from '../../src/store/users.ts'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/**
 * The identity token is signed from the account as the request read it. A change committed while that read was under
 * way must not leave the token signed from the row before it to be reused by the requests after the change.
 */
describe('the identity token and a change to the account during the request', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  let bob: User
  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({ config: { services: [{ name: 'rec', prefix: '/rec/', upstream: upstream.url }] } })
    bob = await gw.app.accounts.create({ username: 'bob', password: 'bob-password', isSuperuser: true })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  const asBob = { authorization: basic('bob', 'bob-password') }

  async function identitySent(): Promise<Record<string, unknown>> {
    const response = await gw.fetch('/rec/', { headers: asBob })
    assert.equal(response.status, 200)
    await response.arrayBuffer()
    return decodeJwt(upstream.seen.at(-1)!.headers['x-gatehouse-identity'] as string)
  }

  it('carries a superuser flag removed while the account was being read on the next request', async () => {
    assert.equal((await identitySent()).is_superuser, true)
    gw.app.identity.forgetUser(bob.id)

    // The next read of bob's account returns the row as it was, and is held until the change has committed.
    const accounts = gw.app.accounts
    const read = accounts.get.bind(accounts)
    let entered!: () => void
    const held = new Promise<void>((resolve) => (entered = resolve))
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let holdNext = true
    accounts.get = async (id, now) => {
      const user = await read(id, now)
      if (holdNext && id === bob.id) {
        holdNext = false
        entered()
        await released
      }
      return user
    }
    try {
      const before = identitySent()
      await held
      const change = await gw.fetch(`/api/gateway/v1/users/${bob.id}/`, {
        method: 'PATCH',
        headers: { ...adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ is_superuser: false }),
      })
      assert.equal(change.status, 200)
      release()
      assert.equal((await before).is_superuser, true)
    } finally {
      release()
      accounts.get = read
    }
    assert.equal((await identitySent()).is_superuser, false)
  })
})
