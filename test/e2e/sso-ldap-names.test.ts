import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { openProviderLogin, signInUpstream } from '../helpers/sso.ts'
import { Browser } from '../helpers/browser.ts'
import { startUpstreamIdp, type IdpUser, type UpstreamIdp } from '../helpers/upstream-idp.ts'

const person = (sub: string, username: string): IdpUser => ({
  sub,
  password: `${username}-upstream-pw`,
  claims: { preferred_username: username, email: `${username}@corp.example` },
})

/**
 * A username belongs to one person: single sign-on never takes the name of a person in the LDAP directory, whether
 * that person signed in before (their account exists) or not yet (it does not), and the directory person can always
 * sign in afterwards.
 */
describe('single sign-on next to an LDAP directory', () => {
  let directory: TestDirectory
  let idp: UpstreamIdp
  let gw: TestGateway

  before(async () => {
    directory = await startDirectory()
    idp = await startUpstreamIdp({ bob: person('sub-bob', 'bob'), carol: person('sub-carol', 'carol'), zoe: person('sub-zoe', 'zoe') })
    gw = await startGateway({ config: { ldap: directory.config(), sso: [idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret' })] } })
    idp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}/api/gateway/v1/login/sso/corp/callback/`] })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
    await directory?.close()
  })

  /** A sign-in through the provider as `login`, its callback asked for as an API client would, to read the code. */
  async function ssoCallback(login: string): Promise<{ status: number; code: string | undefined; browser: Browser }> {
    const browser = new Browser()
    const callback = await signInUpstream(gw, browser, await openProviderLogin(gw, browser, 'Corp ID'), login, idp.users.get(login)!.password)
    const response = await browser.request(callback, { headers: { accept: 'application/json' } })
    const body = response.status === 302 ? undefined : await json(response)
    return { status: response.status, code: body?.code, browser }
  }
  const directoryLogin = (username: string, password = PASSWORDS[username]!) =>
    gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic(username, password) } })

  it('refuses a single sign-on that would take the name of a directory person who has not signed in yet, who then signs in', async () => {
    assert.equal(await gw.store.users.findByUsername('bob'), undefined, 'bob has not signed in from the directory yet')
    const refused = await ssoCallback('bob')
    assert.equal(refused.status, 403)
    assert.equal(refused.code, 'account_source_conflict')
    assert.equal(await gw.store.users.findByUsername('bob'), undefined, 'nothing was created')
    assert.equal(refused.browser.cookie(gw.url, 'gateway_sessionid'), undefined)

    const signedIn = await directoryLogin('bob')
    assert.equal(signedIn.status, 200)
    assert.equal((await json(signedIn)).identity.username, 'bob')
    assert.equal((await gw.store.users.findByUsername('bob'))!.source, 'ldap')
  })

  it('shows a browser the reason on the login page', async () => {
    const browser = new Browser()
    const callback = await signInUpstream(gw, browser, await openProviderLogin(gw, browser, 'Corp ID'), 'bob', idp.users.get('bob')!.password)
    const page = await browser.navigate(callback)
    assert.equal(page.response.status, 403)
    assert.match(page.response.headers.get('content-type')!, /^text\/html/)
    assert.match(page.body, /role="alert"/)
  })

  it('refuses a single sign-on onto the name of a directory person who signed in first', async () => {
    assert.equal((await directoryLogin('carol')).status, 200)
    const refused = await ssoCallback('carol')
    assert.equal(refused.status, 403)
    assert.equal(refused.code, 'account_source_conflict')
    assert.equal((await gw.store.users.findByUsername('carol'))!.source, 'ldap')
    assert.equal((await directoryLogin('carol')).status, 200)
  })

  it('signs in a person the directory does not know', async () => {
    const signedIn = await ssoCallback('zoe')
    assert.equal(signedIn.status, 302)
    assert.equal((await gw.store.users.findByUsername('zoe'))!.source, 'sso')
  })

  it('tells a directory person whose name a single sign-on account holds why they cannot sign in, once they prove their password', async () => {
    // Made before single sign-on asked the directory.
    await gw.app.accounts.create({ username: 'dave', source: 'sso', external: true })
    const right = await directoryLogin('dave')
    assert.equal(right.status, 403)
    assert.equal((await json(right)).code, 'account_source_conflict')
    const wrong = await directoryLogin('dave', 'not-the-password')
    assert.equal(wrong.status, 401)
    assert.equal((await json(wrong)).code, 'invalid_credentials')
    assert.equal((await gw.store.users.findByUsername('dave'))!.source, 'sso', 'the account stays as it was')
  })
})
