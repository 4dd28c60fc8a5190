import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * django-ansible-base keeps an assignment's `object_id` as text (ObjectRole.object_id is a TextField, so that
 * objects with UUID keys can hold roles): a filter on it takes any text, and one naming no object finds nothing.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`role assignment fields and their object_id filter (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase: (() => Promise<void>) | undefined
  let team: number
  let organization: number

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    dropDatabase = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
    const made = await createOrgAndTeam(gw, 'Research', 'Lab')
    team = made.team!
    organization = made.organization
    assert.equal((await grant(gw, 'alice', 'Team Member', team)).status, 201)
  })
  after(async () => {
    await gw.close()
    await dropDatabase?.()
  })

  for (const list of ['role_user_assignments', 'role_team_assignments']) {
    it(`answers a ${list} filter by an object_id that is not a number with 200 and no results`, async () => {
      for (const query of ['object_id=abc', 'object_id__in=abc,def', `object_id=${encodeURIComponent('0e3c6c0e-7f0b-4a52-9b1a-3f2d6f0f6f5d')}`]) {
        const answer = await call(gw, 'GET', `${list}/?${query}`)
        assert.equal(answer.status, 200, `${query}: ${JSON.stringify(answer.body)}`)
        assert.equal(answer.body.count, 0, query)
        assert.deepEqual(answer.body.results, [], query)
      }
    })
  }

  it('still finds the assignments on an object by its id, given as text', async () => {
    const found = await call(gw, 'GET', `role_user_assignments/?object_id=${team}`)
    assert.equal(found.status, 200)
    assert.equal(found.body.count, 1)
    assert.equal(found.body.results[0].object_id, String(team))
    assert.equal((await call(gw, 'GET', `role_user_assignments/?object_id__in=${team},abc`)).body.count, 1)
  })

  it('shows object_ansible_id, created_by_ansible_id and user_ansible_id or team_ansible_id as null, as the platform shows them for objects without a resource', async () => {
    const field = await call(gw, 'POST', 'teams/', { name: 'Field', organization })
    const given = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Member'), team, object_id: field.body.id })
    assert.equal(given.status, 201, JSON.stringify(given.body))
    for (const [list, actor] of [['role_user_assignments', 'user'], ['role_team_assignments', 'team']] as const) {
      const { body } = await call(gw, 'GET', `${list}/`)
      assert.ok(body.results.length > 0, list)
      for (const assignment of body.results) {
        for (const key of ['object_ansible_id', 'created_by_ansible_id', `${actor}_ansible_id`]) {
          assert.ok(Object.hasOwn(assignment, key), `${list} shows ${key}`)
          assert.equal(assignment[key], null, `${list} ${key}`)
        }
      }
    }
    for (const key of ['object_ansible_id', 'created_by_ansible_id', 'team_ansible_id']) assert.equal(given.body[key], null, key)
  })
})
