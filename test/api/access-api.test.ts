import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId, userId } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the access API', () => {
  let gw: TestGateway
  let research: { organization: number; team: number | undefined }
  let ops: { organization: number; team: number | undefined }
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })

  before(async () => {
    gw = await startGateway()
    for (const name of ['orgadmin', 'teamadmin', 'member', 'plain', 'auditor']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    research = await createOrgAndTeam(gw, 'Research', 'Lab')
    ops = await createOrgAndTeam(gw, 'Ops', 'Oncall')
    await grant(gw, 'orgadmin', 'Organization Admin', research.organization)
    await grant(gw, 'teamadmin', 'Team Admin', research.team)
    await grant(gw, 'auditor', 'Platform Auditor')
  })
  after(() => gw.close())

  it('lists the managed role definitions in the platform\'s shape', async () => {
    const { status, body } = await call(gw, 'GET', 'role_definitions/?page_size=2')
    assert.equal(status, 200)
    assert.equal(body.count, 5)
    assert.equal(body.results.length, 2)
    assert.equal(body.next, '/api/gateway/v1/role_definitions/?page_size=2&page=2')
    const [auditor] = body.results
    assert.deepEqual([auditor.id, auditor.name, auditor.managed, auditor.content_type], [1, 'Platform Auditor', true, null])
    const admin = (await call(gw, 'GET', 'role_definitions/?name=Organization+Admin')).body.results[0]
    assert.deepEqual([admin.name, admin.managed, admin.content_type], ['Organization Admin', true, 'shared.organization'])
    assert.ok(admin.permissions.includes('shared.change_team'))
  })

  it('shows teams with their organization, filtered by organization', async () => {
    const { body } = await call(gw, 'GET', `teams/?organization=${ops.organization}`)
    assert.deepEqual(body.results.map((t: any) => [t.name, t.organization, t.summary_fields.organization.name]), [['Oncall', ops.organization, 'Ops']])
    const nested = await call(gw, 'GET', `organizations/${research.organization}/teams/`)
    assert.deepEqual(nested.body.results.map((t: any) => t.name), ['Lab'])
  })

  it('lets an organization admin add teams and members in their organization, and nowhere else', async () => {
    const team = await call(gw, 'POST', 'teams/', { name: 'Field', organization: research.organization }, as('orgadmin'))
    assert.equal(team.status, 201)
    assert.equal((await grant(gw, 'member', 'Team Member', team.body.id, as('orgadmin'))).status, 201)
    const elsewhere = await call(gw, 'POST', 'teams/', { name: 'Sneaky', organization: ops.organization }, as('orgadmin'))
    assert.equal(elsewhere.status, 403)
    assert.equal(elsewhere.body.code, 'permission_denied')
    assert.equal((await grant(gw, 'member', 'Team Member', ops.team, as('orgadmin'))).status, 403)
    assert.equal((await call(gw, 'GET', 'teams/?name=Sneaky')).body.count, 0)
  })

  it('lets a team admin manage their team\'s members without being a superuser', async () => {
    const given = await grant(gw, 'plain', 'Team Member', research.team, as('teamadmin'))
    assert.equal(given.status, 201)
    assert.deepEqual((await call(gw, 'GET', `users/${await userId(gw, 'plain')}/teams/`, undefined, as('plain'))).body.results.map((t: any) => t.name), ['Lab'])
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${given.body.id}/`, undefined, as('teamadmin'))).status, 204)
    assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'plain')}/teams/`)).body.count, 0)
  })

  it('refuses a non-admin changing a team, and changes nothing', async () => {
    const unseen = await call(gw, 'PATCH', `teams/${research.team}/`, { name: 'Renamed' }, as('plain'))
    assert.equal(unseen.status, 404, 'a team the caller does not see')
    assert.equal(unseen.body.code, 'not_found')
    const member = await grant(gw, 'plain', 'Team Member', research.team)
    const refused = await call(gw, 'PATCH', `teams/${research.team}/`, { name: 'Renamed' }, as('plain'))
    assert.equal(refused.status, 403, 'a member sees the team, and may not change it')
    assert.equal(refused.body.code, 'permission_denied')
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${member.body.id}/`)).status, 204)
    assert.equal((await grant(gw, 'plain', 'Team Member', research.team, as('plain'))).status, 403)
    assert.equal((await call(gw, 'GET', `teams/${research.team}/`)).body.name, 'Lab')
  })

  it('takes a team update that repeats the team\'s own organization, as PUT sends every field', async () => {
    const { team } = await createOrgAndTeam(gw, 'Repeated', 'Same')
    const { organization } = (await call(gw, 'GET', `teams/${team}/`)).body
    for (const method of ['PATCH', 'PUT']) {
      const updated = await call(gw, method, `teams/${team}/`, { name: `Same ${method}`, description: 'kept', organization })
      assert.equal(updated.status, 200, JSON.stringify(updated.body))
      assert.deepEqual([updated.body.name, updated.body.organization], [`Same ${method}`, organization])
    }
    assert.equal((await call(gw, 'GET', `teams/${team}/`)).body.name, 'Same PUT')
  })

  it('answers a role given again with the assignment already held, as the platform does, and audits it once', async () => {
    const given = { role_definition: await roleId(gw, 'Team Member'), user: await userId(gw, 'plain'), object_id: ops.team }
    const first = await call(gw, 'POST', 'role_user_assignments/', given)
    assert.equal(first.status, 201)
    const again = await call(gw, 'POST', 'role_user_assignments/', given)
    assert.equal(again.status, 201)
    assert.equal(again.body.id, first.body.id)
    const teamGiven = { role_definition: await roleId(gw, 'Organization Member'), team: ops.team, object_id: ops.organization }
    const teamFirst = await call(gw, 'POST', 'role_team_assignments/', teamGiven)
    assert.equal((await call(gw, 'POST', 'role_team_assignments/', teamGiven)).body.id, teamFirst.body.id)
    await gw.app.audit.flush()
    for (const [kind, id] of [['role_user_assignment', first.body.id], ['role_team_assignment', teamFirst.body.id]]) {
      const created = await call(gw, 'GET', `activitystream/?operation=create&content_type=${kind}&object_id=${id}`)
      assert.equal(created.body.count, 1, kind)
    }
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${first.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'DELETE', `role_team_assignments/${teamFirst.body.id}/`)).status, 204)
  })

  it('refuses a role to a missing user with 400 naming the field', async () => {
    const { status, body } = await call(gw, 'POST', 'role_user_assignments/', { role_definition: await roleId(gw, 'Team Member'), user: 99999, object_id: research.team })
    assert.equal(status, 400)
    assert.equal(body.code, 'invalid')
    assert.ok(body.errors.user)
  })

  it('refuses giving a team a role in another organization, and changes nothing', async () => {
    const before = (await call(gw, 'GET', 'role_team_assignments/')).body.count
    const { status, body } = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Member'), team: ops.team, object_id: research.organization })
    assert.equal(status, 400)
    assert.ok(body.errors.team)
    assert.equal((await call(gw, 'GET', 'role_team_assignments/')).body.count, before)
    const moved = await call(gw, 'PATCH', `teams/${ops.team}/`, { organization: research.organization })
    assert.equal(moved.status, 400)
    assert.ok(moved.body.errors.organization)
  })

  it('refuses unknown fields, a missing object and a role without its object', async () => {
    const unknown = await call(gw, 'POST', 'teams/', { name: 'X', organization: research.organization, colour: 'red' })
    assert.equal(unknown.status, 400)
    assert.deepEqual(unknown.body.errors.colour, ['Unknown field.'])
    const noOrg = await call(gw, 'POST', 'teams/', { name: 'X', organization: 424242 })
    assert.equal(noOrg.status, 400)
    assert.ok(noOrg.body.errors.organization)
    const noObject = await call(gw, 'POST', 'role_user_assignments/', { role_definition: await roleId(gw, 'Team Member'), user: await userId(gw, 'plain') })
    assert.equal(noObject.status, 400)
    assert.ok(noObject.body.errors.object_id)
  })

  it('makes custom role definitions from the fixed permission list only, and keeps managed ones unchanged', async () => {
    const made = await call(gw, 'POST', 'role_definitions/', { name: 'Team Viewer', content_type: 'shared.team', permissions: ['shared.view_team'] })
    assert.equal(made.status, 201)
    assert.equal(made.body.managed, false)
    const wrong = await call(gw, 'POST', 'role_definitions/', { name: 'Bad', content_type: 'shared.team', permissions: ['shared.delete_organization', 'shared.fly'] })
    assert.equal(wrong.status, 400)
    assert.ok(wrong.body.errors.permissions)
    const managed = await call(gw, 'PATCH', `role_definitions/${await roleId(gw, 'Team Member')}/`, { name: 'Renamed' })
    assert.equal(managed.status, 400)
    assert.equal(managed.body.code, 'managed_role')
    assert.equal((await call(gw, 'POST', 'role_definitions/', { name: 'Nope', content_type: 'shared.team', permissions: [] }, as('orgadmin'))).status, 403)
  })

  it('refuses a Platform Auditor every write of access control and accounts, and changes nothing', async () => {
    const auditor = as('auditor')
    const plain = await userId(gw, 'plain')
    const anAssignment = (await call(gw, 'GET', 'role_user_assignments/')).body.results[0].id
    const writes: [string, string, unknown][] = [
      ['POST', 'role_user_assignments/', { role_definition: await roleId(gw, 'Team Member'), user: plain, object_id: research.team }],
      ['POST', 'role_user_assignments/', { role_definition: await roleId(gw, 'Platform Auditor'), user: plain }],
      ['DELETE', `role_user_assignments/${anAssignment}/`, undefined],
      ['POST', 'role_definitions/', { name: 'Auditor Made', content_type: 'shared.team', permissions: ['shared.view_team'] }],
      ['DELETE', `organizations/${ops.organization}/`, undefined],
      ['PATCH', `users/${plain}/`, { is_superuser: true }],
      ['PUT', `users/${await userId(gw, 'auditor')}/`, { is_superuser: true }],
      ['POST', 'users/', { username: 'auditor-made', is_superuser: true }],
    ]
    for (const [method, path, body] of writes) {
      const { status, body: answer } = await call(gw, method, path, body, auditor)
      assert.equal(status, 403, `${method} ${path}: ${JSON.stringify(answer)}`)
    }
    assert.equal((await call(gw, 'GET', `users/${plain}/`)).body.is_superuser, false)
    assert.equal((await call(gw, 'GET', 'users/?username=auditor-made')).body.count, 0)
    assert.equal((await call(gw, 'GET', `role_user_assignments/${anAssignment}/`)).status, 200)
    assert.equal((await call(gw, 'GET', `organizations/${ops.organization}/`)).status, 200)
    const me = await call(gw, 'PATCH', 'me/', { is_superuser: true }, as('plain'))
    assert.equal(me.status, 400, 'nor may anyone make themselves one through me/')
  })

  it('lets a Platform Auditor read everything and change nothing; the flag and the role agree', async () => {
    const auditor = as('auditor')
    assert.equal((await call(gw, 'GET', 'settings/', undefined, auditor)).status, 200)
    assert.equal((await call(gw, 'GET', 'sessions/', undefined, auditor)).status, 200)
    assert.equal((await call(gw, 'PATCH', 'settings/', { session_cookie_age: 1200 }, auditor)).status, 403)
    assert.equal((await call(gw, 'POST', 'organizations/', { name: 'Audit' }, auditor)).status, 403)
    assert.equal((await call(gw, 'PATCH', `teams/${research.team}/`, { description: 'x' }, auditor)).status, 403)
    const id = await userId(gw, 'auditor')
    assert.equal((await call(gw, 'GET', `users/${id}/`)).body.is_system_auditor, true)
    const held = await call(gw, 'GET', `role_user_assignments/?user=${id}`)
    assert.equal(held.body.results[0].summary_fields.role_definition.name, 'Platform Auditor')
    assert.equal(held.body.results[0].object_id, null)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${held.body.results[0].id}/`)).status, 204)
    assert.equal((await call(gw, 'GET', `users/${id}/`)).body.is_system_auditor, false)
    assert.equal((await call(gw, 'GET', 'settings/', undefined, auditor)).status, 403)
  })

  it('shows a user\'s organizations through the roles they hold, also through a team', async () => {
    const { body: team } = await call(gw, 'GET', `teams/${ops.team}/`)
    assert.equal((await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Member'), team: team.id, object_id: ops.organization })).status, 201)
    await grant(gw, 'member', 'Team Member', ops.team)
    const orgs = await call(gw, 'GET', `users/${await userId(gw, 'member')}/organizations/`)
    assert.deepEqual(orgs.body.results.map((o: any) => o.name), ['Ops'])
  })

  it('filters a user\'s teams and organizations as the other lists, and refuses a filter it does not know', async () => {
    const { team } = await createOrgAndTeam(gw, 'Filtered', 'Sieve')
    await grant(gw, 'member', 'Team Member', team)
    const member = await userId(gw, 'member')
    const teams = await call(gw, 'GET', `users/${member}/teams/?name__icontains=siev`)
    assert.equal(teams.status, 200)
    assert.deepEqual(teams.body.results.map((t: any) => t.name), ['Sieve'])
    assert.ok((await call(gw, 'GET', `users/${member}/organizations/`)).body.count > 0)
    const organizations = await call(gw, 'GET', `users/${member}/organizations/?name=Nowhere`)
    assert.deepEqual([organizations.status, organizations.body.count], [200, 0])
    for (const list of ['teams', 'organizations']) {
      const unknown = await call(gw, 'GET', `users/${member}/${list}/?team_id=${team}`)
      assert.equal(unknown.status, 400, list)
      assert.equal(unknown.body.code, 'invalid')
      assert.ok(unknown.body.errors.team_id, list)
    }
  })

  it('says which services a user may reach, by the same rules the gateway runs', async () => {
    const { body } = await call(gw, 'GET', `users/${await userId(gw, 'plain')}/access/`, undefined, as('plain'))
    const byName = Object.fromEntries(body.services.map((s: any) => [s.service, s]))
    assert.equal(byName.controller.allowed, true)
    assert.equal(byName.controller.has_rules, false)
    assert.equal(byName.eda.allowed, false)
    assert.equal(byName.eda.rule, null)
    const admin = await call(gw, 'GET', `users/${await userId(gw, 'admin')}/access/`)
    assert.equal(admin.body.services.find((s: any) => s.service === 'eda').rule, '1: allow superuser=true')
  })

  it('deletes an organization with its teams, for superusers and its admins only', async () => {
    assert.equal((await call(gw, 'DELETE', `organizations/${ops.organization}/`, undefined, as('orgadmin'))).status, 404, 'another organization, which its admin does not see')
    const opsMember = await grant(gw, 'orgadmin', 'Organization Member', ops.organization)
    assert.equal((await call(gw, 'DELETE', `organizations/${ops.organization}/`, undefined, as('orgadmin'))).status, 403, 'seen, and not theirs to delete')
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${opsMember.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'DELETE', `organizations/${ops.organization}/`)).status, 204)
    assert.equal((await call(gw, 'GET', `teams/${ops.team}/`)).status, 404)
    assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'member')}/organizations/`)).body.count, 0)
  })

  it('describes the lists with OPTIONS, offering POST to those who may create', async () => {
    const forAdmin = await call(gw, 'OPTIONS', 'organizations/')
    assert.equal(forAdmin.status, 200)
    assert.equal(forAdmin.body.name, 'Organization List')
    assert.equal(forAdmin.body.actions.POST.name.required, true)
    assert.equal((await call(gw, 'OPTIONS', 'organizations/', undefined, as('orgadmin'))).body.actions, undefined)
    assert.ok((await call(gw, 'OPTIONS', 'teams/', undefined, as('orgadmin'))).body.actions.POST.organization)
    assert.equal((await call(gw, 'OPTIONS', 'teams/', undefined, as('plain'))).body.actions, undefined)
    assert.ok((await call(gw, 'OPTIONS', 'role_user_assignments/', undefined, as('teamadmin'))).body.actions.POST.role_definition)
  })

  it('answers a duplicate name with 400 naming the field, as the platform does', async () => {
    const { status, body } = await call(gw, 'POST', 'organizations/', { name: 'Research' })
    assert.equal(status, 400)
    assert.equal(body.code, 'invalid')
    assert.ok(body.errors.name)
    const team = await call(gw, 'POST', 'teams/', { name: 'Lab', organization: research.organization })
    assert.equal(team.status, 400)
    assert.ok(team.body.errors.non_field_errors)
  })

  it('refuses giving or taking a role with permissions the giver does not hold, and changes nothing', async () => {
    await gw.app.accounts.create({ username: 'editor', password: 'editor-password-long' })
    await gw.app.accounts.create({ username: 'renamer', password: 'renamer-password-long' })
    const editor = await call(gw, 'POST', 'role_definitions/', { name: 'Organization Editor', content_type: 'shared.organization', permissions: ['shared.view_organization', 'shared.change_organization'] })
    const renamer = await call(gw, 'POST', 'role_definitions/', { name: 'Team Renamer', content_type: 'shared.team', permissions: ['shared.view_team', 'shared.change_team'] })
    assert.equal((await grant(gw, 'editor', 'Organization Editor', research.organization)).status, 201)
    assert.equal((await grant(gw, 'renamer', 'Team Renamer', research.team)).status, 201)
    const before = (await call(gw, 'GET', 'role_user_assignments/')).body.count

    const selfAdmin = await grant(gw, 'editor', 'Organization Admin', research.organization, as('editor'))
    assert.equal(selfAdmin.status, 403)
    assert.equal(selfAdmin.body.code, 'permission_denied')
    assert.equal((await grant(gw, 'renamer', 'Team Admin', research.team, as('renamer'))).status, 403)
    const teamAdmin = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Admin'), team: research.team, object_id: research.team }, as('renamer'))
    assert.equal(teamAdmin.status, 403)
    assert.equal((await call(gw, 'GET', 'role_user_assignments/')).body.count, before)
    assert.equal((await call(gw, 'GET', 'role_team_assignments/?role_definition=' + await roleId(gw, 'Team Admin'))).body.count, 0)

    // What they hold they may still give; the real admins' roles they may not take.
    assert.equal((await grant(gw, 'plain', 'Organization Editor', research.organization, as('editor'))).status, 201)
    const admins = await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'orgadmin')}&role_definition=${await roleId(gw, 'Organization Admin')}`)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${admins.body.results[0].id}/`, undefined, as('editor'))).status, 403)
    assert.equal((await call(gw, 'GET', `role_user_assignments/${admins.body.results[0].id}/`)).status, 200)
    assert.equal(editor.status, 201)
    assert.equal(renamer.status, 201)
  })

  it('refuses the membership of a team to a giver who does not hold the team\'s roles, either way, and changes nothing', async () => {
    for (const name of ['keeper', 'boss']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const { organization: holding, team: admins } = await createOrgAndTeam(gw, 'Holding', 'Admins')
    assert.equal((await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Admin'), team: admins, object_id: holding })).status, 201)
    // Manages the organization's teams and their members, and nothing else of the organization.
    const keeperRole = await call(gw, 'POST', 'role_definitions/', { name: 'Team Keeper', content_type: 'shared.organization', permissions: ['shared.view_organization', 'shared.view_team', 'shared.change_team', 'shared.member_team'] })
    assert.equal(keeperRole.status, 201, JSON.stringify(keeperRole.body))
    assert.equal((await grant(gw, 'keeper', 'Team Keeper', holding)).status, 201)
    const boss = await grant(gw, 'boss', 'Team Member', admins)
    assert.equal(boss.status, 201)
    const before = (await call(gw, 'GET', 'role_user_assignments/')).body.count

    // Membership of the team would make the keeper an organization admin through the team's role.
    const joined = await grant(gw, 'keeper', 'Team Member', admins, as('keeper'))
    assert.equal(joined.status, 403, JSON.stringify(joined.body))
    assert.equal(joined.body.code, 'permission_denied')
    assert.equal((await grant(gw, 'plain', 'Team Member', admins, as('keeper'))).status, 403)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${boss.body.id}/`, undefined, as('keeper'))).status, 403)
    assert.equal((await call(gw, 'GET', 'role_user_assignments/')).body.count, before)
    assert.equal((await call(gw, 'DELETE', `organizations/${holding}/`, undefined, as('keeper'))).status, 403)
    // The keeper still manages a team that holds nothing more; the organization's admins manage this one.
    const { team: plainTeam } = await createOrgAndTeam(gw, 'Kept', 'Crew')
    assert.equal((await grant(gw, 'keeper', 'Team Keeper', (await call(gw, 'GET', `teams/${plainTeam}/`)).body.organization)).status, 201)
    assert.equal((await grant(gw, 'plain', 'Team Member', plainTeam, as('keeper'))).status, 201)
    assert.equal((await grant(gw, 'keeper', 'Team Member', admins, as('boss'))).status, 201)
  })
})
