import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, passwordLogin, REALM, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'

/**
 * A login under way and a pushed authorization request belong to the realm that started them. The realms share one
 * store and may have clients of the same id; brought to another realm's URL, each is refused as one that realm never
 * issued, and is not used up by it.
 */
describe('a login under way and a pushed request at another realm', () => {
  let gw: TestGateway
  const OTHER = 'elsewhere'
  before(async () => {
    gw = await startGateway({ config: { realms: [testRealms[0], { ...testRealms[0], name: OTHER }] } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const pkce = () => {
    const verifier = randomBytes(32).toString('base64url')
    return { code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' }
  }
  const authorization = (realm: string, params: Record<string, string>) => `${gw.url}/realms/${realm}/protocol/openid-connect/auth?${new URLSearchParams(params)}`
  const login = (jar: CookieJar, url: string) => browse(gw, jar, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
  const formAction = async (page: { response: Response }) => /<form method="post" action="([^"]+)"/.exec(await page.response.text())?.[1]

  it('does not take a login page\'s interaction under another realm\'s URL, and the login still finishes at its own realm', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, authorization(REALM, { client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, ...pkce() }))
    const action = await formAction(page)
    assert.match(action!, new RegExp(`^/realms/${REALM}/login-actions/`))
    const foreign = action!.replace(`/realms/${REALM}/`, `/realms/${OTHER}/`)

    // The jar sends the interaction cookie to every path, as a hand-made request can.
    const shown = await browse(gw, jar, gw.url + foreign)
    assert.equal(shown.response.status, 400)
    assert.match(await shown.response.text(), /Login expired/)
    const posted = await login(jar, gw.url + foreign)
    assert.equal(posted.response.status, 400)
    assert.equal(posted.url, gw.url + foreign, 'no redirect to the realm that started the login')

    const done = await login(jar, gw.url + action!)
    assert.equal(new URL(done.url).origin + new URL(done.url).pathname, CLIENT_REDIRECT)
    assert.ok(new URL(done.url).searchParams.get('code'))
  })

  it('refuses a pushed request_uri at another realm as one it never issued, and it still works at its own realm', async () => {
    const pushed = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/ext/par/request`, {
      method: 'POST',
      headers: { authorization: basic('reports', SERVICE_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'reports', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', ...pkce() }),
    })
    assert.equal(pushed.status, 201)
    const requestUri = (await pushed.json() as { request_uri: string }).request_uri

    const use = (realm: string, uri: string) => browse(gw, new CookieJar(), authorization(realm, { client_id: 'reports', request_uri: uri }))
    const unknown = await use(OTHER, 'urn:ietf:params:oauth:request_uri:never-issued')
    const elsewhere = await use(OTHER, requestUri)
    assert.equal(unknown.response.status, 400)
    assert.equal(elsewhere.response.status, unknown.response.status)
    assert.equal(await elsewhere.response.text(), await unknown.response.text())

    const own = await use(REALM, requestUri)
    assert.equal(own.response.status, 200)
    assert.match((await formAction(own))!, new RegExp(`^/realms/${REALM}/login-actions/`))
  })
})

/**
 * Tokens and grants belong to their realm too. A client presents a JWT, which another realm's key does not verify;
 * should a record's id reach another realm's provider by any other way, the record is not found there.
 */
describe('tokens and grants at another realm', () => {
  let gw: TestGateway
  let userId: string
  const OTHER = 'elsewhere'
  before(async () => {
    gw = await startGateway({ config: { realms: [testRealms[0], { ...testRealms[0], name: OTHER }] } })
    userId = String((await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })).id)
  })
  after(() => gw.close())

  it('finds a realm\'s access token, refresh token, grant and service token only in that realm\'s provider', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const service = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
    assert.equal(service.status, 200)
    const access = decodeJwtPart(tokens.access_token, 1)
    const refresh = decodeJwtPart(tokens.refresh_token, 1)
    const serviceJti = decodeJwtPart(service.body.access_token, 1).jti
    const records = async (realm: string) => {
      const { instance } = await gw.app.oidc.get(realm)!.provider()
      const accessToken = await instance.AccessToken.find(access.jti)
      return {
        accessToken: accessToken?.accountId,
        refreshToken: (await instance.RefreshToken.find(refresh.jti))?.accountId,
        grant: accessToken?.grantId === undefined ? undefined : (await instance.Grant.find(accessToken.grantId))?.accountId,
        clientCredentials: (await instance.ClientCredentials.find(serviceJti))?.clientId,
      }
    }
    assert.deepEqual(await records(REALM), { accessToken: userId, refreshToken: userId, grant: userId, clientCredentials: 'reports' })
    assert.deepEqual(await records(OTHER), { accessToken: undefined, refreshToken: undefined, grant: undefined, clientCredentials: undefined })
    // Nor does the other realm's check of access tokens take one (its key refuses it before its record is read).
    assert.equal(await gw.app.oidc.get(OTHER)!.accessToken(tokens.access_token), undefined)
    assert.ok(await gw.app.oidc.get(REALM)!.accessToken(tokens.access_token))

    // And the token works at its own realm as before: refreshed, and its new access token read at userinfo.
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    const info = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${refreshed.body.access_token}` } })
    assert.equal(info.status, 200)
    const elsewhere = await gw.fetch(`/realms/${OTHER}/protocol/openid-connect/token`, {
      method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token }),
    })
    assert.equal(elsewhere.status, 400)
  })
})
