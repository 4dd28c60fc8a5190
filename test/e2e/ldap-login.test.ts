import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { ADMIN_PASSWORD, adminAuth, basic, json, refusalBody, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { activeDirectoryImpostor, EXPIRED_PASSWORD_LDIF, GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { login, withCsrf } from '../helpers/session.ts'
import { Browser } from '../helpers/browser.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms } from '../helpers/oidc.ts'


const jsonHeaders = { ...adminAuth, 'content-type': 'application/json' }

async function usersBySource(gw: TestGateway, source: string): Promise<any[]> {
  return (await json(await gw.fetch(`/api/gateway/v1/users/?source=${source}`, { headers: adminAuth }))).results
}

describe('LDAP accounts through the gateway', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config() } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('lets a directory user in with basic authorization and creates an external ldap account for them', async () => {
    const response = await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })
    assert.equal(response.status, 200)
    const seen = await json(response)
    assert.equal(seen.identity.username, 'alice')
    assert.equal(seen.identity.auth_method, 'basic')
    assert.equal(seen.identity.verified, true)

    const [alice] = await usersBySource(gw, 'ldap')
    assert.equal(alice.username, 'alice')
    assert.equal(alice.source, 'ldap')
    assert.equal(alice.external, true)
    assert.equal(alice.email, 'alice@example.test')
    assert.equal(alice.first_name, 'Alice')
    assert.equal(alice.last_name, 'Anderson')
    assert.equal(alice.is_superuser, true, 'member of the superuser group')
    assert.equal(alice.is_system_auditor, false)
    assert.deepEqual(alice.groups, ['developers'])
    assert.equal((await gw.store.users.findByUsername('alice'))!.passwordHash, null, 'no local password is kept')
  })

  it('logs a directory user in with the login form, and the session works on services', async () => {
    const session = await login(gw, 'carol', PASSWORDS.carol!)
    const response = await gw.fetch('/api/controller/v2/hosts/', { headers: { cookie: session.cookie } })
    assert.equal(response.status, 200)
    const seen = await json(response)
    assert.equal(seen.identity.username, 'carol')
    assert.equal(seen.identity.auth_method, 'session')
    assert.equal((await gw.store.users.findByUsername('carol'))!.source, 'ldap')
    const token = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: withCsrf(session) })
    assert.equal(token.status, 403, 'an external account, while the setting is off')
    assert.equal((await json(token)).code, 'external_users_cannot_create_tokens')
  })

  it('gives a directory user tokens through the OIDC password grant, as the first document does', async () => {
    const response = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'carol', password: PASSWORDS.carol! }),
    })
    assert.equal(response.status, 200)
    const tokens = await json(response)
    assert.equal(decodeJwt(tokens.access_token).preferred_username, 'carol')
    const call = await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(call.status, 200)
    assert.equal((await json(call)).identity.auth_method, 'oidc')
    const wrong = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'carol', password: 'not-her-password' }),
    })
    assert.equal(wrong.status, 400)
    assert.deepEqual(await json(wrong), { error: 'invalid_grant', error_description: 'Invalid user credentials' })
  })

  it('gives a directory user no OAuth2 application token while external users may not create tokens, as the platform refuses them', async () => {
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: jsonHeaders, body: JSON.stringify({ name: 'cli', client_type: 'public', authorization_grant_type: 'password' }),
    })
    assert.equal(created.status, 201)
    const { client_id: clientId } = await json(created)
    const grant = (username: string, password: string) => gw.fetch('/o/token/', {
      method: 'POST', body: new URLSearchParams({ grant_type: 'password', client_id: clientId, username, password, scope: 'write' }),
    })
    const setting = (on: boolean) => gw.fetch('/api/gateway/v1/settings/all/', {
      method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ allow_external_users_to_create_oauth2_tokens: on }),
    })
    const refused = await grant('carol', PASSWORDS.carol!)
    assert.equal(refused.status, 400)
    assert.equal((await json(refused)).error, 'access_denied')
    assert.equal((await grant('admin', ADMIN_PASSWORD)).status, 201, 'a local account')
    assert.equal((await setting(true)).status, 200)
    const allowed = await grant('carol', PASSWORDS.carol!)
    assert.equal(allowed.status, 201)
    const { refresh_token: refreshToken } = await json(allowed)
    assert.equal((await setting(false)).status, 200)
    const refreshed = await gw.fetch('/o/token/', { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken }) })
    assert.equal((await json(refreshed)).error, 'access_denied', 'a refresh issues a new token too')
  })

  it('signs a directory user in to no OAuth2 application in the browser while external users may not create tokens', async () => {
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: jsonHeaders,
      body: JSON.stringify({ name: 'web', client_type: 'public', authorization_grant_type: 'authorization-code', redirect_uris: 'https://app.example.com/cb' }),
    })
    assert.equal(created.status, 201)
    const { client_id: clientId } = await json(created)
    const setting = (on: boolean) => gw.fetch('/api/gateway/v1/settings/all/', {
      method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ allow_external_users_to_create_oauth2_tokens: on }),
    })
    const toApp = (url: string) => url.startsWith('https://app.example.com/cb')
    const authorize = (browser: Browser) => browser.navigate(`${gw.url}/o/authorize/?${new URLSearchParams({
      client_id: clientId, response_type: 'code', redirect_uri: 'https://app.example.com/cb', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`, { stopBefore: toApp })
    /** What the application receives at its redirect URI after a sign-in at the login page, or from a browser already signed in. */
    const answer = async (browser: Browser, password?: string) => {
      const page = await authorize(browser)
      const done = password === undefined ? page : await browser.submit(page, { username: 'carol', password }, { stopBefore: toApp })
      assert.ok(done.stoppedAt, done.body.slice(0, 300))
      return new URL(done.stoppedAt).searchParams
    }

    const refused = await answer(new Browser(), PASSWORDS.carol!)
    assert.equal(refused.get('error'), 'access_denied')
    assert.equal(refused.get('code'), null)

    assert.equal((await setting(true)).status, 200)
    const browser = new Browser()
    try {
      assert.ok((await answer(browser, PASSWORDS.carol!)).get('code'), 'allowed while the setting is on')
    } finally {
      assert.equal((await setting(false)).status, 200)
    }
    const signedIn = await answer(browser)
    assert.equal(signedIn.get('error'), 'access_denied', 'a browser already signed in at the realm is refused too')
    assert.equal(signedIn.get('code'), null)
  })

  it('maps groups to superuser, auditor and named groups, and passes them to services', async () => {
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('bob', PASSWORDS.bob!) } })).status, 200)
    const bob = (await usersBySource(gw, 'ldap')).find((u) => u.username === 'bob')
    assert.equal(bob.is_superuser, false)
    assert.equal(bob.is_system_auditor, true)
    assert.deepEqual(bob.groups, ['developers'])

    const create = (auth: string) => gw.fetch('/api/gateway/v1/users/', {
      method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify({ username: `made-by-${auth.length}` }),
    })
    assert.equal((await create(basic('alice', PASSWORDS.alice!))).status, 201, 'a superuser by group may do what superusers do')
    const refused = await create(basic('bob', PASSWORDS.bob!))
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'permission_denied')

    const user = (await gw.store.users.findByUsername('bob'))!
    const claims = decodeJwt(await gw.app.identity.tokenFor({ user, method: 'basic' }, 'controller'))
    assert.equal(claims.source, 'ldap')
    assert.equal(claims.is_system_auditor, true)
    assert.deepEqual(claims.groups, ['developers'])
  })

  it('follows the directory\'s groups at the next login, on the same account', async () => {
    const before = (await gw.store.users.findByUsername('alice'))!
    await directory.setMembers(GROUPS.admins, [`uid=carol,ou=people,${SUFFIX}`])
    try {
      const after = await gw.app.accounts.checkPassword('alice', PASSWORDS.alice!, undefined)
      assert.equal(after.id, before.id)
      assert.equal(after.isSuperuser, false, 'no longer in the superuser group')
      assert.equal((await gw.app.accounts.get(before.id))!.isSuperuser, false, 'the cached account was refreshed too')
    } finally {
      await directory.setMembers(GROUPS.admins, [`uid=alice,ou=people,${SUFFIX}`])
    }
    assert.equal((await gw.app.accounts.checkPassword('alice', PASSWORDS.alice!, undefined)).isSuperuser, true)
  })

  it('signs in a person whose own entry holds control characters or overlong names, storing them cleaned', async () => {
    // People often may edit their own entry; a NUL there (which slapd takes) must not lock them out of Gatehouse.
    const carol = `uid=carol,ou=people,${SUFFIX}`
    const original = { givenName: 'Carol', sn: 'Clark', mail: 'carol@example.test' }
    const edited = { givenName: 'Ca\u0000rol\n', sn: '\u{1F600}'.repeat(151), mail: 'carol\u0000@example.test' }
    try {
      for (const [type, value] of Object.entries(edited)) await directory.replaceAttribute(carol, type, [value])
      const session = await login(gw, 'carol', PASSWORDS.carol!)
      const [me] = (await json(await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } }))).results
      assert.equal(me.first_name, 'Carol')
      assert.equal(me.last_name, '\u{1F600}'.repeat(150), 'cut to 150 characters, none of them halved')
      assert.equal(me.email, '', 'an address with a control character is none')
    } finally {
      for (const [type, value] of Object.entries(original)) await directory.replaceAttribute(carol, type, [value])
    }
  })

  it('keeps an account with the entry it was made for: a later entry given its username is refused until the account is renamed', async () => {
    const first = 'first-frank-password'
    const second = 'second-frank-password'
    const meWith = (password: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('frank', password) } })
    await directory.addPerson('frank', first)
    assert.equal((await meWith(first)).status, 200)
    const former = (await gw.store.users.findByUsername('frank'))!
    await gw.app.accounts.update(former.id, { firstName: 'Former' })
    await directory.deleteEntry(`uid=frank,ou=people,${SUFFIX}`)
    await directory.addPerson('frank', second)

    const refused = await meWith(second)
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'account_source_conflict')
    assert.equal((await gw.store.users.findById(former.id))!.firstName, 'Former', 'the first holder\'s account is left as it was')

    const renamed = await gw.fetch(`/api/gateway/v1/users/${former.id}/`, { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ username: 'frank-former' }) })
    assert.equal(renamed.status, 200, await renamed.text())
    const [me] = (await json(await meWith(second))).results
    assert.equal(me.username, 'frank')
    assert.notEqual(me.id, former.id, 'a new account for the new entry')
  })

  it('checks directory passwords for every login method that shares the password check', async () => {
    const carol = await gw.app.accounts.checkPassword('carol', PASSWORDS.carol!, undefined)
    assert.equal(carol.source, 'ldap')
    assert.equal(carol.external, true)
    await assert.rejects(gw.app.accounts.checkPassword('carol', 'wrong-password', undefined), { code: 'invalid_credentials' })
  })

  it('answers a wrong directory password like any wrong password', async () => {
    const wrong = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', 'wrong-password') } })
    const unknown = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('nobody-here', 'wrong-password') } })
    assert.equal(wrong.status, 401)
    assert.deepEqual(await refusalBody(wrong), await refusalBody(unknown))
  })

  it('never lets a directory entry take over a local account of the same name', async () => {
    const taken = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('admin', PASSWORDS.admin!) } })
    assert.equal(taken.status, 401)
    assert.equal((await json(taken)).code, 'invalid_credentials')
    const admin = (await gw.store.users.findByUsername('admin'))!
    assert.equal(admin.source, 'local')
    assert.equal(admin.external, false)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })).status, 200)
  })

  it('answers a local account\'s name in other letter case with the directory password as any wrong password', async () => {
    // The directory matches names without regard to case; the answer must not tell its password was right.
    const me = (name: string, password: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(name, password) } })
    const wrong = await me('ADMIN', 'not-the-password')
    assert.equal(wrong.status, 401)
    const wrongBody = await refusalBody(wrong)
    for (const name of ['ADMIN', 'Admin']) {
      const response = await me(name, PASSWORDS.admin!)
      assert.equal(response.status, 401, name)
      assert.deepEqual(await refusalBody(response), wrongBody)
    }
    const admin = (await gw.store.users.findByUsername('admin'))!
    assert.equal(admin.source, 'local')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })).status, 200)
  })

  it('refuses LDAP filter metacharacters in the username clearly, and changes nothing', async () => {
    const count = await gw.store.users.count()
    for (const username of ['*', 'alice)(uid=*', '*)(|(uid=*', 'al*', 'alice\\', '(uid=alice)']) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, PASSWORDS.alice!) } })
      assert.equal(response.status, 401, username)
      assert.equal((await json(response)).code, 'invalid_credentials', username)
    }
    assert.equal(await gw.store.users.count(), count)
  })

  it('refuses an empty password without ever binding, and creates no account', async () => {
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dave', '') } })
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'invalid_credentials')
    assert.equal(await gw.store.users.findByUsername('dave'), undefined)
  })

  it('keeps an administrator\'s decision to disable a directory account', async () => {
    await gw.app.accounts.checkPassword('dave', PASSWORDS.dave!, undefined)
    const dave = (await gw.store.users.findByUsername('dave'))!
    const patch = await gw.fetch(`/api/gateway/v1/users/${dave.id}/`, { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ is_active: false }) })
    assert.equal(patch.status, 200)
    const refused = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dave', PASSWORDS.dave!) } })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'account_disabled')
    assert.equal((await gw.store.users.findByUsername('dave'))!.isActive, false)
  })

  it('does not let an administrator set a password on a directory account', async () => {
    const carol = (await gw.store.users.findByUsername('carol'))!
    const patch = await gw.fetch(`/api/gateway/v1/users/${carol.id}/`, { method: 'PATCH', headers: jsonHeaders, body: JSON.stringify({ password: 'local-password' }) })
    assert.equal(patch.status, 400)
    assert.equal((await json(patch)).code, 'invalid')
  })

  it('lists LDAP among the password logins', async () => {
    const body = await json(await gw.fetch('/api/gateway/v1/ui_auth/'))
    assert.deepEqual(body.passwords.map((p: { type: string }) => p.type), ['local', 'ldap'])
  })

  it('takes a directory name differing only in case from an account\'s as that account\'s: the same LDAP person, or a conflict', async () => {
    // The directory matches names without regard to case, and so does a realm login: two such accounts would make
    // that login fail.
    const me = (name: string, password: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(name, password) } })
    assert.equal((await me('carol', PASSWORDS.carol!)).status, 200)
    const carol = (await gw.store.users.findByUsername('carol'))!
    await gw.app.accounts.update(carol.id, { username: 'Carol' })
    const again = await me('carol', PASSWORDS.carol!)
    assert.equal(again.status, 200)
    assert.equal((await json(again)).results[0].id, carol.id, 'an LDAP account in another case is the same directory person\'s')
    assert.equal(await gw.store.users.findByUsername('carol'), undefined, 'and no second account')

    assert.equal((await me('alice', PASSWORDS.alice!)).status, 200)
    await gw.app.accounts.delete((await gw.store.users.findByUsername('alice'))!.id)
    await gw.app.accounts.create({ username: 'ALICE', password: 'local-alice-password' })
    const count = await gw.store.users.count()
    const refused = await me('alice', PASSWORDS.alice!)
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'account_source_conflict')
    assert.equal(await gw.store.users.count(), count)
    assert.equal((await me('ALICE', 'local-alice-password')).status, 200)
  })
})

describe('LDAP asked before local passwords', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config(), auth: { password_sources: ['ldap', 'local'] } } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('still keeps local accounts to their own passwords', async () => {
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('admin', PASSWORDS.admin!) } })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('bob', PASSWORDS.bob!) } })).status, 200)
  })
})

/** A directory user whose username is an e-mail address, as directories that log people in by their address have. */
const ADDRESS_NAMED = 'frank@corp.test'
const ADDRESS_NAMED_PASSWORD = 'frank-directory-password'
const ADDRESS_NAMED_LDIF = `dn: uid=${ADDRESS_NAMED},ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: ${ADDRESS_NAMED}
cn: Frank Foster
sn: Foster
mail: frank.foster@corp.test
userPassword: ${ADDRESS_NAMED_PASSWORD}
`

function realmPasswordGrant(gw: TestGateway, username: string, password: string): Promise<Response> {
  return gw.fetch('/realms/platform/protocol/openid-connect/token', {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password }),
  })
}

describe('a realm login name that is a directory username and a local account\'s e-mail address', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory({ moreEntries: ADDRESS_NAMED_LDIF })
    gw = await startGateway({ config: { ldap: directory.config() } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  const passwordGrant = (username: string, password: string) => realmPasswordGrant(gw, username, password)

  it('names the directory user who has not signed in yet, not the account that took the name as its address', async () => {
    await gw.app.accounts.create({ username: 'mallory', password: 'mallory-local-password', email: ADDRESS_NAMED.toUpperCase() })
    const squatter = await passwordGrant(ADDRESS_NAMED, 'mallory-local-password')
    assert.equal(squatter.status, 400, 'the name is the directory user\'s, whatever address another account gave itself')
    const response = await passwordGrant(ADDRESS_NAMED, ADDRESS_NAMED_PASSWORD)
    assert.equal(response.status, 200)
    assert.equal(decodeJwt((await json(response)).access_token).preferred_username, ADDRESS_NAMED)
    assert.equal((await gw.store.users.findByUsername(ADDRESS_NAMED))!.source, 'ldap')
  })

  it('still takes a local account\'s address that names nobody in the directory', async () => {
    await gw.app.accounts.create({ username: 'grace', password: 'grace-local-password', email: 'grace@corp.test' })
    const response = await passwordGrant('Grace@corp.test', 'grace-local-password')
    assert.equal(response.status, 200)
    assert.equal(decodeJwt((await json(response)).access_token).preferred_username, 'grace')
  })

  it('takes a local account\'s address while the directory does not answer, as its users cannot sign in meanwhile anyway', async () => {
    await directory.stop()
    try {
      const response = await passwordGrant('grace@corp.test', 'grace-local-password')
      assert.equal(response.status, 200)
      assert.equal(decodeJwt((await json(response)).access_token).preferred_username, 'grace')
    } finally {
      await directory.start()
    }
  })
})

describe('a directory address that another account already holds', () => {
  let directory: TestDirectory
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []
  const carolDn = `uid=carol,ou=people,${SUFFIX}`
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config() }, logLines })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  const passwordGrant = (username: string, password: string) => realmPasswordGrant(gw, username, password)
  const signedInAs = async (response: Response) => {
    assert.equal(response.status, 200)
    return decodeJwt((await json(response)).access_token).preferred_username
  }

  it('is not stored for the directory account, and the holder keeps its login by it', async () => {
    await gw.app.accounts.create({ username: 'heidi', password: 'heidi-local-password', email: 'heidi@corp.test' })
    await directory.replaceAttribute(carolDn, 'mail', ['HEIDI@corp.test'])
    assert.equal(await signedInAs(await passwordGrant('carol', PASSWORDS.carol!)), 'carol')
    assert.equal((await gw.store.users.findByUsername('carol'))!.email, '', 'the address stays unset')
    assert.equal(await signedInAs(await passwordGrant('heidi@corp.test', 'heidi-local-password')), 'heidi')
    const logged = logLines.find((line) => line.user === 'carol' && line.held_by === 'heidi')
    assert.ok(logged, 'the administrator is told')
    assert.equal(logged.level, 40)
  })

  it('is not stored when it is another account\'s username, and a login by that username in any case names that account', async () => {
    await gw.app.accounts.create({ username: 'ivan@corp.test', password: 'ivan-local-password' })
    await directory.replaceAttribute(carolDn, 'mail', ['Ivan@Corp.test'])
    await signedInAs(await passwordGrant('carol', PASSWORDS.carol!))
    assert.equal((await gw.store.users.findByUsername('carol'))!.email, '')
    assert.equal(await signedInAs(await passwordGrant('IVAN@corp.test', 'ivan-local-password')), 'ivan@corp.test')
  })

  it('takes back an address copied before it was checked, and stores one nobody holds', async () => {
    const carol = (await gw.store.users.findByUsername('carol'))!
    await gw.store.users.update(carol.id, { email: 'heidi@corp.test' })
    await directory.replaceAttribute(carolDn, 'mail', ['heidi@corp.test'])
    await signedInAs(await passwordGrant('carol', PASSWORDS.carol!))
    assert.equal((await gw.store.users.findByUsername('carol'))!.email, '')
    await directory.replaceAttribute(carolDn, 'mail', ['carol@corp.test'])
    await signedInAs(await passwordGrant('carol', PASSWORDS.carol!))
    assert.equal((await gw.store.users.findByUsername('carol'))!.email, 'carol@corp.test')
    assert.equal(await signedInAs(await passwordGrant('carol@corp.test', PASSWORDS.carol!)), 'carol')
  })

  it('gives a username in any letter case the login over an address another account holds, as Keycloak asks for the username first', async () => {
    // Superusers set addresses unchecked, so such a pair can still be made.
    await gw.app.accounts.create({ username: 'judy@corp.test', password: 'judy-local-password' })
    await gw.app.accounts.create({ username: 'karl', password: 'karl-local-password', email: 'JUDY@corp.test' })
    assert.equal(await signedInAs(await passwordGrant('Judy@Corp.Test', 'judy-local-password')), 'judy@corp.test')
    assert.equal((await passwordGrant('judy@corp.test', 'karl-local-password')).status, 400)
  })
})

describe('a directory password that must be changed first', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory({ passwordPolicy: true, moreEntries: EXPIRED_PASSWORD_LDIF })
    gw = await startGateway({ config: { ldap: directory.config(), realms: testRealms } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('is refused with 401 password_change_required, and creates no account, until it is changed', async () => {
    await directory.replaceAttribute(`uid=carol,ou=people,${SUFFIX}`, 'pwdReset', ['TRUE'])
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', PASSWORDS.carol!) } })
    assert.equal(response.status, 401)
    const body = await json(response)
    assert.equal(body.code, 'password_change_required')
    assert.match(body.detail, /changed/)
    assert.equal(await gw.store.users.findByUsername('carol'), undefined)
    await directory.replaceAttribute(`uid=carol,ou=people,${SUFFIX}`, 'pwdReset', [])
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', PASSWORDS.carol!) } })).status, 200)
  })

  it('says an expired password has expired, with 401 password_expired, only to the right password', async () => {
    const expired = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('erin', PASSWORDS.erin!) } })
    assert.equal(expired.status, 401)
    assert.equal((await json(expired)).code, 'password_expired')
    const guessed = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('erin', 'a-guess') } })
    assert.equal(guessed.status, 401)
    assert.equal((await json(guessed)).code, 'invalid_credentials')
    assert.equal(await gw.store.users.findByUsername('erin'), undefined)
  })

  it('tells the person at a realm\'s login page that the password expired', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'browser-only', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const post = (password: string) => browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'erin', password }).toString() })
    assert.match(await (await post('a-guess')).response.text(), /Invalid username or password/)
    assert.match(await (await post(PASSWORDS.erin!)).response.text(), /password has expired/)
  })
})

describe('Active Directory\'s refusals of a right password', () => {
  let directory: TestDirectory
  let impostor: Awaited<ReturnType<typeof activeDirectoryImpostor>>
  let gw: TestGateway
  const dn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`
  before(async () => {
    directory = await startDirectory()
    impostor = await activeDirectoryImpostor(directory.url, { [dn('carol')]: '532', [dn('bob')]: '773', [dn('dave')]: '775' })
    gw = await startGateway({ config: { ldap: directory.config({ servers: [impostor.url] }) } })
  })
  after(async () => {
    await gw?.close()
    await impostor?.close()
    await directory?.close()
  })

  const codeFor = async (username: string, password: string) => {
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })
    assert.equal(response.status, 401)
    return (await json(response)).code
  }

  it('names an expired password and one that must be reset, and only to the right password', async () => {
    assert.equal(await codeFor('carol', PASSWORDS.carol!), 'password_expired')
    assert.equal(await codeFor('bob', PASSWORDS.bob!), 'password_change_required')
    assert.equal(await codeFor('carol', 'a-guess'), 'invalid_credentials')
    assert.equal(await gw.store.users.findByUsername('carol'), undefined)
  })

  it('answers a locked account as a wrong password, since Active Directory says it whatever the password', async () => {
    assert.equal(await codeFor('dave', PASSWORDS.dave!), 'invalid_credentials')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status, 200)
  })
})
