import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

/** The example, as the demo configuration's eda service has it, with the people it names. */
describe('the demo eda service\'s access rules', () => {
  let gw: TestGateway
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  const eda = (name: string | undefined, method: string, path = '/api/eda/v1/activations/') =>
    gw.fetch(path, { method, headers: name === undefined ? adminAuth : as(name) })

  before(async () => {
    gw = await startGateway({ pollMs: 100 })
    for (const name of ['automator', 'researcher', 'auditor', 'outsider', 'lookalike']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Automation')
    const research = await createOrgAndTeam(gw, 'Research')
    assert.equal((await grant(gw, 'automator', 'Team Member', platform.team)).status, 201)
    assert.equal((await grant(gw, 'researcher', 'Organization Member', research.organization)).status, 201)
    assert.equal((await grant(gw, 'auditor', 'Platform Auditor')).status, 201)
    // Another organization's team of the same name, which an organization admin could make in their own.
    const sandbox = await createOrgAndTeam(gw, 'Sandbox', 'Automation')
    assert.equal((await grant(gw, 'lookalike', 'Team Member', sandbox.team)).status, 201)
  })
  after(() => gw.close())

  it('lets a member of Automation read and write', async () => {
    assert.equal((await eda('automator', 'GET')).status, 200)
    assert.equal((await eda('automator', 'POST')).status, 200)
  })

  it('refuses a member of a team of the same name in another organization: the rule names Platform\'s team', async () => {
    const response = await eda('lookalike', 'GET')
    assert.equal(response.status, 403)
    assert.equal((await json(response)).code, 'access_denied')
  })

  it('lets a member of Research read but not write, and says no rule allowed the write', async () => {
    assert.equal((await eda('researcher', 'GET')).status, 200)
    const post = await eda('researcher', 'POST')
    assert.equal(post.status, 403)
    const body = await json(post)
    assert.equal(body.code, 'access_denied')
    assert.match(body.detail, /No access rule/)
  })

  it('lets a Platform Auditor read and not write', async () => {
    assert.equal((await eda('auditor', 'HEAD')).status, 200)
    assert.equal((await eda('auditor', 'DELETE')).status, 403)
  })

  it('refuses everyone else with 403 access_denied', async () => {
    const response = await eda('outsider', 'GET')
    assert.equal(response.status, 403)
    assert.equal((await json(response)).code, 'access_denied')
  })

  it('denies the admin path to all but superusers, naming the deny rule: the superuser allow comes first', async () => {
    const refused = await eda('automator', 'GET', '/api/eda/v1/admin/settings')
    assert.equal(refused.status, 403)
    assert.match((await json(refused)).detail, /Rule 2 .*deny paths=\/api\/eda\/v1\/admin\/\*/)
    assert.equal((await eda(undefined, 'GET', '/api/eda/v1/admin/settings')).status, 200)
  })

  it('asks anonymous callers to sign in without naming any rule', async () => {
    const response = await gw.fetch('/api/eda/v1/activations/')
    assert.equal(response.status, 401)
    assert.doesNotMatch(await response.text(), /rule/i)
  })

  it('tells the service the caller\'s teams, organizations and roles, in the identity token and a header', async () => {
    const seen = await json(await eda('automator', 'GET'))
    assert.equal(seen.identity.verified, true)
    assert.deepEqual(seen.identity.teams.map((t: { name: string }) => t.name), ['Automation'])
    assert.deepEqual(seen.identity.roles, ['Team Member'])
    assert.equal(seen.headers['x-gatehouse-teams'], 'Automation')
    const researcher = await json(await eda('researcher', 'GET'))
    assert.deepEqual(researcher.identity.organizations.map((o: { name: string }) => o.name), ['Research'])
    assert.equal(researcher.headers['x-gatehouse-teams'], null)
  })

  it('puts teams and organizations in realm access tokens as Keycloak groups, and roles in realm_access', async () => {
    const response = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'automator', password: 'automator-password-long' }),
    })
    assert.equal(response.status, 200)
    const claims = decodeJwt((await json(response)).access_token)
    assert.deepEqual(claims.groups, ['/Platform/Automation'])
    assert.ok((claims.realm_access as { roles: string[] }).roles.includes('Team Member'))
    assert.ok((claims.realm_access as { roles: string[] }).roles.includes('offline_access'))
  })

  it('refuses a member removed from the team on the very next request', async () => {
    const assignments = await call(gw, 'GET', `role_user_assignments/?content_type=shared.team&user=${await userId(gw, 'automator')}`)
    const membership = assignments.body.results.find((a: { summary_fields: { content_object: { name: string } } }) => a.summary_fields.content_object.name === 'Automation')
    assert.equal((await eda('automator', 'POST')).status, 200)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${membership.id}/`)).status, 204)
    assert.equal((await eda('automator', 'POST')).status, 403)
  })

  it('keeps services without rules open to every signed-in caller', async () => {
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: as('outsider') })).status, 200)
  })

  it('passes the identity token with no membership claims for a caller without any', async () => {
    const seen = await json(await gw.fetch('/api/controller/v2/hosts/', { headers: as('outsider') }))
    assert.equal(seen.identity.verified, true)
    assert.deepEqual([seen.identity.teams, seen.identity.organizations, seen.identity.roles], [undefined, undefined, undefined])
    assert.equal(seen.headers['x-gatehouse-teams'], null)
  })
})
