import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, roleId } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { type TestTrigger, withTrigger } from '../helpers/triggers.ts'

/**
 * A user's `organizations` (POST users/, PATCH and PUT users/{id}/): the account, or its change, and every membership
 * named with it are one transaction, so a membership that fails part way leaves neither.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`a user and the organizations named with it, all or nothing (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase: (() => Promise<void>) | undefined
  let first: number
  let second: number

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    dropDatabase = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    first = (await createOrgAndTeam(gw, 'Members First')).organization
    second = (await createOrgAndTeam(gw, 'Members Second')).organization
  })
  after(async () => {
    await gw.close()
    await dropDatabase?.()
  })

  const usersNamed = async (username: string) => (await call(gw, 'GET', `users/?username=${username}`)).body.count
  const membersOf = async (organization: number) => (await call(gw, 'GET', `organizations/${organization}/users/`)).body.results.map((u: { username: string }) => u.username)
  const audited = async (query: string) => (await gw.app.audit.flush(), await call(gw, 'GET', `activitystream/?${query}`)).body.count

  it('refuses an organization deleted while the user was being created with 400 naming organizations, leaving no user and no membership', async () => {
    // As if another process deleted the second organization after the request was checked: in the creation's
    // transaction, once the user is written.
    await withTrigger(gw.store.database, { table: 'users', timing: 'AFTER', operation: 'INSERT', action: { statement: `DELETE FROM organizations WHERE id = ${second}` } }, async () => {
      const refused = await call(gw, 'POST', 'users/', { username: 'late-member', password: 'a-long-late-password', organizations: ['Members First', String(second)] })
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.equal(refused.body.code, 'invalid')
      assert.deepEqual(refused.body.organizations, ['Organization "Members Second" does not exist.'])
    })
    assert.equal(await usersNamed('late-member'), 0, 'no user was created')
    assert.deepEqual(await membersOf(first), [], 'no membership of the first organization')
    assert.equal((await call(gw, 'GET', `organizations/${second}/`)).status, 200, 'the deletion went back with the rest')
    assert.equal(await audited('object_name=late-member'), 0, 'nothing was recorded as done')
  })

  it('creates no user when the database refuses a membership after another was written', async () => {
    await withTrigger(gw.store.database, refusingMembershipsIn(second), async () => {
      const refused = await call(gw, 'POST', 'users/', { username: 'half-member', organizations: ['Members First', 'Members Second'] })
      assert.equal(refused.status, 500, JSON.stringify(refused.body))
    })
    assert.equal(await usersNamed('half-member'), 0, 'no user was created')
    assert.deepEqual(await membersOf(first), [], 'no membership of the first organization')
    const member = await roleId(gw, 'Organization Member')
    assert.equal((await call(gw, 'GET', `role_user_assignments/?role_definition=${member}`)).body.count, 0)
  })

  it('leaves a changed user as it was when a membership named with the change fails', async () => {
    const created = await call(gw, 'POST', 'users/', { username: 'changing-member', first_name: 'Before' })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    for (const method of ['PATCH', 'PUT']) {
      await withTrigger(gw.store.database, refusingMembershipsIn(second), async () => {
        const refused = await call(gw, method, `users/${created.body.id}/`, { username: 'changing-member', first_name: 'After', organizations: ['Members First', 'Members Second'] })
        assert.equal(refused.status, 500, JSON.stringify(refused.body))
      })
      assert.equal((await call(gw, 'GET', `users/${created.body.id}/`)).body.first_name, 'Before', method)
      assert.deepEqual(await membersOf(first), [], method)
    }
    const changed = await call(gw, 'PATCH', `users/${created.body.id}/`, { first_name: 'After', organizations: ['Members First', String(second)] })
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    assert.deepEqual(await membersOf(first), ['changing-member'])
    assert.deepEqual(await membersOf(second), ['changing-member'])
  })

  it('creates a user with its memberships, each recorded once in the activity stream', async () => {
    const given = () => audited('content_type=role_user_assignment&operation=create')
    const before = await given()
    const created = await call(gw, 'POST', 'users/', { username: 'whole-member', organizations: ['Members First', 'Members Second', String(first)] })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual(await membersOf(first), ['changing-member', 'whole-member'])
    assert.deepEqual(await membersOf(second), ['changing-member', 'whole-member'])
    assert.equal(await audited('object_name=whole-member&operation=create'), 1)
    assert.equal(await given(), before + 2, 'the first organization, named twice, is given once')
  })
})

/** The database refusing to insert any user's role on `organization`, as a failure part way would. */
function refusingMembershipsIn(organization: number): TestTrigger {
  return { table: 'role_user_assignments', timing: 'BEFORE', operation: 'INSERT', condition: `NEW.object_type = 'organization' AND NEW.object_id = ${organization}`, action: 'refuse' }
}
