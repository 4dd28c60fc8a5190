import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant, roleId, userId } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A team given membership of another team (a role with member_team on it, as django-ansible-base's team parents)
 * makes its members members of that team too, with the roles that team holds, however deep and also in a cycle.
 */
describe('teams that are members of other teams', () => {
  let gw: TestGateway
  let platform: number
  const teams: Record<string, number> = {}
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  const giveTeam = async (team: string, role: string, objectId: number) =>
    call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, role), team: teams[team], object_id: objectId })
  const teamsOf = async (username: string) =>
    (await call(gw, 'GET', `users/${await userId(gw, username)}/teams/`)).body.results.map((t: any) => t.name).sort()

  before(async () => {
    gw = await startGateway({
      config: demoWithRuledServices({ core: [{ allow: { teams: [{ organization: 'Platform', team: 'Core' }] } }] }),
    })
    for (const name of ['dev', 'orgadmin', 'cyclist', 'devlead', 'newcomer']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    platform = (await createOrgAndTeam(gw, 'Platform')).organization
    for (const name of ['Developers', 'Engineering', 'Core', 'Ring', 'Loop']) {
      const created = await call(gw, 'POST', 'teams/', { name, organization: platform })
      assert.equal(created.status, 201)
      teams[name] = created.body.id
    }
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', platform)).status, 201)
    // Developers are members of Engineering, which is a member of Core, which holds Organization Member.
    assert.equal((await giveTeam('Developers', 'Team Member', teams.Engineering!)).status, 201)
    assert.equal((await giveTeam('Engineering', 'Team Member', teams.Core!)).status, 201)
    assert.equal((await giveTeam('Core', 'Organization Member', platform)).status, 201)
    assert.equal((await grant(gw, 'dev', 'Team Member', teams.Developers)).status, 201)
    // A custom organization role that manages the members of its teams, without being in any of them.
    const manager = await call(gw, 'POST', 'role_definitions/', { name: 'Member Manager', content_type: 'shared.organization', permissions: ['shared.view_team', 'shared.change_team', 'shared.member_team'] })
    assert.equal(manager.status, 201)
    assert.equal((await grant(gw, 'devlead', 'Member Manager', platform)).status, 201)
  })
  after(() => gw.close())

  it('makes a member of a team a member of the teams it is a member of, with their roles, however deep', async () => {
    assert.deepEqual(await teamsOf('dev'), ['Core', 'Developers', 'Engineering'])
    const organizations = await call(gw, 'GET', `users/${await userId(gw, 'dev')}/organizations/`)
    assert.deepEqual(organizations.body.results.map((o: any) => o.name), ['Platform'])
    assert.equal((await gw.fetch('/api/core/x', { headers: as('dev') })).status, 200, 'a rule naming the team lets them in')
    const seen = await json(await gw.fetch('/api/controller/v2/hosts/', { headers: as('dev') }))
    assert.deepEqual(seen.identity.teams.map((t: any) => t.name).sort(), ['Core', 'Developers', 'Engineering'])
  })

  it('refuses adding members who would get, through the teams above, a role the giver does not hold', async () => {
    const before = await teamsOf('newcomer')
    const refused = await grant(gw, 'newcomer', 'Team Member', teams.Developers, as('devlead'))
    assert.equal(refused.status, 403)
    assert.equal(refused.body.code, 'permission_denied')
    assert.deepEqual(await teamsOf('newcomer'), before)
    const allowed = await grant(gw, 'newcomer', 'Team Member', teams.Ring, as('devlead'))
    assert.equal(allowed.status, 201, 'a team that passes on nothing more')
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${allowed.body.id}/`)).status, 204)
  })

  it('gives and reads memberships of teams that are members of each other, without looping', async () => {
    assert.equal((await giveTeam('Ring', 'Team Member', teams.Loop!)).status, 201)
    assert.equal((await giveTeam('Loop', 'Team Member', teams.Ring!)).status, 201)
    const given = await grant(gw, 'cyclist', 'Team Member', teams.Ring, as('orgadmin'))
    assert.equal(given.status, 201, JSON.stringify(given.body))
    assert.deepEqual(await teamsOf('cyclist'), ['Loop', 'Ring'])
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${given.body.id}/`, undefined, as('orgadmin'))).status, 204)
    assert.deepEqual(await teamsOf('cyclist'), [])
  })
})
