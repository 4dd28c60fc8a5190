import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId, userId } from '../helpers/access.ts'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { withTrigger } from '../helpers/triggers.ts'

/**
 * teams/{id}/users/, teams/{id}/admins/, organizations/{id}/users/ and organizations/{id}/admins/ with their
 * associate/ and disassociate/ actions, as django-ansible-base's AssociationResourceRouter serves them: thin views
 * over the Team Member, Team Admin, Organization Member and Organization Admin assignments.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`association endpoints over role assignments (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase: (() => Promise<void>) | undefined
  let organization: number
  let team: number
  let alice: number
  let bob: number
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    dropDatabase = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    for (const username of ['alice', 'bob', 'teamadmin', 'outsider']) await gw.app.accounts.create({ username, password: `${username}-password-long` })
    const made = await createOrgAndTeam(gw, 'Research', 'Lab')
    organization = made.organization
    team = made.team!
    alice = await userId(gw, 'alice')
    bob = await userId(gw, 'bob')
    assert.equal((await grant(gw, 'teamadmin', 'Team Admin', team)).status, 201)
  })
  after(async () => {
    await gw.close()
    await dropDatabase?.()
  })

  it('associates users with a team as Team Member assignments, listed under teams/{id}/users/ and role_user_assignments/', async () => {
    const associated = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [alice, bob] })
    assert.equal(associated.status, 204, JSON.stringify(associated.body))
    const listed = await call(gw, 'GET', `teams/${team}/users/`)
    assert.equal(listed.status, 200)
    assert.deepEqual(listed.body.results.map((u: { username: string }) => u.username).sort(), ['alice', 'bob'])
    assert.equal(listed.body.count, 2)
    const member = await roleId(gw, 'Team Member')
    const assignments = await call(gw, 'GET', `role_user_assignments/?role_definition=${member}&object_id=${team}&content_type=shared.team`)
    assert.deepEqual(assignments.body.results.map((a: { user: number }) => a.user).sort(), [alice, bob].sort())
    const filtered = await call(gw, 'GET', `teams/${team}/users/?username=bob`)
    assert.deepEqual(filtered.body.results.map((u: { id: number }) => u.id), [bob])
    const paged = await call(gw, 'GET', `teams/${team}/users/?page_size=1&order_by=username`)
    assert.equal(paged.body.count, 2)
    assert.deepEqual(paged.body.results.map((u: { username: string }) => u.username), ['alice'])
    assert.ok(paged.body.next)
  })

  it('associates a user held already without a second assignment', async () => {
    assert.equal((await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [alice] })).status, 204)
    const member = await roleId(gw, 'Team Member')
    assert.equal((await call(gw, 'GET', `role_user_assignments/?role_definition=${member}&object_id=${team}&user=${alice}`)).body.count, 1)
  })

  it('disassociates a user, removing the assignment', async () => {
    const removed = await call(gw, 'POST', `teams/${team}/users/disassociate/`, { instances: [bob] })
    assert.equal(removed.status, 204, JSON.stringify(removed.body))
    assert.deepEqual((await call(gw, 'GET', `teams/${team}/users/`)).body.results.map((u: { id: number }) => u.id), [alice])
    const member = await roleId(gw, 'Team Member')
    assert.equal((await call(gw, 'GET', `role_user_assignments/?role_definition=${member}&object_id=${team}&user=${bob}`)).body.count, 0)
  })

  it('answers bad instances with 400 in django-ansible-base\'s words, changing nothing', async () => {
    const missing = await call(gw, 'POST', `teams/${team}/users/associate/`, {})
    assert.equal(missing.status, 400)
    assert.equal(missing.body.code, 'invalid')
    assert.deepEqual(missing.body.instances, ['This field is required.'])
    const empty = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [] })
    assert.equal(empty.status, 400)
    // django-ansible-base raises these two in the view with a string, which Django REST framework sends bare, not in a list.
    assert.equal(empty.body.instances, 'Please pass in one or more instances to associate')
    assert.deepEqual(empty.body.errors, { instances: ['Please pass in one or more instances to associate'] })
    assert.equal(empty.body.code, 'invalid')
    const emptyOut = await call(gw, 'POST', `teams/${team}/users/disassociate/`, { instances: [] })
    assert.equal(emptyOut.status, 400)
    assert.equal(emptyOut.body.instances, 'Please pass in one or more instances to disassociate')
    const unknown = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [bob, 987654] })
    assert.equal(unknown.status, 400)
    assert.deepEqual(unknown.body.instances, ['Invalid pk "987654" - object does not exist.'])
    const wrongType = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: ['abc'] })
    assert.equal(wrongType.status, 400)
    assert.deepEqual(wrongType.body.instances, ['Incorrect type. Expected pk value, received str.'])
    const notList = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: 5 })
    assert.equal(notList.status, 400)
    assert.deepEqual(notList.body.instances, ['Expected a list of items but got type "int".'])
    const tooMany = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: Array.from({ length: 201 }, () => alice) })
    assert.equal(tooMany.status, 400)
    assert.equal(tooMany.body.code, 'invalid')
    assert.ok(tooMany.body.instances, 'names instances')
    const emptyObject = await call(gw, 'POST', `teams/${team}/users/disassociate/`, { instances: {} })
    assert.equal(emptyObject.status, 400)
    assert.equal(emptyObject.body.instances, 'Please pass in one or more instances to disassociate', 'an object is read by its keys, as Python iterates a dict')
    const firstProblem = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [987654, 'abc'] })
    assert.deepEqual(firstProblem.body.instances, ['Invalid pk "987654" - object does not exist.'], 'items are read in turn; the first problem is named')
    assert.deepEqual((await call(gw, 'GET', `teams/${team}/users/`)).body.results.map((u: { id: number }) => u.id), [alice])
  })

  it('refuses to disassociate a user who does not hold the role, or does not exist, as django-ansible-base\'s serializer does, taking nothing', async () => {
    const members = async () => (await call(gw, 'GET', `teams/${team}/users/`)).body.results.map((u: { id: number }) => u.id)
    assert.deepEqual(await members(), [alice])
    for (const [instances, named] of [[[bob], bob], [[alice, bob], bob], [[alice, 987654, bob], 987654], [[-1], -1], [[alice, String(bob)], bob]] as const) {
      const refused = await call(gw, 'POST', `teams/${team}/users/disassociate/`, { instances })
      assert.equal(refused.status, 400, JSON.stringify(instances))
      assert.equal(refused.body.code, 'invalid')
      // In a list, naming the first id the related list does not hold, as DisassociationSerializerBase words it.
      assert.deepEqual(refused.body.instances, [`Invalid pk "${named}" - object does not exist or is not associated with parent object.`], JSON.stringify(instances))
      assert.deepEqual(refused.body.errors, { instances: refused.body.instances })
      assert.deepEqual(await members(), [alice], `alice stays a member after ${JSON.stringify(instances)}`)
    }
    // Holding another role on the team (Team Admin) is not being its member.
    assert.equal((await call(gw, 'POST', `teams/${team}/admins/associate/`, { instances: [bob] })).status, 204)
    const adminOnly = await call(gw, 'POST', `teams/${team}/users/disassociate/`, { instances: [bob] })
    assert.deepEqual(adminOnly.body.instances, [`Invalid pk "${bob}" - object does not exist or is not associated with parent object.`])
    assert.equal((await call(gw, 'POST', `teams/${team}/admins/disassociate/`, { instances: [bob] })).status, 204)
  })

  it('associates and disassociates several users all or none: one the database refuses leaves the others as they were', async () => {
    const path = `organizations/${organization}/admins/`
    const admins = async () => (await call(gw, 'GET', path)).body.results.map((u: { id: number }) => u.id).sort((a: number, b: number) => a - b)
    const before = await admins()
    assert.ok(!before.includes(alice) && !before.includes(bob))
    // The database refuses bob's assignment, after alice's was written in the same request.
    await refusingAssignmentsOf(bob, 'INSERT', `${path}associate/`)
    assert.deepEqual(await admins(), before, 'alice was not made an admin')
    assert.equal((await call(gw, 'POST', `${path}associate/`, { instances: [alice, bob] })).status, 204)
    await refusingAssignmentsOf(bob, 'DELETE', `${path}disassociate/`)
    assert.deepEqual(await admins(), [...before, alice, bob].sort((a, b) => a - b), 'alice is still an admin')
    assert.equal((await call(gw, 'POST', `${path}disassociate/`, { instances: [alice, bob] })).status, 204)
    assert.deepEqual(await admins(), before)
  })

  /**
   * Posts alice and `user` to `action` while a trigger makes the database refuse to insert or delete the user's role
   * assignments, as a failure part way would; the request fails.
   */
  async function refusingAssignmentsOf(user: number, operation: 'INSERT' | 'DELETE', action: string): Promise<void> {
    const row = operation === 'INSERT' ? 'NEW' : 'OLD'
    await withTrigger(gw.store.database, { table: 'role_user_assignments', timing: 'BEFORE', operation, condition: `${row}.user_id = ${user}`, action: 'refuse' }, async () => {
      const refused = await call(gw, 'POST', action, { instances: [alice, user] })
      assert.equal(refused.status, 500, JSON.stringify(refused.body))
    })
  }

  it('answers 404 for a missing or unseen parent, and 403 to those who may not give the role', async () => {
    assert.equal((await call(gw, 'GET', 'teams/99999/users/')).status, 404)
    assert.equal((await call(gw, 'POST', 'teams/99999/users/associate/', { instances: [bob] })).status, 404)
    assert.equal((await call(gw, 'GET', `teams/${team}/users/`, undefined, as('outsider'))).status, 404)
    assert.equal((await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [bob] }, as('outsider'))).status, 404)
    assert.equal((await grant(gw, 'outsider', 'Team Member', team)).status, 201)
    const refused = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [bob] }, as('outsider'))
    assert.equal(refused.status, 403)
    assert.equal(refused.body.code, 'permission_denied')
    const byAdmin = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [bob] }, as('teamadmin'))
    assert.equal(byAdmin.status, 204, JSON.stringify(byAdmin.body))
    // A team admin may not make anyone a member or an admin of the organization: one who does not see it is told it does not exist.
    assert.equal((await call(gw, 'POST', `organizations/${organization}/users/associate/`, { instances: [bob] }, as('teamadmin'))).status, 404)
    assert.equal((await grant(gw, 'teamadmin', 'Organization Member', organization)).status, 201)
    const orgRefused = await call(gw, 'POST', `organizations/${organization}/admins/associate/`, { instances: [bob] }, as('teamadmin'))
    assert.equal(orgRefused.status, 403)
  })

  it('links each team and organization to its users and admins in related, as lists that answer', async () => {
    for (const path of [`teams/${team}/`, `organizations/${organization}/`]) {
      const { body } = await call(gw, 'GET', path)
      for (const name of ['users', 'admins']) {
        assert.equal(body.related[name], `/api/gateway/v1/${path}${name}/`, `${path} ${name}`)
        const followed = await gw.fetch(body.related[name], { headers: adminAuth })
        assert.equal(followed.status, 200, body.related[name])
      }
    }
  })

  it('describes each list to OPTIONS as django-ansible-base\'s related list views, without a POST action', async () => {
    for (const [path, parent] of [[`teams/${team}/users/`, 'Team'], [`teams/${team}/admins/`, 'Team'], [`organizations/${organization}/users/`, 'Organization'], [`organizations/${organization}/admins/`, 'Organization']] as const) {
      const described = await gw.fetch(`/api/gateway/v1/${path}`, { method: 'OPTIONS', headers: adminAuth })
      assert.equal(described.status, 200, path)
      assert.equal(described.headers.get('allow'), 'GET, HEAD, OPTIONS', path)
      assert.deepEqual(await described.json(), {
        name: `Related ${parent} View Set ${parent} Related User List`,
        description: '',
        renders: ['application/json'],
        parses: ['application/json', 'application/x-www-form-urlencoded'],
      }, path)
    }
    const unseen = await gw.fetch(`/api/gateway/v1/teams/${team}/users/`, { method: 'OPTIONS', headers: as('nobody-here') })
    assert.equal(unseen.status, 401)
  })

  it('answers other methods on the lists and actions with 405, as their views take none', async () => {
    for (const [method, path] of [['GET', `teams/${team}/users/associate/`], ['POST', `teams/${team}/users/`], ['DELETE', `organizations/${organization}/admins/`], ['PUT', `organizations/${organization}/users/disassociate/`]]) {
      const answer = await call(gw, method!, path!, method === 'GET' || method === 'DELETE' ? undefined : { instances: [alice] })
      assert.equal(answer.status, 405, `${method} ${path}`)
    }
  })

  it('reads instances from a form as Django REST framework reads a list from one: each value, a single one included', async () => {
    const form = (path: string, body: string) => gw.fetch(`/api/gateway/v1/${path}`, { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/x-www-form-urlencoded' }, body })
    const members = async () => new Set((await call(gw, 'GET', `teams/${team}/users/`)).body.results.map((u: { id: number }) => u.id))
    for (const username of ['form-one', 'form-two']) await gw.app.accounts.create({ username })
    const [one, two] = [await userId(gw, 'form-one'), await userId(gw, 'form-two')]
    assert.equal((await form(`teams/${team}/users/associate/`, `instances=${one}`)).status, 204)
    assert.equal((await form(`teams/${team}/users/associate/`, `instances=${two}`)).status, 204)
    assert.ok((await members()).has(one) && (await members()).has(two))
    const none = await form(`teams/${team}/users/disassociate/`, '')
    assert.equal(none.status, 400)
    assert.equal(((await none.json()) as { instances: unknown }).instances, 'Please pass in one or more instances to disassociate', 'a form without instances names none')
    // Any other field is refused as at every endpoint, not dropped unread while the action goes on.
    const other = await form(`teams/${team}/users/disassociate/`, `instances=${one}&other=1`)
    assert.equal(other.status, 400)
    assert.deepEqual(((await other.json()) as { errors: unknown }).errors, { other: ['Unknown field.'] })
    assert.ok((await members()).has(one), 'nothing taken')
    assert.equal((await form(`teams/${team}/users/disassociate/`, `instances=${one}&instances=${two}`)).status, 204)
    assert.ok(!(await members()).has(one) && !(await members()).has(two))
  })

  it('lists and changes team admins, organization users and organization admins as their roles', async () => {
    for (const [path, role, objectId] of [[`teams/${team}/admins/`, 'Team Admin', team], [`organizations/${organization}/users/`, 'Organization Member', organization], [`organizations/${organization}/admins/`, 'Organization Admin', organization]] as const) {
      assert.equal((await call(gw, 'POST', `${path}associate/`, { instances: [bob] })).status, 204, path)
      assert.ok((await call(gw, 'GET', path)).body.results.some((u: { id: number }) => u.id === bob), path)
      const held = await call(gw, 'GET', `role_user_assignments/?role_definition=${await roleId(gw, role)}&object_id=${objectId}&user=${bob}`)
      assert.equal(held.body.count, 1, path)
      assert.equal((await call(gw, 'POST', `${path}disassociate/`, { instances: [bob] })).status, 204, path)
      assert.ok(!(await call(gw, 'GET', path)).body.results.some((u: { id: number }) => u.id === bob), path)
    }
  })
})
