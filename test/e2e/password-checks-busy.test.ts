import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { argon2Tasks, hashingThreads } from '../../src/directory/passwords.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, TOKEN_PATH, testRealms } from '../helpers/oidc.ts'
import { csrfToken, LOGIN, login, withCsrf } from '../helpers/session.ts'

/**
 * Password checks beyond one per core wait their turn, but only `auth.password_checks_waiting` of them: with every
 * core busy and that many waiting, each door that checks a password refuses at once with 503 password_checks_busy,
 * and the refusal is no failed login.
 */
describe('password checks beyond the queue\'s bound', () => {
  let gw: TestGateway
  const PASSWORD = 'alice-password-long'
  before(async () => {
    gw = await startGateway({
      config: {
        auth: { password_checks_waiting: 1 },
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
        realms: testRealms,
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: PASSWORD })
    await gw.app.settings.update({ login_failures_before_lockout: 2 })
  })
  after(() => gw.close())

  /** Takes every core and every waiting place with checks that end when the returned function is called. */
  function fillQueue(): () => Promise<void> {
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const held = Array.from({ length: argon2Tasks.limit + 1 }, () => argon2Tasks.run(() => gate))
    assert.equal(argon2Tasks.waiting, 1)
    return async () => {
      release()
      await Promise.all(held)
    }
  }

  /** gatehouse_password_checks_refused_total, as /metrics shows it. */
  async function refusedChecks(): Promise<number> {
    const text = await (await gw.fetch('/metrics')).text()
    const line = text.split('\n').find((l) => l.startsWith('gatehouse_password_checks_refused_total '))
    assert.ok(line, 'the counter is shown')
    return Number(line.split(' ')[1])
  }

  async function waitFor(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 1000 && !condition(); i++) await sleep(10)
    assert.ok(condition())
  }

  async function assertBusy(response: Response, codeMember: 'code' | 'error' = 'code'): Promise<void> {
    assert.equal(response.status, 503)
    assert.ok(Number(response.headers.get('retry-after')) >= 1)
    assert.equal((await json(response))[codeMember], 'password_checks_busy')
  }

  it('refuses at once at every door, and none of the refusals counts toward the lockout', async () => {
    const token = await csrfToken(gw)
    const refusedBefore = await refusedChecks()
    const release = fillQueue()
    try {
      for (let i = 0; i < 3; i++) {
        await assertBusy(await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', PASSWORD) } }))
        await assertBusy(await gw.fetch('/api/gateway/v1/authz/forward-auth/', { headers: { authorization: basic('alice', 'wrong'), 'x-forwarded-uri': '/api/controller/v2/hosts/', 'x-forwarded-method': 'GET' } }))
        await assertBusy(await gw.fetch(LOGIN, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
          body: new URLSearchParams({ username: 'alice', password: 'wrong' }).toString(),
        }))
        await assertBusy(await gw.fetch(TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'wrong' }) }), 'error')
      }
      assert.equal(argon2Tasks.waiting, 1, 'no refused check waits')
      assert.equal(await refusedChecks(), refusedBefore + 12)
    } finally {
      await release()
    }
    // Twelve refused checks, two of them enough to lock: the account is not locked.
    await login(gw, 'alice', PASSWORD)
    const granted = await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', PASSWORD) } })
    assert.equal(granted.status, 200)
  })

  it('shows the gateway\'s login form again to a browser, with the message and Retry-After', async () => {
    const token = await csrfToken(gw)
    const release = fillQueue()
    let busy: Response
    try {
      busy = await gw.fetch(LOGIN, {
        method: 'POST',
        headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
        body: new URLSearchParams({ username: 'alice', password: PASSWORD, csrfmiddlewaretoken: token }).toString(),
      })
    } finally {
      await release()
    }
    assert.equal(busy.status, 503)
    assert.equal(busy.headers.get('retry-after'), '1')
    assert.match(await busy.text(), /Too many sign-ins are being checked/)
  })

  /** Sends a request whose password check waits, then goes away, and sees the check leave the queue. */
  async function leaveWhileWaiting(path: string, init: RequestInit): Promise<void> {
    argon2Tasks.maxWaiting = 5
    const release = fillQueue()
    try {
      const gone = new AbortController()
      const sent = gw.fetch(path, { method: 'POST', ...init, signal: gone.signal }).catch(() => undefined)
      await waitFor(() => argon2Tasks.waiting === 2)
      gone.abort()
      await sent
      await waitFor(() => argon2Tasks.waiting === 1)
    } finally {
      argon2Tasks.maxWaiting = 1
      await release()
    }
  }

  it('drops a waiting check at the gateway\'s login whose client went away', async () => {
    const token = await csrfToken(gw)
    await leaveWhileWaiting(LOGIN, {
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
      body: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString(),
    })
  })

  it('drops a waiting check at a realm\'s password grant whose client went away', async () => {
    await leaveWhileWaiting(TOKEN_PATH, { body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'alice', password: PASSWORD }) })
  })

  it('drops a waiting check of basic credentials at the gateway whose client went away', async () => {
    // An account of its own, whose pair no earlier test left verified in memory.
    await gw.app.accounts.create({ username: 'erin', password: PASSWORD })
    await leaveWhileWaiting('/api/controller/v2/hosts/', { method: 'GET', headers: { authorization: basic('erin', PASSWORD) } })
  })

  it('drops a waiting check of basic credentials at forward authentication whose client went away', async () => {
    await leaveWhileWaiting('/api/gateway/v1/authz/forward-auth/', {
      method: 'GET',
      headers: { authorization: basic('alice', `${PASSWORD}-forward`), 'x-forwarded-uri': '/api/controller/v2/hosts/', 'x-forwarded-method': 'GET' },
    })
  })

  it('drops a waiting check of the current password at a password change whose client went away', async () => {
    const session = await login(gw, 'alice', PASSWORD)
    await leaveWhileWaiting('/api/gateway/v1/me/password/', {
      headers: withCsrf(session, { 'content-type': 'application/json', referer: gw.url + LOGIN }),
      body: JSON.stringify({ current_password: PASSWORD, new_password: 'another-long-passphrase' }),
    })
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200, 'the session did not end')
  })

  it('keeps a check of basic credentials that two clients share until both have gone', async () => {
    await gw.app.accounts.create({ username: 'frank', password: PASSWORD })
    const authorization = basic('frank', PASSWORD)
    argon2Tasks.maxWaiting = 5
    const release = fillQueue()
    let stayed: Promise<Response>
    try {
      const gone = new AbortController()
      const left = gw.fetch('/api/controller/v2/hosts/', { headers: { authorization }, signal: gone.signal }).catch(() => undefined)
      await waitFor(() => argon2Tasks.waiting === 2)
      stayed = gw.fetch('/api/controller/v2/hosts/', { headers: { authorization } })
      // Time for the second request to join the check under way (were it late, it would start one of its own).
      await sleep(500)
      gone.abort()
      await left
      await sleep(200)
      assert.equal(argon2Tasks.waiting, 2, 'the check still waits for the client that stayed')
    } finally {
      argon2Tasks.maxWaiting = 1
      await release()
    }
    assert.equal((await stayed).status, 200)
  })

  /**
   * Sends two checks of `username` that its lockout budget admits and that wait for a core, then one more that waits
   * behind them for the budget, and goes away: the last leaves the lockout's queue at once, and is never verified.
   */
  async function leaveLockoutQueue(username: string, send: (signal?: AbortSignal) => Promise<unknown>): Promise<void> {
    argon2Tasks.maxWaiting = 5
    const release = fillQueue()
    const admitted = [send(), send()]
    let hashedBefore: number
    try {
      await waitFor(() => argon2Tasks.waiting === 3)
      const gone = new AbortController()
      const sent = send(gone.signal).catch(() => undefined)
      await waitFor(() => gw.app.accounts.lockout.waiting === 1)
      gone.abort()
      await sent
      await waitFor(() => gw.app.accounts.lockout.waiting === 0)
      hashedBefore = hashingThreads.hashed
    } finally {
      argon2Tasks.maxWaiting = 1
      await release()
    }
    await Promise.all(admitted)
    assert.equal(hashingThreads.hashed - hashedBefore, 2)
    assert.equal(gw.app.accounts.lockout.waiting, 0)
    await gw.app.accounts.lockout.clear(username)
  }

  it('drops a check waiting behind the lockout\'s budget at the gateway\'s login whose client went away', async () => {
    const token = await csrfToken(gw)
    await leaveLockoutQueue('bob', (signal) => gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
      body: new URLSearchParams({ username: 'bob', password: 'wrong-password' }).toString(),
      ...signal && { signal },
    }))
  })

  it('drops a check waiting behind the lockout\'s budget at a realm\'s password grant whose client went away', async () => {
    await leaveLockoutQueue('carol', (signal) => gw.fetch(TOKEN_PATH, {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'carol', password: 'wrong-password' }),
      ...signal && { signal },
    }))
  })

  it('drops a check waiting behind the lockout\'s budget at the gateway\'s basic authentication whose client went away', async () => {
    let attempt = 0
    await leaveLockoutQueue('dave', (signal) => gw.fetch('/api/controller/v2/hosts/', {
      headers: { authorization: basic('dave', `wrong-password-${attempt++}`) },
      ...signal && { signal },
    }))
  })

  it('shows the realm\'s login page again with a message saying so', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'browser-only', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const release = fillQueue()
    let busy: Awaited<ReturnType<typeof browse>>
    try {
      busy = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString() })
    } finally {
      await release()
    }
    assert.equal(busy.response.status, 503)
    assert.ok(Number(busy.response.headers.get('retry-after')) >= 1)
    const html = await busy.response.text()
    assert.match(html, /Too many sign-ins are being checked/)
    assert.match(html, /<form method="post"/)
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: PASSWORD }).toString() })
    assert.ok(new URL(done.url).searchParams.get('code'))
  })
})
