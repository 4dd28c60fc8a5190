import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A rule naming a team by name alone matches a team of that name in any organization, also one an organization's
 * admin makes in their own; a rule naming the organization too matches only that organization's team.
 */
describe('access rules naming a team with its organization', () => {
  let gw: TestGateway
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })

  before(async () => {
    gw = await startGateway({
      config: demoWithRuledServices({
        deploy: [{ allow: { teams: [{ organization: 'Platform', team: 'Automation' }] } }],
        legacy: [{ allow: { teams: ['Automation'] } }],
      }),
    })
    for (const name of ['automator', 'sandboxer']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Automation')
    const sandbox = await createOrgAndTeam(gw, 'Sandbox')
    assert.equal((await grant(gw, 'automator', 'Team Member', platform.team)).status, 201)
    // Sandbox's admin makes a team of the same name in Sandbox and joins it.
    assert.equal((await grant(gw, 'sandboxer', 'Organization Admin', sandbox.organization)).status, 201)
    const lookalike = await call(gw, 'POST', 'teams/', { name: 'Automation', organization: sandbox.organization }, as('sandboxer'))
    assert.equal(lookalike.status, 201)
    assert.equal((await grant(gw, 'sandboxer', 'Team Member', lookalike.body.id, as('sandboxer'))).status, 201)
  })
  after(() => gw.close())

  it('lets in the members of the organization\'s team only', async () => {
    assert.equal((await gw.fetch('/api/deploy/x', { headers: as('automator') })).status, 200)
    const refused = await gw.fetch('/api/deploy/x', { headers: as('sandboxer') })
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'access_denied')
  })

  it('names the organization and the team in the rule it reports', async () => {
    const { body } = await call(gw, 'GET', `users/${(await call(gw, 'GET', 'users/?username=automator')).body.results[0].id}/access/`)
    assert.equal(body.services.find((s: any) => s.service === 'deploy').rule, '1: allow teams=Platform/Automation')
  })

  it('still matches a name alone in any organization, the lookalike included', async () => {
    assert.equal((await gw.fetch('/api/legacy/jobs/', { method: 'POST', headers: as('sandboxer') })).status, 200)
    assert.equal((await gw.fetch('/api/legacy/jobs/', { method: 'POST', headers: as('automator') })).status, 200)
  })
})
