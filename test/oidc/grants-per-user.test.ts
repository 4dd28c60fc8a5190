import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, realmWith, testRealms, tokenRequest } from '../helpers/oidc.ts'

describe('a realm\'s grants_per_user_limit', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([], { grants_per_user_limit: 2 }) } })
  })
  after(async () => {
    await gw?.close()
  })
  const bearer = (token: string) => gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })
  const refresh = (refreshToken: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })

  it('ends a user\'s oldest logins past the limit, with their tokens, on the next request, and leaves other users\' alone', async () => {
    await gw.app.accounts.create({ username: 'scripted', password: 'scripted-password' })
    await gw.app.accounts.create({ username: 'bystander', password: 'bystander-password' })
    const other = await passwordLogin(gw, 'bystander', 'bystander-password')
    const logins = []
    for (let i = 0; i < 4; i++) {
      // A grant's age is counted in the seconds it was issued (its `iat`), as oidc-provider keeps it.
      if (i) await new Promise((resolve) => setTimeout(resolve, 1050))
      const login = await passwordLogin(gw, 'scripted', 'scripted-password', { scope: i % 2 ? 'openid offline_access' : 'openid' })
      assert.equal((await bearer(login.access_token)).status, 200, `login ${i} works when it is made`)
      logins.push(login)
    }
    for (const [i, login] of logins.entries()) {
      const kept = i >= 2
      assert.equal((await bearer(login.access_token)).status, kept ? 200 : 401, `login ${i}'s access token`)
      const refreshed = await refresh(login.refresh_token)
      assert.equal(refreshed.status, kept ? 200 : 400, `login ${i}'s refresh: ${JSON.stringify(refreshed.body)}`)
    }
    assert.equal((await bearer(other.access_token)).status, 200, 'another user\'s login stays')
    const grants = await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'Grant').where('account_id', '=', String((await gw.store.users.findByUsername('scripted'))!.id)).execute()
    assert.equal(grants.length, 2)
  })
})

/**
 * An account that made tens of thousands of password logins (a script looping over the token endpoint) ends with
 * them all when its password is set, and the realm tells their clients; that telling once copied its list for each
 * grant, which took 14 s of the event loop for 25,000 grants, during which the process answered nothing.
 */
describe('the end of an account with tens of thousands of password logins', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(async () => {
    await gw?.close()
  })

  it('ends them all, while the process keeps answering', async () => {
    const user = await gw.app.accounts.create({ username: 'looper', password: 'looper-password-1' })
    await passwordLogin(gw, 'looper', 'looper-password-1')
    const db = gw.store.database.db
    const rows = await db.selectFrom('oidc_records').selectAll().where('account_id', '=', String(user.id)).execute()
    const grant = rows.find((row) => row.model === 'Grant')!
    const tokens = rows.filter((row) => row.grant_id === grant.id)
    assert.deepEqual(tokens.map((row) => row.model).sort(), ['AccessToken', 'RefreshToken'])
    // Copies of the one real login, each its own grant with its own tokens.
    const copies = 20_000
    for (let start = 0; start < copies; start += 500) {
      const batch = Array.from({ length: 500 }, (_, i) => {
        const grantId = `${grant.id}-${start + i}`
        return [{ ...grant, id: grantId }, ...tokens.map((token) => ({ ...token, id: `${token.id}-${start + i}`, grant_id: grantId }))]
      }).flat()
      await db.insertInto('oidc_records').values(batch).execute()
    }

    let longestWait = 0
    let last = performance.now()
    const watch = setInterval(() => {
      const now = performance.now()
      longestWait = Math.max(longestWait, now - last)
      last = now
    }, 10)
    const started = performance.now()
    try {
      const response = await gw.fetch(`/api/gateway/v1/users/${user.id}/`, {
        method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'looper-password-2' }),
      })
      assert.equal(response.status, 200)
    } finally {
      clearInterval(watch)
    }
    const took = performance.now() - started
    const left = await db.selectFrom('oidc_records').select('id').where('account_id', '=', String(user.id)).where('model', '!=', 'Session').execute()
    assert.equal(left.length, 0)
    // Generous for a shared machine: the quadratic telling alone took 14 s for 25,000 grants.
    assert.ok(took < 8000, `the change took ${Math.round(took)} ms`)
    assert.ok(longestWait < 4000, `the event loop was held ${Math.round(longestWait)} ms at once`)
  })
})
