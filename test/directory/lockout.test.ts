import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it, mock } from 'node:test'
import { requestFrom } from '../helpers/from-address.ts'
import { adminAuth, basic, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

const ME = '/api/gateway/v1/me/'
const jsonHeaders = { ...adminAuth, 'content-type': 'application/json' }
const USERNAME_LOCK_ONLY = { login_failures_before_lockout: 3, login_lockout_seconds: 60, login_failures_per_address: 0 }

describe('login lockout', () => {
  let gw: TestGateway
  // Time moves only when a test says so (Date is frozen; timers still run).
  const advance = (seconds: number) => mock.timers.tick(seconds * 1000)

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    mock.timers.enable({ apis: ['Date'], now: Date.now() })
    // The username lock alone: every guess here comes from one address, whose own limit has its own tests
    // (test/auth/address-throttling.test.ts).
    await gw.app.settings.update(USERNAME_LOCK_ONLY)
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory']) {
      await gw.app.accounts.create({ username: name, password: `${name}-password` })
    }
  })
  afterEach(async () => {
    await gw.app.settings.update(USERNAME_LOCK_ONLY)
  })
  after(async () => {
    mock.timers.reset()
    await gw.close()
  })

  const basicCall = (username: string, password: string) => gw.fetch(ME, { headers: { authorization: basic(username, password) } })
  const codeOf = async (response: Response) => (await json(response)).code as string
  async function failTimes(username: string, times: number): Promise<string[]> {
    const codes: string[] = []
    for (let i = 0; i < times; i++) codes.push(await codeOf(await basicCall(username, `wrong-${i}`)))
    return codes
  }

  it('refuses basic auth with account_locked after the configured number of wrong passwords, the right one too', async () => {
    assert.deepEqual(await failTimes('alice', 3), ['invalid_credentials', 'invalid_credentials', 'invalid_credentials'])
    const locked = await basicCall('alice', 'wrong-again')
    assert.equal(locked.status, 401)
    assert.equal(locked.headers.get('retry-after'), '60')
    assert.match(locked.headers.get('www-authenticate') ?? '', /^Basic/)
    assert.equal((await json(locked)).code, 'account_locked')
    const right = await basicCall('alice', 'alice-password')
    assert.equal(right.status, 401)
    assert.equal(await codeOf(right), 'account_locked')
  })

  it('lets the user in again once the lockout time has passed, and counts a wrong password after it at once', async () => {
    await failTimes('bob', 3)
    advance(59)
    assert.equal(await codeOf(await basicCall('bob', 'bob-password')), 'account_locked', 'refused checks do not extend the lock')
    advance(1)
    assert.equal(await codeOf(await basicCall('bob', 'wrong')), 'invalid_credentials')
    assert.equal(await codeOf(await basicCall('bob', 'bob-password')), 'account_locked', 'the count survives the lock: one more failure locks again')
    advance(60)
    assert.equal((await basicCall('bob', 'bob-password')).status, 200)
    assert.deepEqual(await failTimes('bob', 2), ['invalid_credentials', 'invalid_credentials'], 'the success reset the count')
  })

  it('starts counting again after a successful login', async () => {
    await failTimes('carol', 2)
    assert.equal((await basicCall('carol', 'carol-password')).status, 200)
    assert.equal(await gw.store.loginFailures.find('carol'), undefined)
    assert.deepEqual(await failTimes('carol', 3), ['invalid_credentials', 'invalid_credentials', 'invalid_credentials'])
    assert.equal(await codeOf(await basicCall('carol', 'wrong')), 'account_locked')
  })

  it('locks unknown usernames the same way, so a lock does not tell which names exist', async () => {
    const known = [...await failTimes('dave', 4), await codeOf(await basicCall('dave', 'dave-password'))]
    const unknown = [...await failTimes('nobody-here', 4), await codeOf(await basicCall('nobody-here', 'any'))]
    assert.deepEqual(unknown, known)
    assert.deepEqual(known, ['invalid_credentials', 'invalid_credentials', 'invalid_credentials', 'account_locked', 'account_locked'])
  })

  it('counts a username in any letter case as the same name', async () => {
    await basicCall('Erin', 'wrong')
    await basicCall('ERIN', 'wrong')
    await basicCall('erin', 'wrong')
    assert.equal(await codeOf(await basicCall('erin', 'erin-password')), 'account_locked')
  })

  it('lets no more than the allowed guesses through when they arrive all at once', async () => {
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => basicCall('frank', `parallel-${i}`)))
    const codes = await Promise.all(responses.map(codeOf))
    assert.equal(codes.filter((code) => code === 'invalid_credentials').length, 3, codes.join(' '))
    assert.equal(codes.filter((code) => code === 'account_locked').length, 5, codes.join(' '))
  })

  it('answers a right guess during the lock with account_locked, though the owner\'s client has the pair cached', async () => {
    await gw.app.accounts.create({ username: 'oscar', password: 'oscar-password' })
    const owner = () => requestFrom('127.0.0.2', gw.url + ME, { headers: { authorization: basic('oscar', 'oscar-password') } })
    assert.equal((await owner()).status, 200)
    await failTimes('oscar', 3)
    const guessed = await basicCall('oscar', 'oscar-password')
    assert.equal(guessed.status, 401)
    assert.equal(await codeOf(guessed), 'account_locked')
    assert.equal((await owner()).status, 200, 'the owner\'s client, verified before the lock, keeps working')
  })

  it('reads no failure record for a credential answered from the cache', async () => {
    const auth = { authorization: basic('grace', 'grace-password') }
    assert.equal((await gw.fetch(ME, { headers: auth })).status, 200)
    const repository = gw.store.loginFailures
    const find = repository.find
    let reads = 0
    repository.find = async (username) => {
      reads++
      return find.call(repository, username)
    }
    try {
      for (let i = 0; i < 5; i++) assert.equal((await gw.fetch(ME, { headers: auth })).status, 200)
    } finally {
      repository.find = find
    }
    assert.equal(reads, 0)
  })

  it('refuses the session login with account_locked, and shows the message on the login page', async () => {
    const post = async (password: string, accept: string) => {
      const token = await csrfToken(gw)
      return gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN, accept },
        body: new URLSearchParams({ username: 'heidi', password }).toString(),
      })
    }
    for (let i = 0; i < 3; i++) assert.equal(await codeOf(await post('wrong', 'application/json')), 'invalid_credentials')
    const api = await post('heidi-password', 'application/json')
    assert.equal(api.status, 401)
    assert.equal(await codeOf(api), 'account_locked')
    const page = await post('heidi-password', 'text/html')
    assert.equal(page.status, 401)
    assert.match(await page.text(), /role="alert">Too many failed logins for this username\. Try again later \(in 60 seconds\)\./)
    assert.equal(setCookieNames(page).includes('gateway_sessionid'), false)
  })

  it('answers the OIDC password grant of a locked user as Keycloak does: invalid_grant, "Invalid user credentials"', async () => {
    const grant = (password: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'ivan', password })
    for (let i = 0; i < 3; i++) {
      const wrong = await grant('wrong')
      assert.equal(wrong.status, 400)
      assert.equal(wrong.body.error, 'invalid_grant')
    }
    const locked = await grant('ivan-password')
    assert.equal(locked.status, 400)
    assert.deepEqual(locked.body, { error: 'invalid_grant', error_description: 'Invalid user credentials' })
    assert.equal(await codeOf(await basicCall('ivan', 'ivan-password')), 'account_locked', 'the grant counted toward the same lock')
  })

  it('shows the lock on the OIDC login form, and logs in there once it has passed', async () => {
    const authorize = `${realmUrl(gw, '/protocol/openid-connect/auth')}?` + new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })
    const jar = new CookieJar()
    const form = await browse(gw, jar, authorize)
    const action = /<form method="post" action="([^"]+)"/.exec(await form.response.text())![1]!
    const submit = (password: string) => browse(gw, jar, gw.url + action, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'judy', password }).toString(),
    })
    await failTimes('judy', 3)
    const locked = await submit('judy-password')
    assert.equal(locked.response.status, 200)
    assert.match(await locked.response.text(), /Too many failed logins for this username\. Try again later/)
    advance(60)
    const done = await submit('judy-password')
    assert.ok(done.url.startsWith(CLIENT_REDIRECT), done.url)
  })

  it('ends the lock when a superuser sets a new password through the users API', async () => {
    const kim = await gw.app.accounts.create({ username: 'kim', password: 'kim-password' })
    await failTimes('kim', 3)
    const patch = await gw.fetch(`/api/gateway/v1/users/${kim.id}/`, { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ password: 'kim-new-password' }) })
    assert.equal(patch.status, 200)
    assert.equal((await basicCall('kim', 'kim-new-password')).status, 200)
  })

  it('does not lock a new account out with the failures counted against a deleted one of the same name', async () => {
    const create = () => gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: jsonHeaders, body: JSON.stringify({ username: 'rowan', password: 'rowan-first-password' }) })
    const created = await create()
    const first = await json(created)
    assert.equal(created.status, 201, JSON.stringify(first))
    await failTimes('rowan', 3)
    assert.equal(await codeOf(await basicCall('rowan', 'rowan-first-password')), 'account_locked')
    assert.equal((await gw.fetch(`/api/gateway/v1/users/${first.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    assert.equal(await codeOf(await basicCall('rowan', 'rowan-first-password')), 'account_locked', 'the name stays locked while no account has it')
    assert.equal((await create()).status, 201)
    assert.equal((await basicCall('rowan', 'rowan-first-password')).status, 200)
  })

  it('ends the lock when a superuser enables the account again, and not when only its name or email changes', async () => {
    const leo = await gw.app.accounts.create({ username: 'leo', password: 'leo-password' })
    await failTimes('leo', 3)
    const send = (body: object) => gw.fetch(`/api/gateway/v1/users/${leo.id}/`, { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify(body) })
    assert.equal((await send({ email: 'leo@example.com' })).status, 200)
    assert.equal(await codeOf(await basicCall('leo', 'leo-password')), 'account_locked')
    assert.equal((await send({ is_active: false })).status, 200)
    assert.equal((await send({ is_active: true })).status, 200)
    assert.equal((await basicCall('leo', 'leo-password')).status, 200)
  })

  it('ends the lock with `gatehouse users unlock NAME`', async () => {
    await failTimes('mallory', 3)
    assert.equal(await codeOf(await basicCall('mallory', 'mallory-password')), 'account_locked')
    const unlocked = await runCli(['users', 'unlock', 'mallory', '--data-dir', gw.dataDir])
    assert.equal(unlocked.code, 0, unlocked.stderr)
    assert.match(unlocked.stdout, /unlocked mallory/)
    assert.equal((await basicCall('mallory', 'mallory-password')).status, 200)
    const again = await runCli(['users', 'unlock', 'mallory', '--data-dir', gw.dataDir])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /mallory had no failed logins/)
  })

  it('does not lock anyone while login_failures_before_lockout is 0', async () => {
    const off = await gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ login_failures_before_lockout: 0 }) })
    assert.equal(off.status, 200)
    assert.equal((await json(off)).login_failures_before_lockout, 0)
    const nina = await gw.app.accounts.create({ username: 'nina', password: 'nina-password' })
    assert.ok(nina.id)
    const codes = await failTimes('nina', 5)
    assert.deepEqual(new Set(codes), new Set(['invalid_credentials']))
    assert.equal(await gw.store.loginFailures.find('nina'), undefined, 'nothing is recorded')
    assert.equal((await basicCall('nina', 'nina-password')).status, 200)
  })
})

describe('lockout settings', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  const patch = (body: object) => gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify(body) })

  it('shows the defaults: 10 failures, 60 seconds', async () => {
    const settings = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
    assert.equal(settings.login_failures_before_lockout, 10)
    assert.equal(settings.login_lockout_seconds, 60)
  })

  it('refuses values that are not whole numbers in range, by field, and saves none of them', async () => {
    const cases: [object, string][] = [
      [{ login_failures_before_lockout: -1 }, 'login_failures_before_lockout'],
      [{ login_failures_before_lockout: 2.5 }, 'login_failures_before_lockout'],
      [{ login_failures_before_lockout: 'ten' }, 'login_failures_before_lockout'],
      [{ login_failures_before_lockout: 1001 }, 'login_failures_before_lockout'],
      [{ login_lockout_seconds: 0 }, 'login_lockout_seconds'],
      [{ login_lockout_seconds: 86_401 }, 'login_lockout_seconds'],
      [{ login_lockout_seconds: null }, 'login_lockout_seconds'],
    ]
    for (const [body, name] of cases) {
      const response = await patch({ ...body, session_cookie_age: 1200 })
      assert.equal(response.status, 400, JSON.stringify(body))
      const error = await json(response)
      assert.equal(error.code, 'invalid')
      assert.deepEqual(Object.keys(error.errors), [name])
      assert.match(error.errors[name][0], /^(A valid integer is required|This field may not be null|Ensure this value is (greater|less) than or equal to \d+)\.$/, 'in Django REST framework\'s words')
    }
    const settings = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
    assert.equal(settings.session_cookie_age, 900)
    assert.equal(settings.login_failures_before_lockout, 10)
  })

  it('changes one lockout setting without resetting the other, or any other setting', async () => {
    await json(await patch({ login_lockout_seconds: 120, session_cookie_age: 1200 }))
    const saved = await json(await patch({ login_failures_before_lockout: 4 }))
    assert.equal(saved.login_failures_before_lockout, 4)
    assert.equal(saved.login_lockout_seconds, 120)
    assert.equal(saved.session_cookie_age, 1200)
    await json(await patch({ login_failures_before_lockout: 10, login_lockout_seconds: 60, session_cookie_age: 900 }))
  })

  it('saves every setting at once with PUT, on PostgreSQL too', async () => {
    const database = await createTestDatabase()
    const pg = await startGateway({ databaseUrl: database.url })
    try {
      const all = await json(await pg.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
      const response = await pg.fetch('/api/gateway/v1/settings/', { method: 'PUT', headers: jsonHeaders, body: JSON.stringify({ ...all, login_failures_before_lockout: 7 }) })
      assert.equal(response.status, 200)
      assert.equal((await json(response)).login_failures_before_lockout, 7)
    } finally {
      await pg.close()
      await database.drop()
    }
  })

  it('saves valid values, and applies them to the next password check', async () => {
    const saved = await json(await patch({ login_failures_before_lockout: 1, login_lockout_seconds: 30 }))
    assert.equal(saved.login_failures_before_lockout, 1)
    assert.equal(saved.login_lockout_seconds, 30)
    assert.equal((await json(await gw.fetch(ME, { headers: { authorization: basic('olga', 'x') } }))).code, 'invalid_credentials')
    const locked = await gw.fetch(ME, { headers: { authorization: basic('olga', 'y') } })
    assert.equal((await json(locked)).code, 'account_locked')
    assert.equal(locked.headers.get('retry-after'), '30')
  })
})

function setCookieNames(response: Response): string[] {
  return response.headers.getSetCookie().map((line) => line.split('=', 1)[0]!)
}
