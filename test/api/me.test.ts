import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login, setCookie, withCsrf } from '../helpers/session.ts'

describe('the caller\'s own account at me/', () => {
  let gw: TestGateway
  const send = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
    gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'erin', password: 'erin-password', email: 'erin@example.com' })
    await gw.app.accounts.create({ username: 'dir-user', source: 'ldap', external: true })
  })
  after(() => gw.close())

  it('lets a user change their own name and email, and nothing else', async () => {
    const auth = { authorization: basic('erin', 'erin-password') }
    const changed = await send('PATCH', '/api/gateway/v1/me/', { first_name: 'Erin', last_name: 'Example', email: 'erin@new.example' }, auth)
    assert.equal(changed.status, 200)
    const body = await json(changed)
    assert.deepEqual([body.first_name, body.last_name, body.email], ['Erin', 'Example', 'erin@new.example'])
    for (const [bad, field] of [[{ is_superuser: true }, 'is_superuser'], [{ username: 'root' }, 'username'], [{ email: 'nope' }, 'email']] as const) {
      const refused = await send('PATCH', '/api/gateway/v1/me/', bad, auth)
      assert.equal(refused.status, 400)
      assert.ok(field in (await json(refused)).errors, field)
    }
    const erin = (await gw.store.users.findByUsername('erin'))!
    assert.equal(erin.isSuperuser, false)
    assert.equal(erin.email, 'erin@new.example')
  })

  it('trims the fields as users/ does, so that both ways store the same details for the same input', async () => {
    const auth = { authorization: basic('erin', 'erin-password') }
    const before = await json(await gw.fetch('/api/gateway/v1/me/', { headers: auth }))
    const changed = await send('PATCH', '/api/gateway/v1/me/', { first_name: '  Erin  ', last_name: '\tExample\n', email: ' erin@trimmed.example ' }, auth)
    assert.equal(changed.status, 200)
    const body = await json(changed)
    assert.deepEqual([body.first_name, body.last_name, body.email], ['Erin', 'Example', 'erin@trimmed.example'])
    const stored = (await gw.store.users.findByUsername('erin'))!
    assert.deepEqual([stored.firstName, stored.lastName, stored.email], ['Erin', 'Example', 'erin@trimmed.example'])
    const restored = await send('PATCH', '/api/gateway/v1/me/', { first_name: before.results[0].first_name, last_name: before.results[0].last_name, email: before.results[0].email }, auth)
    assert.equal(restored.status, 200)
  })

  it('refuses an e-mail address another account signs in with, which would stop their realm login by it', async () => {
    await gw.app.accounts.create({ username: 'frank', password: 'frank-password', email: 'frank@example.com' })
    await gw.app.accounts.create({ username: 'gina@example.com', password: 'gina-password' })
    const realmLogin = async (username: string, password: string) => (await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password }),
    })).status
    assert.equal(await realmLogin('Frank@Example.com', 'frank-password'), 200)
    const auth = { authorization: basic('erin', 'erin-password') }
    for (const taken of ['FRANK@example.com', 'Gina@Example.com']) {
      const refused = await send('PATCH', '/api/gateway/v1/me/', { email: taken }, auth)
      assert.equal(refused.status, 400, taken)
      const body = await json(refused)
      assert.equal(body.code, 'invalid')
      assert.ok(body.errors.email, taken)
    }
    assert.notEqual((await gw.store.users.findByUsername('erin'))!.email.toLowerCase(), 'frank@example.com')
    assert.equal(await realmLogin('Frank@Example.com', 'frank-password'), 200)
    assert.equal(await realmLogin('GINA@example.com', 'gina-password'), 200)
    const frank = { authorization: basic('frank', 'frank-password') }
    assert.equal((await send('PATCH', '/api/gateway/v1/me/', { email: 'Frank@Example.com', first_name: 'Frank' }, frank)).status, 200, 'one\'s own address, in another case')
  })

  it('leaves the details of directory and SSO accounts to their source', async () => {
    const dirUser = (await gw.store.users.findByUsername('dir-user'))!
    const { value } = await gw.app.tokens.issue(dirUser, { scope: 'write' })
    const refused = await send('PATCH', '/api/gateway/v1/me/', { first_name: 'X' }, { authorization: `Bearer ${value}` })
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'managed_by_source')
  })

  it('changes the password only with the current one, and refuses the old one afterwards', async () => {
    const auth = { authorization: basic('erin', 'erin-password') }
    const wrong = await send('POST', '/api/gateway/v1/me/password/', { current_password: 'guess', new_password: 'erin-new-password' }, auth)
    assert.equal(wrong.status, 400)
    assert.ok('current_password' in (await json(wrong)).errors)
    const same = await send('POST', '/api/gateway/v1/me/password/', { current_password: 'erin-password', new_password: 'erin-password' }, auth)
    assert.equal(same.status, 400)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 200, 'nothing changed yet')

    const changed = await send('POST', '/api/gateway/v1/me/password/', { current_password: 'erin-password', new_password: 'erin-new-password' }, auth)
    assert.equal(changed.status, 204)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('erin', 'erin-new-password') } })).status, 200)
  })

  it('keeps the browser that changed the password signed in with a fresh session, and ends the others', async () => {
    const here = await login(gw, 'erin', 'erin-new-password')
    const elsewhere = await login(gw, 'erin', 'erin-new-password')
    const changed = await gw.fetch('/api/gateway/v1/me/password/', {
      method: 'POST',
      headers: { ...withCsrf(here), 'content-type': 'application/json' },
      body: JSON.stringify({ current_password: 'erin-new-password', new_password: 'erin-third-password' }),
    })
    assert.equal(changed.status, 204)
    const fresh = setCookie(changed, 'gateway_sessionid')!.value
    assert.ok(fresh && fresh !== here.sessionId)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${fresh}` } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: here.cookie } })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: elsewhere.cookie } })).status, 401)
  })

  it('answers a password change while the username is locked 400 under current_password, not 401: the caller\'s credential is good', async () => {
    const hank = await gw.app.accounts.create({ username: 'hank', password: 'hank-long-password' })
    const token = { authorization: `Bearer ${(await gw.app.tokens.issue(hank, { scope: 'write' })).value}` }
    try {
      // Someone guessing hank's password locks the username.
      for (let i = 0; i < 10; i++) await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('hank', `guess-${i}`) } })
      const locked = await send('POST', '/api/gateway/v1/me/password/', { current_password: 'hank-long-password', new_password: 'hank-other-password' }, token)
      const body = await json(locked)
      assert.equal(locked.status, 400, JSON.stringify(body))
      assert.match(body.errors.current_password[0], /Too many failed logins for this username/)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: token })).status, 200, 'the token still signs hank in')
    } finally {
      await gw.app.accounts.lockout.clearAddress('127.0.0.1')
    }
  })
})
