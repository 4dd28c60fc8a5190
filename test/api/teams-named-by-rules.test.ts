import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * Access rules and membership mappings name teams and organizations: renaming or deleting one takes it out of the
 * rules that name it, a deny rule among them, and out of the mappings that grant and revoke it. Only superusers, who
 * answer for the configuration, may do that to a name the configuration uses.
 */
describe('renaming and deleting teams and organizations the configuration names', () => {
  let gw: TestGateway
  const ids: Record<string, number> = {}
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  const deploy = (user: string) => gw.fetch('/api/deploy/x', { headers: as(user) })

  before(async () => {
    gw = await startGateway({
      config: demoWithRuledServices({
        deploy: [
          { deny: { teams: [{ organization: 'Platform', team: 'Contractors' }] } },
          { allow: { teams: ['Helpers'] } },
          { allow: { organizations: ['Platform'] } },
          { allow: { roles: [{ role: 'Organization Admin', organization: 'Finance' }] } },
          { allow: { organizations: ['Reserved'] } },
        ],
      }),
    })
    for (const name of ['contractor', 'platformadmin', 'sandboxadmin', 'crewadmin', 'outpostadmin']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Contractors')
    const sandbox = await createOrgAndTeam(gw, 'Sandbox', 'Helpers')
    ids.scratch = (await call(gw, 'POST', 'teams/', { name: 'Scratch', organization: sandbox.organization })).body.id
    const finance = await createOrgAndTeam(gw, 'Finance')
    Object.assign(ids, { platform: platform.organization, contractors: platform.team, sandbox: sandbox.organization, helpers: sandbox.team, finance: finance.organization })
    const tools = await call(gw, 'POST', 'teams/', { name: 'Tools', organization: platform.organization })
    ids.tools = tools.body.id
    assert.equal((await grant(gw, 'contractor', 'Team Admin', platform.team)).status, 201)
    assert.equal((await grant(gw, 'contractor', 'Organization Member', platform.organization)).status, 201)
    assert.equal((await grant(gw, 'platformadmin', 'Organization Admin', platform.organization)).status, 201)
    assert.equal((await grant(gw, 'sandboxadmin', 'Organization Admin', sandbox.organization)).status, 201)
    const outpost = await createOrgAndTeam(gw, 'Outpost', 'Crew')
    Object.assign(ids, { outpost: outpost.organization, crew: outpost.team })
    assert.equal((await grant(gw, 'crewadmin', 'Team Admin', outpost.team)).status, 201)
    assert.equal((await grant(gw, 'outpostadmin', 'Organization Admin', outpost.organization)).status, 201)
  })
  after(() => gw.close())

  it('refuses a team admin renaming or deleting their team out of a deny rule, and changes nothing', async () => {
    assert.equal((await deploy('contractor')).status, 403)
    const renamed = await call(gw, 'PATCH', `teams/${ids.contractors}/`, { name: 'Partners' }, as('contractor'))
    assert.equal(renamed.status, 403)
    assert.equal(renamed.body.code, 'permission_denied')
    const deleted = await call(gw, 'DELETE', `teams/${ids.contractors}/`, undefined, as('contractor'))
    assert.equal(deleted.status, 403)
    assert.equal(deleted.body.code, 'permission_denied')
    assert.equal((await call(gw, 'GET', `teams/${ids.contractors}/`)).body.name, 'Contractors')
    assert.equal((await deploy('contractor')).status, 403)
  })

  it('refuses an organization admin renaming a team a rule names alone, or renaming or deleting an organization a rule names', async () => {
    const renamed = await call(gw, 'PATCH', `teams/${ids.helpers}/`, { name: 'Assistants' }, as('sandboxadmin'))
    assert.equal(renamed.status, 403)
    assert.equal(renamed.body.code, 'permission_denied')
    assert.equal((await call(gw, 'GET', `teams/${ids.helpers}/`)).body.name, 'Helpers')
    assert.equal((await call(gw, 'DELETE', `organizations/${ids.sandbox}/`, undefined, as('sandboxadmin'))).status, 403, 'with a team a rule names')
    assert.equal((await call(gw, 'PATCH', `organizations/${ids.platform}/`, { name: 'Platform2' }, as('platformadmin'))).status, 403)
    assert.equal((await call(gw, 'DELETE', `organizations/${ids.platform}/`, undefined, as('platformadmin'))).status, 403)
    assert.equal((await call(gw, 'GET', `organizations/${ids.platform}/`)).body.name, 'Platform')
  })

  it('refuses a rename into a name the configuration uses to whoever could not create it: a team admin, an organization admin', async () => {
    assert.equal((await deploy('crewadmin')).status, 403)
    const team = await call(gw, 'PATCH', `teams/${ids.crew}/`, { name: 'Helpers' }, as('crewadmin'))
    assert.equal(team.status, 403, 'a team admin may not create a team, so not one a rule names alone')
    assert.equal(team.body.code, 'permission_denied')
    assert.equal((await call(gw, 'PUT', `teams/${ids.crew}/`, { name: 'Helpers', organization: ids.outpost }, as('crewadmin'))).status, 403)
    assert.equal((await call(gw, 'GET', `teams/${ids.crew}/`)).body.name, 'Crew')
    assert.equal((await deploy('crewadmin')).status, 403)
    assert.equal((await deploy('outpostadmin')).status, 403)
    const organization = await call(gw, 'PATCH', `organizations/${ids.outpost}/`, { name: 'Reserved' }, as('outpostadmin'))
    assert.equal(organization.status, 403, 'only superusers create organizations, so only they rename one into a name a rule uses')
    assert.equal(organization.body.code, 'permission_denied')
    assert.equal((await call(gw, 'GET', `organizations/${ids.outpost}/`)).body.name, 'Outpost')
    assert.equal((await deploy('outpostadmin')).status, 403)
    assert.equal((await call(gw, 'PATCH', `teams/${ids.crew}/`, { name: 'Helpers' }, as('outpostadmin'))).status, 200, 'its organization\'s admin could create it')
    assert.equal((await call(gw, 'PATCH', `teams/${ids.crew}/`, { name: 'Crew' })).status, 200)
  })

  it('lets an organization admin rename and delete what no rule names, and describe what a rule names', async () => {
    assert.equal((await call(gw, 'PATCH', `teams/${ids.scratch}/`, { name: 'Sketch' }, as('sandboxadmin'))).status, 200)
    assert.equal((await call(gw, 'PATCH', `teams/${ids.tools}/`, { description: 'build tools' }, as('platformadmin'))).status, 200)
    assert.equal((await call(gw, 'PATCH', `teams/${ids.contractors}/`, { name: 'Contractors', description: 'same name' }, as('platformadmin'))).status, 200)
    assert.equal((await call(gw, 'PATCH', `organizations/${ids.sandbox}/`, { name: 'Sandbox2' }, as('sandboxadmin'))).status, 200)
    assert.equal((await call(gw, 'DELETE', `teams/${ids.tools}/`, undefined, as('platformadmin'))).status, 204)
  })

  it('lets a superuser rename what a rule names; the rule then judges by the new name', async () => {
    assert.equal((await call(gw, 'PATCH', `organizations/${ids.finance}/`, { name: 'Treasury' })).status, 200)
    assert.equal((await call(gw, 'PATCH', `teams/${ids.contractors}/`, { name: 'Partners' })).status, 200)
    assert.equal((await deploy('contractor')).status, 200, 'no longer in the team the deny rule names; a member of Platform')
  })
})
