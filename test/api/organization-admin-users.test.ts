import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant, userId } from '../helpers/access.ts'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * The platform lets an organization's admins change and delete the records of its members: django-ansible-base's
 * AnsibleBaseUserPermissions asks can_change_user (ansible_base/rbac/policies.py), which answers yes when the caller
 * holds change_organization on every organization the user is a member of, never for a superuser or a user in no
 * organization; only a superuser makes anyone a superuser (CommonUserSerializer.validate_is_superuser). A user the
 * caller cannot see is 404, one they see but may not change 403 (AnsibleBaseObjectPermissions).
 */
describe('organization admins and the records of their members', () => {
  let gw: TestGateway
  let alpha: { organization: number; team: number | undefined }
  let beta: { organization: number; team: number | undefined }
  const ids: Record<string, number> = {}
  const password = (name: string) => `${name}-password-long`
  const as = (name: string) => ({ authorization: basic(name, password(name)) })

  before(async () => {
    gw = await startGateway({ config: demoWithRuledServices({ payroll: [{ allow: { users: ['named'] } }] }) })
    for (const name of ['orgadmin', 'mia', 'max', 'plain', 'loner', 'both', 'watcher', 'betateam', 'alphaadmin2', 'gone']) {
      ids[name] = (await gw.app.accounts.create({ username: name, password: password(name) })).id
    }
    ids.admin = await userId(gw, 'admin')
    alpha = await createOrgAndTeam(gw, 'Alpha', 'AlphaTeam')
    beta = await createOrgAndTeam(gw, 'Beta', 'BetaTeam')
    for (const [name, role, on] of [
      ['orgadmin', 'Organization Admin', alpha.organization],
      ['alphaadmin2', 'Organization Admin', alpha.organization],
      ['mia', 'Organization Member', alpha.organization],
      ['max', 'Organization Member', alpha.organization],
      ['plain', 'Organization Member', alpha.organization],
      ['both', 'Organization Member', alpha.organization],
      ['both', 'Organization Member', beta.organization],
      ['watcher', 'Organization Member', alpha.organization],
      ['watcher', 'Platform Auditor', undefined],
      ['betateam', 'Organization Member', alpha.organization],
      ['betateam', 'Team Admin', beta.team],
      ['gone', 'Organization Member', alpha.organization],
    ] as const) assert.equal((await grant(gw, name, role, on)).status, 201, `${name} ${role}`)
  })
  after(() => gw.close())

  it('changes the names, e-mail address, password and active flag of a member of their organization', async () => {
    const changed = await call(gw, 'PATCH', `users/${ids.mia}/`, { first_name: 'Mia', last_name: 'Member', email: 'mia@example.com', is_active: true }, as('orgadmin'))
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    assert.deepEqual([changed.body.first_name, changed.body.last_name, changed.body.email], ['Mia', 'Member', 'mia@example.com'])
    // What the collection's user module sends: the whole record, the username as it is.
    const put = await call(gw, 'PUT', `users/${ids.max}/`, { username: 'max', first_name: 'Max', password: 'max-new-password-long', is_superuser: false, is_active: true }, as('orgadmin'))
    assert.equal(put.status, 200, JSON.stringify(put.body))
    assert.equal((await call(gw, 'GET', 'me/', undefined, { authorization: basic('max', 'max-new-password-long') })).status, 200)
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('max'))).status, 401)
    const disabled = await call(gw, 'PATCH', `users/${ids.alphaadmin2}/`, { is_active: false }, as('orgadmin'))
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body))
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('alphaadmin2'))).status, 401)
    // The trail writes its entries in batches: what it holds is in the database once flushed.
    await gw.app.audit.flush()
    const activity = await call(gw, 'GET', `activitystream/?order_by=-id&object_id=${ids.mia}&created_by=${ids.orgadmin}`)
    assert.ok(activity.body.results.some((entry: any) => entry.operation === 'update' && entry.summary_fields.content_object.name === 'mia'), JSON.stringify(activity.body))
  })

  it('never makes a member superuser, renames them, or gives them an address another account signs in with', async () => {
    for (const [method, body] of [['PATCH', { is_superuser: true }], ['PUT', { username: 'mia', is_superuser: true }], ['PATCH', { username: 'mia2' }], ['PUT', { username: 'mia2' }]] as const) {
      const refused = await call(gw, method, `users/${ids.mia}/`, body, as('orgadmin'))
      assert.equal(refused.status, 403, `${method} ${JSON.stringify(body)}`)
      assert.equal(refused.body.code, 'permission_denied')
    }
    assert.equal((await call(gw, 'PATCH', `users/${ids.plain}/`, { email: 'plain@example.com' })).status, 200)
    const taken = await call(gw, 'PATCH', `users/${ids.mia}/`, { email: 'PLAIN@example.com' }, as('orgadmin'))
    assert.equal(taken.status, 400)
    assert.ok(taken.body.errors.email)
    const mia = await call(gw, 'GET', `users/${ids.mia}/`)
    assert.deepEqual([mia.body.username, mia.body.is_superuser, mia.body.email], ['mia', false, 'mia@example.com'])
  })

  it('cannot tell whether a password is a member\'s: one the policy refuses is refused, the member\'s own too', async () => {
    const setPolicy = async (policy: Record<string, unknown>) => assert.equal((await call(gw, 'PATCH', 'settings/password/', policy)).status, 200)
    // A password set under a looser policy than today's, which its owner may keep using.
    await setPolicy({ local_password_min_length: 0, local_password_refuse_common: false })
    try {
      assert.equal((await call(gw, 'PATCH', `users/${ids.plain}/`, { password: 'sunshine' })).status, 200)
    } finally {
      await setPolicy({ local_password_min_length: 12, local_password_refuse_common: true })
    }
    const answers = []
    for (const guess of ['letmein', 'sunshine']) {
      const answer = await call(gw, 'PATCH', `users/${ids.plain}/`, { password: guess }, as('orgadmin'))
      answers.push([answer.status, Object.keys(answer.body.errors ?? {})])
    }
    assert.deepEqual(answers, [[400, ['password']], [400, ['password']]])
    assert.equal((await call(gw, 'GET', 'me/', undefined, { authorization: basic('plain', 'sunshine') })).status, 200, 'the password stays')
    // A superuser (as the collection's user module sends the whole record, password included, on every run) and the
    // member themselves still keep it as no change.
    assert.equal((await call(gw, 'PATCH', `users/${ids.plain}/`, { password: 'sunshine' })).status, 200)
    assert.equal((await call(gw, 'PATCH', `users/${ids.plain}/`, { password: 'sunshine' }, { authorization: basic('plain', 'sunshine') })).status, 200)
    // One the policy takes that is the member's is no change for their admin either.
    assert.equal((await call(gw, 'PATCH', `users/${ids.plain}/`, { password: password('plain') })).status, 200)
    const kept = await call(gw, 'PATCH', `users/${ids.plain}/`, { password: password('plain') }, as('orgadmin'))
    assert.equal(kept.status, 200, JSON.stringify(kept.body))
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('plain'))).status, 200)
  })

  it('changes no superuser, no user outside their organizations, and no one holding a role beyond them', async () => {
    const before = new Map<string, any>()
    for (const name of ['admin', 'loner', 'both', 'watcher', 'betateam']) before.set(name, (await call(gw, 'GET', `users/${ids[name]}/`)).body)
    for (const name of ['admin', 'loner', 'both', 'watcher', 'betateam']) {
      for (const body of [{ first_name: 'Mallory' }, { password: 'taken-over-password' }, { is_active: false }]) {
        const refused = await call(gw, 'PATCH', `users/${ids[name]}/`, body, as('orgadmin'))
        assert.equal(refused.status, 403, `${name} ${JSON.stringify(body)}: ${refused.status}`)
        assert.equal(refused.body.code, 'permission_denied')
      }
      assert.equal((await call(gw, 'DELETE', `users/${ids[name]}/`, undefined, as('orgadmin'))).status, 403, `DELETE ${name}`)
      const now = (await call(gw, 'GET', `users/${ids[name]}/`)).body
      assert.deepEqual([now.first_name, now.is_active, now.modified], [before.get(name).first_name, true, before.get(name).modified], name)
    }
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('loner'))).status, 200)
  })

  it('takes over no account holding a permission the caller lacks, as a custom role giving change_organization alone', async () => {
    const custom = await call(gw, 'POST', 'role_definitions/', { name: 'Alpha Editor', content_type: 'shared.organization', permissions: ['shared.view_organization', 'shared.change_organization'] })
    assert.equal(custom.status, 201, JSON.stringify(custom.body))
    for (const name of ['editor', 'realadmin']) ids[name] = (await gw.app.accounts.create({ username: name, password: password(name) })).id
    assert.equal((await grant(gw, 'editor', 'Alpha Editor', alpha.organization)).status, 201)
    assert.equal((await grant(gw, 'realadmin', 'Organization Admin', alpha.organization)).status, 201)
    // A new password for Alpha's real admin would give the editor delete_organization, add_team and every team.
    for (const body of [{ password: 'taken-over-password' }, { is_active: false }]) {
      const refused = await call(gw, 'PATCH', `users/${ids.realadmin}/`, body, as('editor'))
      assert.equal(refused.status, 403, `${JSON.stringify(body)}: ${refused.status}`)
      assert.equal(refused.body.code, 'permission_denied')
    }
    assert.equal((await call(gw, 'DELETE', `users/${ids.realadmin}/`, undefined, as('editor'))).status, 403)
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('realadmin'))).status, 200)
    // An admin holding all the role gives changes them, as before.
    assert.equal((await call(gw, 'PATCH', `users/${ids.realadmin}/`, { first_name: 'Real' }, as('orgadmin'))).status, 200)
  })

  it('takes over no member an access rule names by username, whose services the caller may not reach', async () => {
    ids.named = (await gw.app.accounts.create({ username: 'named', password: password('named') })).id
    assert.equal((await grant(gw, 'named', 'Organization Member', alpha.organization)).status, 201)
    assert.equal((await gw.fetch('/api/payroll/', { headers: as('named') })).status, 200)
    assert.equal((await gw.fetch('/api/payroll/', { headers: as('orgadmin') })).status, 403)
    for (const body of [{ password: 'taken-over-password' }, { first_name: 'Mallory' }]) {
      const refused = await call(gw, 'PATCH', `users/${ids.named}/`, body, as('orgadmin'))
      assert.equal(refused.status, 403, `${JSON.stringify(body)}: ${refused.status}`)
      assert.equal(refused.body.code, 'permission_denied')
    }
    assert.equal((await call(gw, 'DELETE', `users/${ids.named}/`, undefined, as('orgadmin'))).status, 403)
    assert.equal((await gw.fetch('/api/payroll/', { headers: as('named') })).status, 200)
  })

  it('answers 404 for a user the caller cannot see and 403 for one they see but may not change, as the platform does', async () => {
    // plain, a member of Alpha, sees Alpha's members, the superusers and themselves; loner is in no organization.
    for (const method of ['PATCH', 'PUT']) {
      const hidden = await call(gw, method, `users/${ids.loner}/`, { username: 'loner', first_name: 'X' }, as('plain'))
      assert.equal(hidden.status, 404, `${method} hidden`)
      assert.equal(hidden.body.code, 'not_found')
      assert.equal((await call(gw, method, 'users/987654/', { username: 'nobody' }, as('plain'))).status, 404, `${method} missing`)
      const seen = await call(gw, method, `users/${ids.mia}/`, { username: 'mia', first_name: 'X' }, as('plain'))
      assert.equal(seen.status, 403, `${method} seen`)
      assert.equal(seen.body.code, 'permission_denied')
    }
    assert.equal((await call(gw, 'DELETE', `users/${ids.loner}/`, undefined, as('plain'))).status, 404)
    assert.equal((await call(gw, 'DELETE', 'users/987654/', undefined, as('plain'))).status, 404)
    assert.equal((await call(gw, 'DELETE', `users/${ids.mia}/`, undefined, as('plain'))).status, 403)
    assert.equal((await call(gw, 'DELETE', `users/${ids.admin}/`, undefined, as('plain'))).status, 403)
    assert.equal((await call(gw, 'GET', `users/${ids.mia}/`)).body.first_name, 'Mia')
  })

  it('deletes a member of their organization, never themselves', async () => {
    const self = await call(gw, 'DELETE', `users/${ids.orgadmin}/`, undefined, as('orgadmin'))
    assert.equal(self.status, 403)
    assert.equal(self.body.code, 'self_lockout')
    assert.equal((await call(gw, 'DELETE', `users/${ids.gone}/`, undefined, as('orgadmin'))).status, 204)
    assert.equal((await call(gw, 'GET', `users/${ids.gone}/`, undefined, adminAuth)).status, 404)
  })
})
