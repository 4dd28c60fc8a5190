import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'

const PEOPLE = `ou=people,${SUFFIX}`

/** The realm's password grant, then its refresh: the refresh asks the directory whether the account's entry is still there. */
async function grantThenRefresh(gw: TestGateway, login: string, password: string): Promise<{ granted: number; refreshed: number }> {
  const token = (body: Record<string, string>) => gw.fetch('/realms/platform/protocol/openid-connect/token', { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', ...body }) })
  const granted = await token({ grant_type: 'password', username: login, password })
  const { refresh_token } = await json(granted)
  if (granted.status !== 200) return { granted: granted.status, refreshed: 0 }
  return { granted: granted.status, refreshed: (await token({ grant_type: 'refresh_token', refresh_token })).status }
}

describe('a directory login by a name other than the username its account gets', () => {
  let directory: TestDirectory
  before(async () => {
    directory = await startDirectory()
  })
  after(() => directory?.close())

  async function withGateway(filter: string, test: (gw: TestGateway) => Promise<void>): Promise<void> {
    const gw = await startGateway({ config: { ldap: directory.config({ user_search: { base: PEOPLE, filter } }) } })
    try {
      await test(gw)
    } finally {
      await gw.close()
    }
  }

  it('signs in by address when the user filter also finds the entry by its username, and the account stays active', async () => {
    await withGateway('(|(uid={username})(mail={username}))', async (gw) => {
      assert.deepEqual(await grantThenRefresh(gw, 'alice@example.test', PASSWORDS.alice!), { granted: 200, refreshed: 200 })
      assert.equal((await gw.store.users.findByUsername('alice'))?.isActive, true)
    })
  })

  it('is refused with 401 directory_username_invalid, and makes no account, when the user filter cannot find the entry by that username', async () => {
    await withGateway('(mail={username})', async (gw) => {
      // Signed in, the account would have been disabled at its first refresh (or the account check): its entry was
      // looked for as (mail=alice), which finds nobody.
      const signIn = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice@example.test', PASSWORDS.alice!) } })
      assert.equal(signIn.status, 401)
      assert.equal((await json(signIn)).code, 'directory_username_invalid')
      assert.equal(await gw.store.users.findByUsername('alice'), undefined)
      // A wrong password learns nothing of it.
      const wrong = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice@example.test', 'not-her-password') } })
      assert.equal(wrong.status, 401)
      assert.equal((await json(wrong)).code, 'invalid_credentials')
      assert.deepEqual(await grantThenRefresh(gw, 'alice@example.test', PASSWORDS.alice!), { granted: 400, refreshed: 0 })
    })
  })
})
