import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'
import { call, createOrgAndTeam, userId } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { syncDirectoryAccount } from '../../src/directory/ldap-sync.ts'
import { AccountDisabled } from '../../src/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms, tokenRequest } from '../helpers/oidc.ts'

const ALICE = `uid=alice,ou=people,${SUFFIX}`

/**
 * alice signed in once from the directory (a superuser by its group), was then disabled by an administrator who also
 * took her superuser flag, and her directory entry changed since: every door must refuse her and leave all of it as
 * the administrator left it.
 */
describe('a disabled directory account that signs in', () => {
  let directory: TestDirectory
  let gw: TestGateway
  let before_: Record<string, unknown>
  let research: number

  /** What a sign-in could change of the account: flags, groups, profile, last login, and the mapped memberships. */
  async function state(): Promise<Record<string, unknown>> {
    const user = (await gw.store.users.findByUsername('alice'))!
    const organizations = await call(gw, 'GET', `users/${user.id}/organizations/`)
    return {
      isActive: user.isActive, isSuperuser: user.isSuperuser, isSystemAuditor: user.isSystemAuditor, groups: user.groups,
      firstName: user.firstName, email: user.email, lastLogin: user.lastLogin,
      organizations: organizations.body.results.map((o: { name: string }) => o.name),
    }
  }

  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ memberships: [{ organization: 'Research', groups: [GROUPS.auditors] }] }), realms: testRealms } })
    research = (await createOrgAndTeam(gw, 'Research')).organization
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status, 200)
    const disabled = await call(gw, 'PATCH', `users/${await userId(gw, 'alice')}/`, { is_active: false, is_superuser: false })
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body))
    // Still in the superuser group; now in the auditor group, which is mapped to Research; out of developers; renamed.
    await directory.setMembers(GROUPS.auditors, [`uid=bob,ou=people,${SUFFIX}`, ALICE])
    await directory.setMembers(GROUPS.developers, [`uid=bob,ou=people,${SUFFIX}`])
    await directory.replaceAttribute(ALICE, 'givenName', ['Alicia'])
    before_ = await state()
    assert.deepEqual(before_, {
      isActive: false, isSuperuser: false, isSystemAuditor: false, groups: ['developers'],
      firstName: 'Alice', email: 'alice@example.test', lastLogin: before_.lastLogin, organizations: [],
    })
  })
  // Each door starts from the account as the administrator left it, whatever the door before it did.
  beforeEach(async () => {
    const id = await userId(gw, 'alice')
    await gw.app.accounts.update(id, { isSuperuser: false, isSystemAuditor: false, groups: ['developers'], firstName: 'Alice' })
    await call(gw, 'POST', `organizations/${research}/users/disassociate/`, { instances: [id] })
    assert.deepEqual(await state(), before_)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('is refused HTTP basic with 401 account_disabled, and nothing of the account follows the directory', async () => {
    const refused = await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'account_disabled')
    assert.deepEqual(await state(), before_)
  })

  it('is refused at the gateway login with 401 account_disabled, and nothing of the account follows the directory', async () => {
    const token = await csrfToken(gw)
    const refused = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
      body: new URLSearchParams({ username: 'alice', password: PASSWORDS.alice! }).toString(),
    })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'account_disabled')
    assert.deepEqual(await state(), before_)
  })

  it('is refused the realm password grant as Keycloak refuses a disabled user, and nothing of the account follows the directory', async () => {
    const refused = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: PASSWORDS.alice! })
    assert.equal(refused.status, 400)
    assert.deepEqual(refused.body, { error: 'invalid_grant', error_description: 'Account disabled' })
    assert.deepEqual(await state(), before_)
  })

  it('is refused at the realm login page, and nothing of the account follows the directory', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'browser-only', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const refused = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: PASSWORDS.alice! }).toString() })
    assert.match(await refused.response.text(), /Account is disabled|account is disabled/)
    assert.equal(refused.url.startsWith(CLIENT_REDIRECT), false, 'no code for the application')
    assert.deepEqual(await state(), before_)
  })

  it('is not changed by a sign-in that read it while still active, when the disable lands meanwhile', async () => {
    // The sign-in's read of the account is from before the administrator's disable (it then waited on the directory).
    const users = new Proxy(gw.store.users, {
      get(target, name) {
        if (name === 'findCaseVariant') return async (...args: Parameters<typeof target.findCaseVariant>) => ({ ...(await target.findCaseVariant(...args))!, isActive: true })
        const value = Reflect.get(target, name)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const readBeforeDisable = new Proxy(gw.store, {
      get(target, name) {
        if (name === 'users') return users
        const value = Reflect.get(target, name)
        return typeof value === 'function' ? value.bind(target) : value
      },
    }) as Store
    const found = { dn: ALICE, entryId: '', username: 'alice', email: 'alice@example.test', firstName: 'Alicia', lastName: 'Anderson', groupDns: [GROUPS.admins, GROUPS.auditors], isSuperuser: true, isSystemAuditor: true, groups: [] }
    await assert.rejects(syncDirectoryAccount(readBeforeDisable, gw.app.accounts, found), AccountDisabled)
    assert.deepEqual(await state(), before_)
  })

  it('is left alone by the account check\'s reading of directory groups, periodic or at a realm refresh', async () => {
    const outcome = await gw.app.directoryCheck!.run()
    assert.deepEqual(outcome.regrouped, [], 'a disabled account is not one the check regroups')
    assert.equal(await gw.app.directoryCheck!.confirm((await gw.store.users.findByUsername('alice'))!), true)
    assert.deepEqual(await state(), before_)
  })
})
