import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/** The user filter leaves out entries marked as former staff: changing the mark takes a person out of it and back. */
const USER_FILTER = '(&(uid={username})(!(employeeType=former)))'
const personDn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`

/**
 * A directory account's names and e-mail address are the directory's: every sign-in and every account check sets them
 * again (src/directory/ldap-sync.ts), as the platform's controller refuses to change what LDAP maps ("Unable to change
 * first_name on user managed by LDAP."). Whether the account is there at all is the directory's too: an account the
 * directory check disabled works again only once the directory lists it again.
 */
describe('directory accounts through the users API', () => {
  let directory: TestDirectory
  let gw: TestGateway
  const ids: Record<string, number> = {}
  const orgadmin = { authorization: basic('orgadmin', 'orgadmin-password-long') }
  const asDirectory = (name: string) => ({ authorization: basic(name, PASSWORDS[name]!) })
  const shown = async (name: string) => (await call(gw, 'GET', `users/${ids[name]}/`)).body

  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: USER_FILTER }, account_check: { interval_seconds: 0 }, timeouts: { connect_seconds: 1, lookup_seconds: 2 } }) } })
    await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: true })
    await gw.app.accounts.create({ username: 'orgadmin', password: 'orgadmin-password-long' })
    const { organization } = await createOrgAndTeam(gw, 'Staff')
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', organization)).status, 201)
    for (const name of ['carol', 'dave']) {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory(name) })).status, 200, `${name} signs in from the directory`)
      ids[name] = await userId(gw, name)
      assert.equal((await grant(gw, name, 'Organization Member', organization)).status, 201)
    }
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('refuses an organization admin and a superuser a new name or e-mail address of a directory account, with 403 managed_by_source', async () => {
    const carol = await shown('carol')
    assert.equal(carol.source, 'ldap')
    for (const auth of [orgadmin, adminAuth]) {
      for (const [method, body] of [
        ['PATCH', { first_name: 'Caroline' }], ['PATCH', { last_name: 'Other' }], ['PATCH', { email: 'carol@elsewhere.test' }],
        ['PUT', { username: 'carol', email: 'carol@elsewhere.test', is_active: true }],
      ] as const) {
        const refused = await call(gw, method, `users/${ids.carol}/`, body, auth)
        assert.equal(refused.status, 403, `${method} ${JSON.stringify(body)}: ${JSON.stringify(refused.body)}`)
        assert.equal(refused.body.code, 'managed_by_source')
      }
    }
    assert.deepEqual(await shown('carol'), carol)
    // What a client read and sends back is no change.
    const sentBack = await call(gw, 'PUT', `users/${ids.carol}/`, { username: 'carol', first_name: carol.first_name, last_name: carol.last_name, email: carol.email, is_active: true }, orgadmin)
    assert.equal(sentBack.status, 200, JSON.stringify(sentBack.body))
  })

  it('lets an organization admin disable a directory member, but not enable them again', async () => {
    const disabled = await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: false }, orgadmin)
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body))
    const refused = await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: 'yes' }, orgadmin)
    assert.deepEqual([refused.status, refused.body.code], [403, 'managed_by_source'])
    assert.equal((await shown('carol')).is_active, false)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory('carol') })).status, 401)
    // A superuser does, the directory still listing the account.
    const enabled = await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: true })
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body))
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory('carol') })).status, 200)
  })

  it('enables an account the directory check disabled only once the directory lists it again: its token stays refused until then', async () => {
    const { token } = await createToken(gw, asDirectory('dave'))
    const me = async () => (await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })).status
    assert.equal(await me(), 200)
    await directory.replaceAttribute(personDn('dave'), 'employeeType', ['former'])
    assert.deepEqual((await gw.app.directoryCheck!.run()).disabled, ['dave'])
    assert.equal(await me(), 401)
    for (const auth of [orgadmin, adminAuth]) {
      const refused = await call(gw, 'PATCH', `users/${ids.dave}/`, { is_active: true }, auth)
      assert.deepEqual([refused.status, refused.body.code], [403, 'managed_by_source'], JSON.stringify(refused.body))
    }
    assert.equal((await shown('dave')).is_active, false)
    assert.equal(await me(), 401)

    // While the directory does not answer, nothing is enabled either.
    await directory.replaceAttribute(personDn('dave'), 'employeeType', [])
    await directory.stop()
    try {
      const unanswered = await call(gw, 'PATCH', `users/${ids.dave}/`, { is_active: true })
      assert.deepEqual([unanswered.status, unanswered.body.code], [503, 'directory_unavailable'])
      assert.equal((await shown('dave')).is_active, false)
    } finally {
      await directory.start()
    }
    const enabled = await call(gw, 'PATCH', `users/${ids.dave}/`, { is_active: true })
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body))
    assert.equal(await me(), 200)
  })

  it('lets an organization admin create no local account of a name a person in the directory has', async () => {
    const refused = await call(gw, 'POST', 'users/', { username: 'bob', password: 'a-local-bob-password' }, orgadmin)
    assert.deepEqual([refused.status, refused.body.code], [403, 'permission_denied'])
    assert.equal((await call(gw, 'GET', 'users/?username=bob')).body.count, 0)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory('bob') })).status, 200, 'bob signs in from the directory')
    const created = await call(gw, 'POST', 'users/', { username: 'nobody-in-the-directory', password: 'a-local-password-long' }, orgadmin)
    assert.equal(created.status, 201, JSON.stringify(created.body))
  })

  it('enables no account whose name the directory now gives to another entry', async () => {
    const disabled = await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: false })
    assert.equal(disabled.status, 200)
    await directory.deleteEntry(personDn('carol'))
    await directory.addPerson('carol', 'a-new-person-password')
    const refused = await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: true })
    assert.deepEqual([refused.status, refused.body.code], [403, 'managed_by_source'])
    assert.equal((await shown('carol')).is_active, false)
  })

  it('lets a superuser change a directory account\'s is_superuser, which its next sign-in sets from superuser_groups again', async () => {
    // As the platform's users API takes it from a superuser (CommonUserSerializer), and its authenticator's
    // is_superuser map applies again at the next login; here superuser_groups both sets and clears (docs/ldap.md).
    for (const [name, inAdmins] of [['alice', true], ['bob', false]] as const) {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory(name) })).status, 200)
      const id = await userId(gw, name)
      assert.equal((await call(gw, 'GET', `users/${id}/`)).body.is_superuser, inAdmins, name)
      const changed = await call(gw, 'PATCH', `users/${id}/`, { is_superuser: !inAdmins })
      assert.equal(changed.status, 200, JSON.stringify(changed.body))
      assert.equal(changed.body.is_superuser, !inAdmins, name)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory(name) })).status, 200)
      assert.equal((await call(gw, 'GET', `users/${id}/`)).body.is_superuser, inAdmins, `${name} after signing in again`)
    }
  })
})

/** A single sign-on account's names and e-mail address are its provider's claims, set again at every sign-in (src/directory/sso-sync.ts). */
describe('single sign-on accounts through the users API', () => {
  let gw: TestGateway
  let id: number
  const orgadmin = { authorization: basic('orgadmin', 'orgadmin-password-long') }

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'orgadmin', password: 'orgadmin-password-long' })
    id = (await gw.app.accounts.create({ username: 'from-provider', source: 'sso', external: true, email: 'erin@provider.test' })).id
    const { organization } = await createOrgAndTeam(gw, 'Provided')
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', organization)).status, 201)
    assert.equal((await grant(gw, 'from-provider', 'Organization Member', organization)).status, 201)
  })
  after(() => gw?.close())

  it('refuses a new name or e-mail address to everyone, and enabling the account again to an organization admin', async () => {
    for (const auth of [orgadmin, adminAuth]) {
      for (const body of [{ first_name: 'Erin' }, { email: 'erin@elsewhere.test' }]) {
        const refused = await call(gw, 'PATCH', `users/${id}/`, body, auth)
        assert.deepEqual([refused.status, refused.body.code], [403, 'managed_by_source'], JSON.stringify(body))
      }
    }
    assert.equal((await call(gw, 'PATCH', `users/${id}/`, { is_active: false }, orgadmin)).status, 200)
    const refused = await call(gw, 'PATCH', `users/${id}/`, { is_active: true }, orgadmin)
    assert.deepEqual([refused.status, refused.body.code], [403, 'managed_by_source'])
    const user = await call(gw, 'GET', `users/${id}/`)
    assert.deepEqual([user.body.is_active, user.body.first_name, user.body.email], [false, '', 'erin@provider.test'])
    // No directory check disables a single sign-on account: a superuser enables it, and its provider is asked at its next sign-in.
    assert.equal((await call(gw, 'PATCH', `users/${id}/`, { is_active: true })).status, 200)
  })
})
