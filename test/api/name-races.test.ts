import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { withTrigger } from '../helpers/triggers.ts'

const NAME_TAKEN = ['The fields name, organization must make a unique set.']
const fields = { client_type: 'public', authorization_grant_type: 'password' }
/** The `created_at` of a twin the trigger writes, which the trigger does not fire for again. */
const TWIN = 1

/**
 * As if another process wrote a twin of the row a request writes, once the request had checked the name was free:
 * a trigger inserts it (`insert`, whose values may use NEW and must set `created_at` to TWIN) in the request's own
 * statement, which then breaks the unique index and takes the twin back with it.
 */
function twinWrittenOn(gw: TestGateway, table: string, operation: 'INSERT' | 'UPDATE', condition: string, insert: string, work: () => Promise<void>): Promise<void> {
  return withTrigger(gw.store.database, { table, timing: 'BEFORE', operation, condition: `${condition} AND NEW.created_at <> ${TWIN}`, action: { statement: insert } }, work)
}

/**
 * An application's name is unique within its organization in the database too (migration 022): a twin written
 * between the API's check and its own write, by another request or another process, makes the write fail, and the
 * request is answered as a later duplicate is, 400 on `non_field_errors`, not 500.
 */
for (const backend of gatewayBackends) describe(`OAuth2 application names racing each other (${backend.name})`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await backend.start()
  })
  after(async () => {
    await gw.close()
  })

  /** The applications of an organization of that name, read from the database. */
  const named = async (organization: number, name: string) =>
    (await gw.store.database.db.selectFrom('oauth2_applications').select('id').where('organization_id', '=', organization).where('name', '=', name).execute()).length

  const twinApplication = (operation: 'INSERT' | 'UPDATE', name: string, work: () => Promise<void>) => twinWrittenOn(gw, 'oauth2_applications', operation, `NEW.name = '${name}'`,
    `INSERT INTO oauth2_applications (realm, client_id, name, client_type, authorization_grant_type, organization_id, created_at, modified_at)
      VALUES (NEW.realm, 'twin', NEW.name, NEW.client_type, NEW.authorization_grant_type, NEW.organization_id, ${TWIN}, ${TWIN})`, work)

  it('answers a creation whose name another wrote after the check with 400 non_field_errors, and keeps neither', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Raced Creations')
    await twinApplication('INSERT', 'raced', async () => {
      const refused = await call(gw, 'POST', 'applications/', { name: 'raced', organization, ...fields })
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.equal(refused.body.code, 'invalid')
      assert.deepEqual(refused.body.non_field_errors, NAME_TAKEN)
    })
    assert.equal(await named(organization, 'raced'), 0)
  })

  it('answers a rename (or a move) to a name another took after the check with 400 non_field_errors, and changes nothing', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Raced Renames')
    const { organization: elsewhere } = await createOrgAndTeam(gw, 'Raced Renames Elsewhere')
    const created = await call(gw, 'POST', 'applications/', { name: 'before', organization, ...fields })
    assert.equal(created.status, 201)
    const moving = await call(gw, 'POST', 'applications/', { name: 'moved', organization: elsewhere, ...fields })
    assert.equal(moving.status, 201)
    for (const [name, id, change] of [['renamed', created.body.id, { name: 'renamed' }], ['moved', moving.body.id, { organization }]] as const) {
      await twinApplication('UPDATE', name, async () => {
        for (const method of ['PATCH', 'PUT']) {
          const current = (await call(gw, 'GET', `applications/${id}/`)).body
          const body = method === 'PATCH' ? change : { name: current.name, organization: current.organization, ...fields, ...change }
          const refused = await call(gw, method, `applications/${id}/`, body)
          assert.equal(refused.status, 400, `${method} ${name}: ${JSON.stringify(refused.body)}`)
          assert.deepEqual(refused.body.non_field_errors, NAME_TAKEN)
        }
      })
      assert.equal(await named(organization, name), 0)
    }
    assert.equal((await call(gw, 'GET', `applications/${created.body.id}/`)).body.name, 'before')
    assert.equal((await call(gw, 'GET', `applications/${moving.body.id}/`)).body.organization, elsewhere)
  })

  it('makes one of several creations of a name at once, and answers the others 400', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Raced At Once')
    const answers = await Promise.all([0, 1, 2, 3].map(() => call(gw, 'POST', 'applications/', { name: 'at once', organization, ...fields })))
    assert.deepEqual(answers.map((a) => a.status).sort(), [201, 400, 400, 400], JSON.stringify(answers.map((a) => a.body)))
    for (const refused of answers.filter((a) => a.status === 400)) assert.deepEqual(refused.body.non_field_errors, NAME_TAKEN)
    assert.equal(await named(organization, 'at once'), 1)
  })

  it('lets applications without an organization share a name, as the platform does', async () => {
    const answers = await Promise.all([0, 1].map(() => call(gw, 'POST', 'applications/', { name: 'unorganized', ...fields })))
    assert.deepEqual(answers.map((a) => a.status), [201, 201], JSON.stringify(answers.map((a) => a.body)))
  })
})

/**
 * Organizations, teams, role definitions and users have their names unique in the database from the start, and the
 * write is the check: a twin written by another process just before is answered as a later duplicate is, not 500.
 */
for (const backend of gatewayBackends) describe(`platform objects created or renamed onto a name taken meanwhile (${backend.name})`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await backend.start()
  })
  after(async () => {
    await gw.close()
  })

  it('answers 400 naming the field, as the platform\'s validators do, for each create and rename', async () => {
    const { organization, team } = await createOrgAndTeam(gw, 'Renamed', 'Renamed Team')
    const role = await call(gw, 'POST', 'role_definitions/', { name: 'Renamed Role', content_type: 'shared.team', permissions: ['shared.view_team'] })
    const user = await call(gw, 'POST', 'users/', { username: 'renamed' })
    const roleFields = { content_type: 'shared.team', permissions: ['shared.view_team'] }
    const twins = {
      organizations: `INSERT INTO organizations (name, created_at, modified_at) VALUES (NEW.name, ${TWIN}, ${TWIN})`,
      teams: `INSERT INTO teams (name, organization_id, created_at, modified_at) VALUES (NEW.name, NEW.organization_id, ${TWIN}, ${TWIN})`,
      role_definitions: `INSERT INTO role_definitions (name, permissions, created_at, modified_at) VALUES (NEW.name, '', ${TWIN}, ${TWIN})`,
      users: `INSERT INTO users (username, created_at, modified_at) VALUES (NEW.username, ${TWIN}, ${TWIN})`,
    }
    const ways: [keyof typeof twins, 'POST' | 'PATCH', string, Record<string, unknown>, string, string][] = [
      ['organizations', 'POST', 'organizations/', { name: 'Taken Organization' }, 'name', 'organization with this name already exists.'],
      ['organizations', 'PATCH', `organizations/${organization}/`, { name: 'Taken Organization' }, 'name', 'organization with this name already exists.'],
      ['teams', 'POST', 'teams/', { name: 'Taken Team', organization }, 'non_field_errors', 'The fields organization, name must make a unique set.'],
      ['teams', 'PATCH', `teams/${team}/`, { name: 'Taken Team' }, 'non_field_errors', 'The fields organization, name must make a unique set.'],
      ['role_definitions', 'POST', 'role_definitions/', { name: 'Taken Role', ...roleFields }, 'name', 'role definition with this name already exists.'],
      ['role_definitions', 'PATCH', `role_definitions/${role.body.id}/`, { name: 'Taken Role' }, 'name', 'role definition with this name already exists.'],
      ['users', 'POST', 'users/', { username: 'taken' }, 'username', 'A user with that username already exists.'],
      ['users', 'PATCH', `users/${user.body.id}/`, { username: 'taken' }, 'username', 'A user with that username already exists.'],
    ]
    for (const [table, method, path, body, field, message] of ways) {
      const column = table === 'users' ? 'username' : 'name'
      const name = String(body[column])
      await twinWrittenOn(gw, table, method === 'POST' ? 'INSERT' : 'UPDATE', `NEW.${column} = '${name}'`, twins[table], async () => {
        const refused = await call(gw, method, path, body)
        assert.equal(refused.status, 400, `${method} ${path}: ${JSON.stringify(refused.body)}`)
        assert.deepEqual(refused.body[field], [message], `${method} ${path}`)
      })
      const left = await gw.store.database.db.selectFrom(table).select('id').where(column, '=', name).execute()
      assert.deepEqual(left, [], `${method} ${path} keeps neither`)
    }
  })
})
