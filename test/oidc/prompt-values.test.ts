import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, REALM, realmUrl, realmWith, SERVICE_SECRET, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password-long' }

/**
 * `prompt` as Keycloak's AuthorizationEndpoint takes it: it checks no value, and acts on `none` (a passive login:
 * the code, or `login_required` when the login would need a page), `login` (the password again), and `create` alone
 * (its registration, not allowed here); every other value is ignored. `none` with `login` is a passive login that
 * needs the form, so `login_required`.
 */
describe('prompt values', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([]) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  const authorizationUrl = (prompt: string, challenge: string) => realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
    client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, state: 'st-9', prompt,
    code_challenge: challenge, code_challenge_method: 'S256',
  })}`)

  /** An authorization in the browser of `jar` with `prompt`: the login form filled in if shown, the code redeemed. */
  async function authorize(jar: CookieJar, prompt: string): Promise<{ formShown: boolean }> {
    const verifier = randomBytes(32).toString('base64url')
    const page = await browse(gw, jar, authorizationUrl(prompt, createHash('sha256').update(verifier).digest('base64url')))
    const formShown = !page.url.startsWith(CLIENT_REDIRECT)
    const done = formShown ? await submitForm(gw, jar, page, ALICE) : page
    const code = new URL(done.url).searchParams.get('code')
    assert.ok(code, `${prompt}: a code at the redirect URI, not ${done.url}`)
    const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
    return { formShown }
  }

  /** What the client's redirect URI gets for an authorization that goes back to it at once. */
  async function answerAtOnce(jar: CookieJar, prompt: string): Promise<URLSearchParams> {
    const { url } = await browse(gw, jar, authorizationUrl(prompt, 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'))
    assert.ok(url.startsWith(CLIENT_REDIRECT), `${prompt}: ${url}`)
    return new URL(url).searchParams
  }

  it('ignores a value Keycloak does not know: the login form for a browser without a session, the code without it for one with', async () => {
    const jar = new CookieJar()
    assert.equal((await authorize(jar, 'choose_wisely')).formShown, true)
    for (const prompt of ['choose_wisely', 'consent choose_wisely', 'select_account  consent', 'create consent']) {
      assert.equal((await authorize(jar, prompt)).formShown, false, prompt)
    }
  })

  it('asks for the password again for login among unknown values', async () => {
    const jar = new CookieJar()
    await authorize(jar, 'login')
    assert.equal((await authorize(jar, 'choose_wisely login')).formShown, true)
  })

  it('answers none with values that ask nothing as none alone: the code for a signed-in browser, login_required without a session', async () => {
    const jar = new CookieJar()
    for (const prompt of ['none consent', 'select_account none', 'none choose_wisely']) {
      const refused = await answerAtOnce(new CookieJar(), prompt)
      assert.equal(refused.get('error'), 'login_required', prompt)
      assert.equal(refused.get('state'), 'st-9', prompt)
    }
    await authorize(jar, 'login')
    for (const prompt of ['none consent', 'select_account none', 'none choose_wisely']) {
      assert.equal((await authorize(jar, prompt)).formShown, false, prompt)
    }
  })

  it('answers none with login login_required, without a description, signed in or not, as Keycloak\'s passive login that needs the form', async () => {
    const jar = new CookieJar()
    for (const signedIn of [false, true]) {
      if (signedIn) await authorize(jar, 'login')
      for (const prompt of ['none login', 'login none consent']) {
        const answer = await answerAtOnce(jar, prompt)
        assert.equal(answer.get('error'), 'login_required', `${prompt} ${signedIn}`)
        assert.equal(answer.get('error_description'), null, `${prompt} ${signedIn}`)
        assert.equal(answer.get('state'), 'st-9')
        assert.equal(answer.get('code'), null)
      }
    }
  })

  it('reads a pushed authorization request\'s prompt so too', async () => {
    const push = (prompt: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/ext/par/request`, {
      method: 'POST',
      headers: { authorization: basic('reports', SERVICE_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'reports', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', prompt, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }),
    })
    const pushed = await push('choose_wisely consent')
    assert.equal(pushed.status, 201)
    const { response } = await browse(gw, new CookieJar(), realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'reports', request_uri: (await json(pushed)).request_uri })}`))
    assert.equal(response.status, 200)
    assert.match(await response.text(), /name="password"/)
    assert.equal((await push('none choose_wisely')).status, 201)
  })

  it('answers prompt=create with Keycloak\'s "Registration not allowed" page, as its registrations endpoint, since accounts are not self-made', async () => {
    const plain = authorizationUrl('create', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM')
    for (const url of [plain, plain.replace('prompt=create', 'prompt=%63reate')]) {
      const { response, url: reached } = await browse(gw, new CookieJar(), url)
      assert.ok(!reached.startsWith(CLIENT_REDIRECT), reached)
      assert.equal(response.status, 400)
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/)
      assert.equal(response.headers.get('x-frame-options'), 'DENY')
      assert.match(await response.text(), /<p>Registration not allowed<\/p>/)
    }
  })
})
