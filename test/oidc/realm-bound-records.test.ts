import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, REALM, SERVICE_SECRET, testRealms } from '../helpers/oidc.ts'

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
