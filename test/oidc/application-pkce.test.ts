import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, testRealms } from '../helpers/oidc.ts'

/**
 * An OAuth2 application's authorization code at the platform's endpoints (`/o/authorize/`, `/o/token/`): as
 * django-ansible-base's per-application `pkce_required`, on for a new application, a code is given only to a request
 * with a PKCE challenge, and redeemed only with its verifier; an application switched off logs in without one.
 */
describe('PKCE for OAuth2 applications', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const api = (method: string, path: string, body?: unknown) => gw.fetch(`/api/gateway/v1/applications/${path}`, {
    method, headers: { ...adminAuth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const application = async (fields: Record<string, unknown>) => {
    const created = await api('POST', '', { name: `app-${randomBytes(4).toString('hex')}`, authorization_grant_type: 'authorization-code', redirect_uris: CLIENT_REDIRECT, ...fields })
    assert.equal(created.status, 201)
    return json(created)
  }
  /** Where alice's browser lands after signing in at `/o/authorize/` with these parameters: the application's redirect URI. */
  const authorize = async (clientId: string, extra: Record<string, string> = {}) => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, `${gw.url}/o/authorize/?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: CLIENT_REDIRECT, ...extra })}`)
    const form = /<form method="post" action="([^"]+)"/.exec(await page.response.text())
    const landed = form
      ? await browse(gw, jar, gw.url + form[1], { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: 'alice-password' }).toString() })
      : page
    assert.ok(landed.url.startsWith(CLIENT_REDIRECT), landed.url)
    return new URL(landed.url).searchParams
  }
  const redeem = (clientId: string, code: string, extra: Record<string, string> = {}) => gw.fetch('/o/token/', {
    method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: CLIENT_REDIRECT, ...extra }),
  })

  it('shows pkce_required on for a new application of either type, as the platform\'s model defaults it', async () => {
    assert.equal((await application({ client_type: 'public' })).pkce_required, true)
    assert.equal((await application({ client_type: 'confidential' })).pkce_required, true)
    assert.equal((await application({ client_type: 'public', pkce_required: false })).pkce_required, false)
  })

  it('refuses a public application\'s authorization request without a PKCE challenge, giving no code', async () => {
    const { client_id: clientId } = await application({ client_type: 'public' })
    const answer = await authorize(clientId)
    assert.equal(answer.get('error'), 'invalid_request')
    assert.equal(answer.get('error_description'), 'Missing parameter: code_challenge_method')
    assert.equal(answer.get('code'), null)
  })

  it('gives a public application a code for an S256 challenge, redeemed only with its verifier', async () => {
    const { client_id: clientId } = await application({ client_type: 'public' })
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const code = (await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' })).get('code')!
    const withoutVerifier = await redeem(clientId, code)
    assert.equal(withoutVerifier.status, 400)
    assert.deepEqual(await json(withoutVerifier), { error: 'invalid_grant', error_description: 'PKCE code verifier not specified' })
    const second = (await authorize(clientId, { code_challenge: challenge, code_challenge_method: 'S256' })).get('code')!
    const redeemed = await redeem(clientId, second, { code_verifier: verifier })
    assert.equal(redeemed.status, 201)
    assert.equal(typeof (await json(redeemed)).access_token, 'string')
  })

  it('lets an application with pkce_required switched off log in without PKCE, and on again refuses it', async () => {
    const { id, client_id: clientId } = await application({ client_type: 'public' })
    const off = await api('PATCH', `${id}/`, { pkce_required: false })
    assert.equal(off.status, 200)
    assert.equal((await json(off)).pkce_required, false)
    const code = (await authorize(clientId)).get('code')
    assert.ok(code)
    assert.equal((await redeem(clientId, code)).status, 201)
    assert.equal((await api('PATCH', `${id}/`, { pkce_required: 'true' })).status, 200)
    assert.equal((await authorize(clientId)).get('error'), 'invalid_request')
  })
})

describe('the login page of an OAuth2 application', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  it('names the application by its name, not its 40-hex-digit client id, and a realm client by its id', async () => {
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Reports <Portal>', authorization_grant_type: 'authorization-code', client_type: 'public', redirect_uris: CLIENT_REDIRECT }),
    })
    assert.equal(created.status, 201)
    const { client_id: clientId } = await json(created)
    const challenge = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
    const application = await browse(gw, new CookieJar(), `${gw.url}/o/authorize/?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: CLIENT_REDIRECT, ...challenge })}`)
    const page = await application.response.text()
    assert.match(page, /<p class="subtitle">Log in to Reports &lt;Portal&gt; \(realm platform\)<\/p>/)
    assert.equal(/<p class="subtitle">[^<]*<\/p>/.exec(page)![0].includes(clientId), false, 'the client id is not what the page calls it')
    const realmClient = await browse(gw, new CookieJar(), `${gw.url}/realms/platform/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, ...challenge })}`)
    assert.match(await realmClient.response.text(), /<p class="subtitle">Log in to end-users \(realm platform\)<\/p>/)
  })
})
