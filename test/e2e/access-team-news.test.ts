import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant, roleId } from '../helpers/access.ts'
import { countReads } from '../helpers/access-model.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * A role given to or taken from a team through one gateway decides its members' next request on another gateway on the
 * same database, which reads only that team's assignments for it; everyone else is answered as before.
 */
for (const backend of ['SQLite', 'PostgreSQL'] as const) describe(`a team's roles changed on one gateway, on another (${backend})`, () => {
  let first: TestGateway
  let second: TestGateway
  let drop: (() => Promise<void>) | undefined
  let analysts: number
  let research: number
  const mia = { authorization: basic('mia', 'mia-password-long') }
  const bob = { authorization: basic('bob', 'bob-password-long') }
  /** What the service `ops` answers on the second gateway: it lets in admins of Research alone. */
  const ops = async (headers: Record<string, string>) => {
    const response = await second.fetch('/api/ops/status', { headers })
    return { status: response.status, body: await json(response) }
  }
  /** The roles the identity token the second gateway sends to `wiki` (members of Research) says the caller holds. */
  const rolesSentToWiki = async (headers: Record<string, string>) => {
    const response = await second.fetch('/api/wiki/page', { headers })
    assert.equal(response.status, 200)
    const { identity } = await json(response)
    assert.equal(identity.verified, true)
    return identity.roles
  }

  before(async () => {
    const database = backend === 'PostgreSQL' ? await createTestDatabase() : undefined
    drop = database?.drop
    const config = demoWithRuledServices({
      ops: [{ allow: { roles: [{ role: 'Organization Admin', organization: 'Research' }] } }],
      wiki: [{ allow: { organizations: ['Research'] } }],
    })
    first = await startGateway({ config, databaseUrl: database?.url })
    second = await startGateway({ config, dataDir: first.dataDir, databaseUrl: database?.url })
    const created = await createOrgAndTeam(first, 'Research', 'Analysts')
    research = created.organization
    analysts = created.team!
    const readers = (await call(first, 'POST', 'teams/', { name: 'Readers', organization: research })).body.id
    for (const [username, team] of [['mia', analysts], ['bob', readers]] as const) {
      assert.equal((await call(first, 'POST', 'users/', { username, password: `${username}-password-long` })).status, 201)
      assert.equal((await grant(first, username, 'Team Member', team)).status, 201)
      const member = await call(first, 'POST', 'role_team_assignments/', { role_definition: await roleId(first, 'Organization Member'), team, object_id: research })
      assert.equal(member.status, 201)
    }
  })
  after(async () => {
    await second?.close()
    await first?.close()
    await drop?.()
  })

  it('lets the team\'s member in once the team is given a role, refuses them once it is taken, and leaves others alone', async () => {
    assert.equal((await ops(mia)).status, 403)
    assert.deepEqual(await rolesSentToWiki(mia), ['Organization Member', 'Team Member'])
    assert.equal((await ops(bob)).status, 403)
    const wholeReads = countReads(second.store, 'assignmentPages')
    const teamReads = countReads(second.store, 'assignmentsOfTeams')
    try {
      const given = await call(first, 'POST', 'role_team_assignments/', { role_definition: await roleId(first, 'Organization Admin'), team: analysts, object_id: research })
      assert.equal(given.status, 201)
      assert.equal((await ops(mia)).status, 200, 'let in through the team')
      assert.deepEqual(await rolesSentToWiki(mia), ['Organization Admin', 'Organization Member', 'Team Member'], 'a new identity token')
      const refused = await ops(bob)
      assert.equal(refused.status, 403, 'a member of another team is not')
      assert.equal(refused.body.code, 'access_denied')
      assert.deepEqual(await rolesSentToWiki(bob), ['Organization Member', 'Team Member'])

      assert.equal((await call(first, 'DELETE', `role_team_assignments/${given.body.id}/`)).status, 204)
      const taken = await ops(mia)
      assert.equal(taken.status, 403, 'refused from the next request')
      assert.equal(taken.body.code, 'access_denied')
      assert.deepEqual(await rolesSentToWiki(mia), ['Organization Member', 'Team Member'])
      assert.equal(wholeReads.count, 0, 'no whole reload on the other gateway')
      assert.equal(teamReads.count, 2, 'the team\'s assignments read once for each change')
    } finally {
      wholeReads.restore()
      teamReads.restore()
    }
  })
})
