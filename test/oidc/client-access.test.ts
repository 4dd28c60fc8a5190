import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'

/** A realm client with `access` rules: only team Operators may sign in to it, by any grant. */
describe('a realm client\'s access rules', () => {
  let gw: TestGateway
  const CLIENT = 'operators-console'
  const password = (name: string) => `${name}-password-long`

  before(async () => {
    gw = await startGateway({
      config: {
        realms: realmWith([{
          client_id: CLIENT, public_client: true, direct_access_grants: true, device_authorization_grant: true, pkce: 'optional', redirect_uris: [CLIENT_REDIRECT],
          access: [{ allow: { teams: ['Operators'] } }],
        }]),
      },
    })
    for (const name of ['operator', 'outsider']) await gw.app.accounts.create({ username: name, password: password(name) })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Operators')
    assert.equal((await grant(gw, 'operator', 'Team Member', platform.team)).status, 201)
  })
  after(() => gw.close())

  const passwordGrant = (username: string, clientId = CLIENT) =>
    tokenRequest(gw, { client_id: clientId, grant_type: 'password', username, password: password(username) })

  it('gives a member of Operators tokens with the password grant', async () => {
    const { status, body } = await passwordGrant('operator')
    assert.equal(status, 200)
    assert.ok(body.access_token)
  })

  it('refuses anyone else the password grant with 400 access_denied, naming no secret', async () => {
    const { status, body } = await passwordGrant('outsider')
    assert.equal(status, 400)
    assert.equal(body.error, 'access_denied')
    assert.match(body.error_description, /No access rule of the client "platform\/operators-console"/)
    assert.equal(body.access_token, undefined)
  })

  it('refuses a refresh once the user no longer passes the client\'s rules, and grants it while they do', async () => {
    await gw.app.accounts.create({ username: 'leaver', password: password('leaver') })
    const team = gw.app.access.teams.find((t) => t.name === 'Operators')!.id
    const membership = await grant(gw, 'leaver', 'Team Member', team)
    assert.equal(membership.status, 201)
    const issued = await passwordGrant('leaver')
    assert.equal(issued.status, 200)
    const refresh = () => tokenRequest(gw, { client_id: CLIENT, grant_type: 'refresh_token', refresh_token: issued.body.refresh_token })
    assert.equal((await refresh()).status, 200, 'still a member')
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${membership.body.id}/`)).status, 204)
    const refused = await refresh()
    assert.equal(refused.status, 400)
    assert.equal(refused.body.error, 'access_denied')
    assert.match(refused.body.error_description, /No access rule of the client "platform\/operators-console"/)
    assert.equal(refused.body.access_token, undefined)
  })

  it('leaves the realm\'s other clients alone', async () => {
    assert.equal((await passwordGrant('outsider', 'end-users')).status, 200)
  })

  async function authorize(username: string): Promise<URL> {
    const jar = new CookieJar()
    const start = `${realmUrl(gw)}/protocol/openid-connect/auth?` + new URLSearchParams({ client_id: CLIENT, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te' })
    const loginPage = await browse(gw, jar, start)
    assert.equal(loginPage.response.status, 200)
    const action = /<form method="post" action="([^"]+)"/.exec(await loginPage.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password: password(username) }).toString() })
    assert.ok(done.url.startsWith(CLIENT_REDIRECT), done.url)
    return new URL(done.url)
  }

  it('sends a member of Operators back to the client with a code', async () => {
    const back = await authorize('operator')
    assert.ok(back.searchParams.get('code'))
    assert.equal(back.searchParams.get('error'), null)
  })

  it('sends anyone else back to the client with error=access_denied and no code', async () => {
    const back = await authorize('outsider')
    assert.equal(back.searchParams.get('error'), 'access_denied')
    assert.equal(back.searchParams.get('code'), null)
    assert.equal(back.searchParams.get('state'), 'st4te')
  })

  /** A browser signed in at the realm through its other client, `end-users`. */
  async function signedInAtRealm(username: string): Promise<CookieJar> {
    const jar = new CookieJar()
    const start = `${realmUrl(gw)}/protocol/openid-connect/auth?` + new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })
    const loginPage = await browse(gw, jar, start)
    const action = /<form method="post" action="([^"]+)"/.exec(await loginPage.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password: password(username) }).toString() })
    assert.ok(new URL(done.url).searchParams.get('code'), 'signed in at the realm through another client')
    return jar
  }

  it('sends anyone else back with error=access_denied even when the browser is signed in at the realm already', async () => {
    const again = async (jar: CookieJar, extra: Record<string, string>) => new URL((await browse(gw, jar, `${realmUrl(gw)}/protocol/openid-connect/auth?` +
      new URLSearchParams({ client_id: CLIENT, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te', ...extra }))).url)
    const outsider = await signedInAtRealm('outsider')
    for (const extra of [{}, { prompt: 'none' }] as Record<string, string>[]) {
      const back = await again(outsider, extra)
      assert.equal(back.origin + back.pathname, CLIENT_REDIRECT, JSON.stringify(extra))
      assert.equal(back.searchParams.get('error'), 'access_denied', JSON.stringify(extra))
      assert.equal(back.searchParams.get('code'), null, JSON.stringify(extra))
      assert.equal(back.searchParams.get('state'), 'st4te')
    }
    const operator = await signedInAtRealm('operator')
    assert.ok((await again(operator, { prompt: 'none' })).searchParams.get('code'))
  })

  /** The device grant: start, enter the code and sign in as a browser would (forms posted by hand), then poll once. */
  async function deviceGrant(username: string, jar = new CookieJar()): Promise<{ status: number; body: any }> {
    const started = await gw.fetch(`/realms/platform/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: CLIENT }) })
    assert.equal(started.status, 200)
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const submit = async (page: Response, url: string, fields: Record<string, string>) => {
      const html = await page.text()
      const action = /<form[^>]*method="post"[^>]*action="([^"]+)"|<form[^>]*action="([^"]+)"[^>]*method="post"/.exec(html)
      const form = new URLSearchParams([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m): [string, string] => [m[1]!, m[2]!]))
      for (const [key, value] of Object.entries(fields)) form.set(key, value)
      return browse(gw, jar, new URL(action![1] ?? action![2]!, url).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() })
    }
    const input = await browse(gw, jar, realmUrl(gw, '/device'))
    const confirm = await submit(input.response, input.url, { user_code: userCode })
    const login = await submit(confirm.response, confirm.url, {})
    // A browser signed in at the realm already is not shown the login form.
    const action = /<form method="post" action="([^"]+)"/.exec(await login.response.text())?.[1]
    if (action) await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password: password(username) }).toString() })
    return tokenRequest(gw, { client_id: CLIENT, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode })
  }

  it('gives a member of Operators tokens by the device grant', async () => {
    const { status, body } = await deviceGrant('operator')
    assert.equal(status, 200, JSON.stringify(body))
    assert.ok(body.access_token)
  })

  it('refuses anyone else the device grant with access_denied, also when the browser is signed in at the realm already', async () => {
    for (const jar of [new CookieJar(), await signedInAtRealm('outsider')]) {
      const { status, body } = await deviceGrant('outsider', jar)
      assert.equal(status, 400)
      assert.equal(body.error, 'access_denied')
      assert.equal(body.access_token, undefined)
    }
  })
})
