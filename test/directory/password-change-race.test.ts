import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { argon2Tasks, hashPassword } from '../../src/directory/passwords.ts'
import { USER_TOPIC } from '../../src/store/topics.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, json, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

/**
 * A password check that waited for its turn (behind the lockout's budget, or for a core to hash on) verified the
 * password against the account row read before it waited. A password changed meanwhile must not let the old one in:
 * nothing is issued on a hash that is no longer the account's.
 */
for (const backend of gatewayBackends) {
  describe(`a login racing a password change, on ${backend.name}`, () => {
    let gw: TestGateway
    let newHash: string

    before(async () => {
      gw = await backend.start({ config: { realms: testRealms } })
      newHash = await hashPassword('the-new-password-long')
    })
    after(() => gw.close())

    /**
     * Starts `login` while every argon2 place is taken, so that it reads the account and then waits; changes the
     * password meanwhile (as another gateway process would: the row and its event), then lets the login go on.
     */
    async function racingPasswordChange<T>(userId: number, login: () => Promise<T>): Promise<T> {
      let release!: () => void
      const held = new Promise<void>((resolve) => {
        release = resolve
      })
      const holders = Array.from({ length: argon2Tasks.limit }, () => argon2Tasks.run(() => held))
      const waitingBefore = argon2Tasks.waiting
      const answer = login()
      while (argon2Tasks.waiting === waitingBefore) await nextTurn()
      await gw.app.bus.change(async (tx, announce) => {
        await tx.users.update(userId, { passwordHash: newHash })
        announce(USER_TOPIC, String(userId))
      })
      release()
      await Promise.all(holders)
      return answer
    }

    it('refuses the old password at the session login', async () => {
      const user = await gw.app.accounts.create({ username: 'gina', password: 'the-old-password-long' })
      const csrf = await csrfToken(gw)
      const response = await racingPasswordChange(user.id, () => gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
        body: JSON.stringify({ username: 'gina', password: 'the-old-password-long' }),
      }))
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'invalid_credentials')
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: user.id })).count, 0)
    })

    it('shows a browser the gateway\'s login page again, as for a wrong password, when the old password is refused there', async () => {
      const user = await gw.app.accounts.create({ username: 'kate', password: 'the-old-password-long' })
      const csrf = await csrfToken(gw)
      const response = await racingPasswordChange(user.id, () => gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
        body: new URLSearchParams({ username: 'kate', password: 'the-old-password-long' }).toString(),
      }))
      assert.equal(response.status, 401)
      assert.equal(response.headers.getSetCookie().filter((line) => line.startsWith('gateway_sessionid=')).length, 0)
      assert.match(await response.text(), /role="alert">Invalid username or password\./)
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: user.id })).count, 0)
    })

    it('refuses the old password in a realm\'s password grant', async () => {
      const user = await gw.app.accounts.create({ username: 'hank', password: 'the-old-password-long' })
      const answer = await racingPasswordChange(user.id, () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'hank', password: 'the-old-password-long' }))
      assert.equal(answer.status, 400)
      assert.equal(answer.body.error, 'invalid_grant')
      // No grant or token was recorded for the account.
      assert.equal(await gw.store.oidc.destroyByAccount(String(user.id)), 0)
    })

    it('shows the realm\'s login form again, as for a wrong password, when the old password is refused there', async () => {
      const user = await gw.app.accounts.create({ username: 'jill', password: 'the-old-password-long' })
      const jar = new CookieJar()
      const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
      assert.equal(page.response.status, 200)
      const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
      const answer = await racingPasswordChange(user.id, () => browse(gw, jar, gw.url + action, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'jill', password: 'the-old-password-long' }).toString(),
      }))
      assert.equal(answer.response.status, 200)
      const html = await answer.response.text()
      assert.match(html, /Invalid username or password/)
      assert.ok(html.includes(`action="${action}"`), 'the same login form, to try again')
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: user.id })).count, 0)
      // The new password, typed in that form, signs in.
      const retried = await browse(gw, jar, gw.url + action, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'jill', password: 'the-new-password-long' }).toString(),
      })
      assert.ok(new URL(retried.url).searchParams.get('code'), retried.url)
    })

    const sessionLogin = async (username: string, password: string) => {
      const csrf = await csrfToken(gw)
      return gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
        body: JSON.stringify({ username, password }),
      })
    }

    it('signs in with the new password at the session login, verified again against the hash that replaced the one it read', async () => {
      const user = await gw.app.accounts.create({ username: 'lena', password: 'the-old-password-long' })
      const response = await racingPasswordChange(user.id, () => sessionLogin('lena', 'the-new-password-long'))
      assert.equal(response.status, 200, await response.clone().text())
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: user.id })).count, 1)
    })

    it('signs in with the new password in a realm\'s password grant', async () => {
      const user = await gw.app.accounts.create({ username: 'mona', password: 'the-old-password-long' })
      const answer = await racingPasswordChange(user.id, () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'mona', password: 'the-new-password-long' }))
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      assert.equal(typeof answer.body.access_token, 'string')
    })

    it('still refuses a password that is neither, and counts it once against the lockout', async () => {
      const user = await gw.app.accounts.create({ username: 'nora', password: 'the-old-password-long' })
      const response = await racingPasswordChange(user.id, () => sessionLogin('nora', 'neither-password-long'))
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'invalid_credentials')
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: user.id })).count, 0)
      assert.equal((await gw.store.loginFailures.find('nora'))?.failures, 1)
    })

    it('refuses the old password as basic credentials', async () => {
      const user = await gw.app.accounts.create({ username: 'iris', password: 'the-old-password-long' })
      const response = await racingPasswordChange(user.id, () => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('iris', 'the-old-password-long') } }))
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'invalid_credentials')
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('iris', 'the-new-password-long') } })).status, 200)
    })
  })
}
