import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * django-ansible-base keeps an assignment's `object_id` as text (ObjectRole.object_id is a TextField, so that
 * objects with UUID keys can hold roles): a filter on it takes any text, and one naming no object finds nothing.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`the object_id filter on role assignment lists (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase: (() => Promise<void>) | undefined
  let team: number

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    dropDatabase = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
    team = (await createOrgAndTeam(gw, 'Research', 'Lab')).team!
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
})
