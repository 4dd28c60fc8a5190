import assert from 'node:assert/strict'
import { createHash, createPublicKey, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair, SignJWT } from 'jose'
import { Browser } from '../helpers/browser.ts'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { honestIdToken, honestUserinfo, startForgingIdp, type ForgedSignIn, type ForgingIdp } from '../helpers/forging-idp.ts'
import { SSO } from '../helpers/sso.ts'

// A compromised upstream provider signs in a browser through the real gateway over HTTP, each time answering
// the code exchange with another forged ID token (or UserInfo answer): each must be refused, and change nothing.

const CLIENT_ID = 'gatehouse'
const CALLBACK = `${SSO}forged/callback/`
const TIMEOUT_SECONDS = 2
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const nowSeconds = () => Math.floor(Date.now() / 1000)

describe('single sign-on through a provider that forges its answers', () => {
  let idp: ForgingIdp
  /** A second provider, which must never see the first one's codes or tokens. */
  let other: ForgingIdp
  let gw: TestGateway

  before(async () => {
    idp = await startForgingIdp({ sub: 'sub-mallory', username: 'mallory' })
    other = await startForgingIdp({ sub: 'sub-other', username: 'other' })
    gw = await startGateway({
      config: { sso: [idp.ssoConfig({ name: 'forged', label: 'Forged', client_id: CLIENT_ID, timeout_seconds: TIMEOUT_SECONDS }), other.ssoConfig({ name: 'other', label: 'Other', client_id: CLIENT_ID })] },
    })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
    await other?.close()
  })

  /** A sign-in up to the provider's redirect back, unfollowed; `query` is the start's. */
  async function startSignIn(browser: Browser, query = ''): Promise<URL> {
    const start = await browser.navigate(`${gw.url}${SSO}forged/${query}`, { stopBefore: (url) => url.startsWith(gw.url + CALLBACK) })
    assert.ok(start.stoppedAt, 'the provider redirects back to the gateway')
    return new URL(start.stoppedAt)
  }

  /** A whole sign-in, the callback (changed by `tamper`) asked for as an API client would, to read the error code. */
  async function signIn(tamper = (callback: URL) => callback): Promise<{ status: number; code?: string; session: boolean }> {
    const browser = new Browser()
    const response = await browser.request(tamper(await startSignIn(browser)).href, { headers: { accept: 'application/json' } })
    const session = response.headers.getSetCookie().some((cookie) => cookie.startsWith('gateway_sessionid='))
    return { status: response.status, ...(response.status === 302 ? {} : { code: (await json(response)).code }), session }
  }

  async function assertRefused(forge: (signIn: ForgedSignIn) => Promise<string>, expected = { status: 502, code: 'sso_response_invalid' }) {
    idp.idToken = forge
    try {
      const users = await gw.store.users.count()
      assert.deepEqual(await signIn(), { ...expected, session: false })
      assert.equal(await gw.store.users.count(), users, 'no account is created')
    } finally {
      idp.idToken = honestIdToken
    }
  }

  it('signs in with the honest ID token, so the refusals below are the forgeries\'', async () => {
    assert.deepEqual(await signIn(), { status: 302, session: true })
    const mallory = await gw.store.users.findCaseVariant('mallory')
    assert.ok(mallory)
    await gw.app.accounts.delete(mallory.id)
  })

  it('refuses an unsigned ID token (alg none)', async () => {
    await assertRefused(async ({ claims }) => `${base64url({ alg: 'none' })}.${base64url(claims)}.`)
  })

  it('refuses an ID token signed with HS256 keyed with the provider\'s public key', async () => {
    const publicPem = createPublicKey({ key: idp.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    await assertRefused(({ claims }) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'forging-idp' }).sign(Buffer.from(publicPem)))
  })

  it('refuses an ID token signed with a key the provider does not publish, under its key id', async () => {
    const { privateKey } = await generateKeyPair('RS256')
    await assertRefused(({ claims }) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'forging-idp' }).sign(privateKey))
  })

  it('refuses an ID token of another issuer, for another client, or shared with another client without azp', async () => {
    await assertRefused(({ claims, sign }) => sign({ ...claims, iss: 'https://other-issuer.example' }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, aud: 'another-client' }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, aud: [CLIENT_ID, 'another-client'] }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, aud: [CLIENT_ID, 'another-client'], azp: 'another-client' }))
  })

  it('refuses an ID token whose azp names another client, also with this client its only audience', async () => {
    await assertRefused(({ claims, sign }) => sign({ ...claims, azp: 'another-client' }))
  })

  it('refuses an ID token whose at_hash does not name the access token issued with it, and accepts one that does', async () => {
    const atHash = (token: string) => createHash('sha256').update(token).digest().subarray(0, 16).toString('base64url')
    idp.idToken = ({ claims, sign, accessToken }) => sign({ ...claims, at_hash: atHash(accessToken!) })
    try {
      assert.deepEqual(await signIn(), { status: 302, session: true })
    } finally {
      idp.idToken = honestIdToken
    }
    await gw.app.accounts.delete((await gw.store.users.findCaseVariant('mallory'))!.id)
    await assertRefused(({ claims, sign }) => sign({ ...claims, at_hash: atHash('another access token') }))
    await assertRefused(({ claims, sign, accessToken }) => sign({ ...claims, at_hash: atHash(accessToken!).slice(1) }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, at_hash: 42 }))
  })

  it('refuses an ID token of another sign-in (nonce), one without a nonce, an expired one, and one without iat', async () => {
    await assertRefused(({ claims, sign }) => sign({ ...claims, nonce: 'another-sign-in' }), { status: 403, code: 'sso_nonce_mismatch' })
    await assertRefused(({ claims, sign }) => sign({ ...claims, nonce: undefined }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, exp: nowSeconds() - 120 }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, iat: undefined }))
  })

  it('refuses a subject that is not printable ASCII, before it finds any account by it', async () => {
    // Two lone surrogates would both be stored as U+FFFD: the second person would find the first one's account.
    for (const [i, sub] of ['x\ud800', 'x\udbff', 'nul\u0000', ' padded ', 'tab\there', 'caf\u00e9'].entries()) {
      // UserInfo about the same subject, and a name nobody has: nothing else would refuse the sign-in.
      idp.userinfo = () => ({ sub, preferred_username: `subject-${i}` })
      try {
        await assertRefused(({ claims, sign }) => sign({ ...claims, sub, preferred_username: `subject-${i}` }))
      } finally {
        idp.userinfo = honestUserinfo
      }
    }
  })

  it('refuses an ID token issued in the future, or before this sign-in started', async () => {
    await assertRefused(({ claims, sign }) => sign({ ...claims, iat: nowSeconds() + 3600, exp: nowSeconds() + 7200 }))
    await assertRefused(({ claims, sign }) => sign({ ...claims, iat: nowSeconds() - 3600 }))
  })

  it('keeps whether the provider had the person log in (auth_time), and refuses an earlier login to a sign-in that asked for a fresh one', async () => {
    /** A sign-in whose ID token has this auth_time (none: undefined): the answer's status, and its session's freshness. */
    const signInWith = async (authTime: number | undefined, query = '') => {
      idp.idToken = ({ claims, sign }) => sign({ ...claims, auth_time: authTime })
      try {
        const browser = new Browser()
        const response = await browser.request((await startSignIn(browser, query)).href, { headers: { accept: 'application/json' } })
        const cookie = response.headers.getSetCookie().find((line) => line.startsWith('gateway_sessionid='))
        const session = cookie && await gw.app.sessions.resolve(cookie.slice('gateway_sessionid='.length).split(';')[0]!)
        return { status: response.status, ...(response.status === 302 ? {} : { code: (await json(response)).code }), fresh: session ? session.freshSignIn : undefined }
      } finally {
        idp.idToken = honestIdToken
      }
    }
    // Logged in during the sign-in, or up to the clock tolerance (30 s) before it started.
    assert.deepEqual(await signInWith(nowSeconds()), { status: 302, fresh: true })
    assert.deepEqual(await signInWith(nowSeconds() - 20), { status: 302, fresh: true })
    // The provider's session answered: an earlier login, or one it does not date.
    assert.deepEqual(await signInWith(nowSeconds() - 3600), { status: 302, fresh: false })
    assert.deepEqual(await signInWith(undefined), { status: 302, fresh: false })
    // Asked for a fresh login (prompt=login), the provider gives one, or says nothing against it.
    assert.deepEqual(await signInWith(nowSeconds(), '?prompt=login'), { status: 302, fresh: true })
    assert.deepEqual(await signInWith(undefined, '?prompt=login'), { status: 302, fresh: true })
    // Or answers with the login it had: refused, no session.
    assert.deepEqual(await signInWith(nowSeconds() - 3600, '?prompt=login'), { status: 502, code: 'sso_response_invalid', fresh: undefined })
    await gw.app.accounts.delete((await gw.store.users.findCaseVariant('mallory'))!.id)
  })

  it('refuses UserInfo claims about another subject (OIDC Core 5.3.2)', async () => {
    idp.userinfo = ({ claims }) => ({ sub: 'sub-victim', preferred_username: claims.preferred_username })
    try {
      await assertRefused(honestIdToken)
    } finally {
      idp.userinfo = honestUserinfo
    }
  })

  it('refuses a code sent to another provider\'s callback (mix-up), or naming another issuer (RFC 9207), and never shows it to the other provider', async () => {
    const users = await gw.store.users.count()
    const mixedUp = await signIn((callback) => Object.assign(callback, { pathname: `${SSO}other/callback/` }))
    assert.deepEqual(mixedUp, { status: 400, code: 'sso_login_unknown', session: false })
    const wrongIssuer = await signIn((callback) => {
      callback.searchParams.set('iss', other.issuer)
      return callback
    })
    assert.deepEqual(wrongIssuer, { status: 502, code: 'sso_response_invalid', session: false })
    assert.equal(other.requests.get('/token'), undefined)
    assert.equal(await gw.store.users.count(), users)
  })

  it('does not follow the provider\'s token or UserInfo endpoint to another host', async () => {
    for (const path of ['/token', '/userinfo']) {
      idp.detours.set(path, other.issuer + path)
      try {
        await assertRefused(honestIdToken, { status: 502, code: 'sso_response_invalid' })
      } finally {
        idp.detours.delete(path)
      }
      assert.equal(other.requests.get(path), undefined, `${path} was not followed`)
    }
  })

  it('bounds the token and UserInfo answers in time and size', async () => {
    for (const path of ['/token', '/userinfo']) {
      idp.stalls.add(path)
      const started = Date.now()
      try {
        await assertRefused(honestIdToken, { status: 503, code: 'sso_provider_unavailable' })
      } finally {
        idp.stalls.delete(path)
      }
      assert.ok(Date.now() - started < (TIMEOUT_SECONDS + 2) * 1000, `${path} answered within the timeout`)
    }
    idp.userinfo = ({ claims }) => ({ sub: claims.sub, preferred_username: claims.preferred_username, padding: 'x'.repeat(2 << 20) })
    try {
      await assertRefused(honestIdToken)
    } finally {
      idp.userinfo = honestUserinfo
    }
  })

  it('shows a browser the provider\'s error code with markup as text on the login page, and changes nothing', async () => {
    const browser = new Browser()
    const callback = await startSignIn(browser)
    callback.searchParams.delete('code')
    callback.searchParams.set('error', '<script>alert(1)</script>')
    const users = await gw.store.users.count()
    const page = await browser.navigate(callback.href)
    assert.equal(page.response.status, 502)
    assert.match(page.response.headers.get('content-type')!, /text\/html/)
    assert.match(page.body, /role="alert"[^>]*>[^<]*&lt;script&gt;alert\(1\)/, 'the code, as text')
    assert.doesNotMatch(page.body, /<script>alert/)
    assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)
    assert.equal(await gw.store.users.count(), users)
  })

  it('fetches the provider\'s keys at most once more for a flood of ID tokens naming unknown keys', async () => {
    const fetches = () => idp.requests.get('/jwks') ?? 0
    const before = fetches()
    for (let i = 0; i < 8; i++) await assertRefused(({ claims, sign }) => sign(claims, randomBytes(8).toString('hex')))
    assert.ok(fetches() - before <= 1, `${fetches() - before} fetches of the keys`)
  })
})

describe('single sign-on: the provider\'s keys, fetched by concurrent callbacks', () => {
  let idp: ForgingIdp
  let gw: TestGateway
  before(async () => {
    idp = await startForgingIdp({ sub: 'sub-many', username: 'many' })
    gw = await startGateway({ config: { sso: [idp.ssoConfig({ name: 'forged', label: 'Forged', client_id: CLIENT_ID, timeout_seconds: TIMEOUT_SECONDS })] } })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
  })

  it('fetches them once for sign-ins that finish at the same moment, the first after a start, and for as many naming unknown keys', async () => {
    const callbacks = async (count: number) => Promise.all(Array.from({ length: count }, async () => {
      const browser = new Browser()
      const start = await browser.navigate(`${gw.url}${SSO}forged/`, { stopBefore: (url) => url.startsWith(gw.url + CALLBACK) })
      assert.ok(start.stoppedAt)
      return { browser, callback: start.stoppedAt }
    }))
    const finish = (started: { browser: Browser; callback: string }[]) => Promise.all(started.map(({ browser, callback }) => browser.request(callback, { headers: { accept: 'application/json' } }).then((r) => r.status)))
    const fetches = () => idp.requests.get('/jwks') ?? 0
    // No keys held yet: each of these would fetch them.
    const honest = await finish(await callbacks(10))
    assert.deepEqual(new Set(honest), new Set([302]))
    assert.equal(fetches(), 1)
    const forgedStarts = await callbacks(10)
    idp.idToken = ({ claims, sign }) => sign(claims, randomBytes(8).toString('hex'))
    try {
      assert.deepEqual(new Set(await finish(forgedStarts)), new Set([502]))
    } finally {
      idp.idToken = honestIdToken
    }
    assert.equal(fetches(), 1, 'within a minute of the last fetch, unknown keys are not fetched again')
  })
})
