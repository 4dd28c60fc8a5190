import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant, roleId, userId } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A `roles` rule naming a role alone matches it held on anything; one naming the organization (and team) it is held
 * on matches it there only, held directly or through a team, as qualified team rules do for teams.
 */
describe('access rules naming the organization or team a role is held on', () => {
  let gw: TestGateway
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  const status = async (name: string, user: string) => (await gw.fetch(`/api/${name}/x`, { headers: as(user) })).status

  before(async () => {
    gw = await startGateway({
      config: demoWithRuledServices({
        deploy: [{ allow: { roles: [{ role: 'Team Admin', organization: 'Platform', team: 'Automation' }] } }],
        billing: [{ allow: { roles: [{ role: 'Organization Admin', organization: 'Platform' }] } }],
        anywhere: [{ allow: { roles: ['Team Admin'] } }],
      }),
    })
    for (const name of ['lead', 'sandboxlead', 'orgadmin', 'sandboxadmin', 'leader', 'member']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Automation')
    const sandbox = await createOrgAndTeam(gw, 'Sandbox', 'Automation')
    assert.equal((await grant(gw, 'lead', 'Team Admin', platform.team)).status, 201)
    assert.equal((await grant(gw, 'member', 'Team Member', platform.team)).status, 201)
    assert.equal((await grant(gw, 'sandboxlead', 'Team Admin', sandbox.team)).status, 201)
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', platform.organization)).status, 201)
    assert.equal((await grant(gw, 'sandboxadmin', 'Organization Admin', sandbox.organization)).status, 201)
    // A team of Platform that holds Organization Admin on it passes the role to its members.
    const leaders = await call(gw, 'POST', 'teams/', { name: 'Leaders', organization: platform.organization })
    assert.equal(leaders.status, 201)
    assert.equal((await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Admin'), team: leaders.body.id, object_id: platform.organization })).status, 201)
    assert.equal((await grant(gw, 'leader', 'Team Member', leaders.body.id)).status, 201)
  })
  after(() => gw.close())

  it('lets in the holders of the role on that team only, not on a team of the same name elsewhere', async () => {
    assert.equal(await status('deploy', 'lead'), 200)
    assert.equal(await status('deploy', 'sandboxlead'), 403)
    assert.equal(await status('deploy', 'member'), 403, 'another role on the team')
    assert.equal(await status('deploy', 'orgadmin'), 403, 'a role on the organization is not the role on the team')
    const refused = await gw.fetch('/api/deploy/x', { headers: as('sandboxlead') })
    assert.equal((await json(refused)).code, 'access_denied')
  })

  it('lets in the holders of the role on that organization, also through a team that holds it', async () => {
    assert.equal(await status('billing', 'orgadmin'), 200)
    assert.equal(await status('billing', 'leader'), 200)
    assert.equal(await status('billing', 'sandboxadmin'), 403)
    assert.equal(await status('billing', 'lead'), 403)
  })

  it('still matches a role named alone wherever it is held', async () => {
    assert.equal(await status('anywhere', 'lead'), 200)
    assert.equal(await status('anywhere', 'sandboxlead'), 200)
    assert.equal(await status('anywhere', 'orgadmin'), 403)
  })

  it('names the role with where it is held in the rule it reports', async () => {
    const { body } = await call(gw, 'GET', `users/${await userId(gw, 'lead')}/access/`)
    assert.equal(body.services.find((s: any) => s.service === 'deploy').rule, '1: allow roles=Team Admin on Platform/Automation')
  })

  it('follows a rename of the team: the rule names the team, not its id', async () => {
    const team = (await call(gw, 'GET', 'teams/?name=Automation')).body.results
    const automation = team.find((t: any) => t.summary_fields.organization.name === 'Platform')
    assert.equal((await call(gw, 'PATCH', `teams/${automation.id}/`, { name: 'Automation2' })).status, 200)
    try {
      assert.equal(await status('deploy', 'lead'), 403)
    } finally {
      assert.equal((await call(gw, 'PATCH', `teams/${automation.id}/`, { name: 'Automation' })).status, 200)
    }
    assert.equal(await status('deploy', 'lead'), 200)
  })
})
