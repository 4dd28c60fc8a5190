import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * The platform lets whoever holds change_organization on some organization create users: django-ansible-base's
 * AnsibleBaseUserPermissions.has_create_permission (ansible_base/rbac/api/permissions.py), with the serializer's
 * fields, and only a superuser makes anyone a superuser (validate_is_superuser). The new user belongs to no
 * organization unless the body's `organizations` names one the caller may make them a member of.
 */
describe('organization admins creating users', () => {
  let gw: TestGateway
  let staff: number
  let other: number
  const password = (name: string) => `${name}-password-long`
  const as = (name: string) => ({ authorization: basic(name, password(name)) })
  const exists = async (username: string) => (await call(gw, 'GET', `users/?username__iexact=${username}`)).body.count === 1

  before(async () => {
    gw = await startGateway({ config: demoWithRuledServices({ payroll: [{ allow: { users: ['reserved-name'] } }] }) })
    for (const name of ['orgadmin', 'plain', 'teamadmin', 'auditor']) await gw.app.accounts.create({ username: name, password: password(name) })
    const made = await createOrgAndTeam(gw, 'Staff', 'StaffTeam')
    staff = made.organization
    other = (await createOrgAndTeam(gw, 'Other')).organization
    for (const [name, role, on] of [
      ['orgadmin', 'Organization Admin', staff], ['plain', 'Organization Member', staff], ['teamadmin', 'Team Admin', made.team], ['auditor', 'Platform Auditor', undefined],
    ] as const) assert.equal((await grant(gw, name, role, on)).status, 201, `${name} ${role}`)
  })
  after(() => gw.close())

  it('creates a user in no organization, with the fields a superuser gives, who signs in with the password given', async () => {
    const created = await call(gw, 'POST', 'users/', { username: 'newcomer', password: password('newcomer'), first_name: 'New', last_name: 'Comer', email: 'newcomer@example.com', is_superuser: 'no' }, as('orgadmin'))
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual([created.body.username, created.body.first_name, created.body.email, created.body.is_superuser, created.body.is_active, created.body.source], ['newcomer', 'New', 'newcomer@example.com', false, true, 'local'])
    assert.equal((await call(gw, 'GET', `users/${created.body.id}/organizations/`)).body.count, 0)
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('newcomer'))).status, 200)
  })

  it('makes the new user a member of the organizations the body names, where the caller may', async () => {
    const joined = await call(gw, 'POST', 'users/', { username: 'joiner', password: password('joiner'), organizations: ['Staff'] }, as('orgadmin'))
    assert.equal(joined.status, 201, JSON.stringify(joined.body))
    const organizations = (await call(gw, 'GET', `users/${joined.body.id}/organizations/`)).body.results.map((o: { id: number }) => o.id)
    assert.deepEqual(organizations, [staff])
    assert.equal((await call(gw, 'PATCH', `users/${joined.body.id}/`, { first_name: 'Joined' }, as('orgadmin'))).status, 200)
    const elsewhere = await call(gw, 'POST', 'users/', { username: 'elsewhere', organizations: [other] }, as('orgadmin'))
    assert.deepEqual([elsewhere.status, elsewhere.body.code], [403, 'permission_denied'])
    assert.equal(await exists('elsewhere'), false)
  })

  it('never creates a superuser, in any spelling of true, and creates nothing then', async () => {
    for (const yes of [true, 'yes', 'True', 1, '1', 'on']) {
      const refused = await call(gw, 'POST', 'users/', { username: 'would-be-root', password: password('would-be-root'), is_superuser: yes }, as('orgadmin'))
      assert.deepEqual([refused.status, refused.body.code], [403, 'permission_denied'], JSON.stringify(yes))
    }
    assert.equal(await exists('would-be-root'), false)
  })

  it('creates no account with a name an access rule gives a service to', async () => {
    for (const username of ['reserved-name', 'Reserved-Name', 'RESERVED-NAME']) {
      const refused = await call(gw, 'POST', 'users/', { username, password: password('reserved-name') }, as('orgadmin'))
      assert.deepEqual([refused.status, refused.body.code], [403, 'permission_denied'], username)
      assert.equal(await exists(username), false, username)
    }
  })

  it('takes no name another account signs in with: its e-mail address, or that address as a username', async () => {
    const login = (username: string, secret: string) => gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password: secret }),
    })
    const holder = await call(gw, 'POST', 'users/', { username: 'address-holder', password: password('address-holder'), email: 'Holder@Corp.Example' })
    assert.equal(holder.status, 201, JSON.stringify(holder.body))
    assert.equal((await login('holder@corp.example', password('address-holder'))).status, 200)

    for (const [body, field] of [
      [{ username: 'holder@corp.example', password: password('squatter') }, 'username'],
      [{ username: 'HOLDER@corp.example', password: password('squatter') }, 'username'],
      [{ username: 'squatter', password: password('squatter'), email: 'holder@CORP.example' }, 'email'],
      [{ username: 'squatter', password: password('squatter'), email: ' holder@corp.example ' }, 'email'],
    ] as const) {
      const created = await call(gw, 'POST', 'users/', body, as('orgadmin'))
      assert.deepEqual([created.status, created.body.code, Object.keys(created.body.errors ?? {})], [400, 'invalid', [field]], JSON.stringify({ body, answer: created.body }))
    }
    assert.equal(await exists('squatter'), false)
    assert.equal((await call(gw, 'GET', 'users/?username__iexact=holder@corp.example')).body.count, 0)
    assert.equal((await login('holder@corp.example', password('address-holder'))).status, 200, 'the holder still signs in by address')

    // A superuser's word is the last: as on a change of address, they may give one another account has.
    const bySuperuser = await call(gw, 'POST', 'users/', { username: 'second-holder', password: password('second-holder'), email: 'holder@corp.example' })
    assert.equal(bySuperuser.status, 201, JSON.stringify(bySuperuser.body))
  })

  it('leaves creating users to superusers and organization admins: members, team admins and auditors are refused', async () => {
    for (const name of ['plain', 'teamadmin', 'auditor']) {
      const refused = await call(gw, 'POST', 'users/', { username: `by-${name}`, password: password('by-someone') }, as(name))
      assert.deepEqual([refused.status, refused.body.code], [403, 'permission_denied'], name)
      assert.equal(await exists(`by-${name}`), false)
      const options = await call(gw, 'OPTIONS', 'users/', undefined, as(name))
      assert.equal(options.body.actions?.POST, undefined, name)
    }
    const options = await call(gw, 'OPTIONS', 'users/', undefined, as('orgadmin'))
    assert.ok(options.body.actions?.POST?.username, JSON.stringify(options.body))
  })
})
