import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A team given a role must be one the giver sees, as django-ansible-base's role_team_assignments take their team
 * from the teams the caller may view: a team admin cannot make another team's members members of theirs without
 * seeing that team.
 */
describe('giving a role to a team the giver does not see', () => {
  let gw: TestGateway
  let lab: number
  let field: number
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'labadmin', password: 'labadmin-password-long' })
    const research = await createOrgAndTeam(gw, 'Research', 'Lab')
    lab = research.team!
    field = (await call(gw, 'POST', 'teams/', { name: 'Field', organization: research.organization })).body.id
    assert.equal((await grant(gw, 'labadmin', 'Team Admin', lab)).status, 201)
  })
  after(() => gw.close())

  it('refuses it with 403 permission_denied, as for an object the giver does not see, and changes nothing', async () => {
    assert.equal((await call(gw, 'GET', `teams/${field}/`, undefined, as('labadmin'))).status, 404, 'the team admin does not see Field')
    const refused = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Member'), team: field, object_id: lab }, as('labadmin'))
    assert.equal(refused.status, 403)
    assert.equal(refused.body.code, 'permission_denied')
    assert.equal((await call(gw, 'GET', `role_team_assignments/?team=${field}`)).body.count, 0)
  })

  it('lets a giver who sees the team give it', async () => {
    assert.equal((await grant(gw, 'labadmin', 'Team Member', field)).status, 201)
    const given = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Member'), team: field, object_id: lab }, as('labadmin'))
    assert.equal(given.status, 201, JSON.stringify(given.body))
  })
})
