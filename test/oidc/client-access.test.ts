import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createOrgAndTeam, grant } from '../helpers/access.ts'
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
          client_id: CLIENT, public_client: true, direct_access_grants: true, pkce: 'optional', redirect_uris: [CLIENT_REDIRECT],
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
})
