import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { withTrigger } from '../helpers/triggers.ts'

const NAME_TAKEN = ['The fields name, organization must make a unique set.']
const fields = { client_type: 'public', authorization_grant_type: 'password' }

/**
 * An application's name is unique within its organization in the database too (migration 023): a twin written
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

  /**
   * As if another process wrote an application of the same name and organization once the request had checked: a
   * trigger inserts the twin in the request's own statement, which then breaks the unique index and takes the twin
   * back with it.
   */
  const twinWrittenOn = (operation: 'INSERT' | 'UPDATE', name: string, work: () => Promise<void>) => withTrigger(gw.store.database, {
    table: 'oauth2_applications',
    timing: 'BEFORE',
    operation,
    condition: `NEW.name = '${name}' AND NEW.client_id <> 'twin'`,
    action: {
      statement: `INSERT INTO oauth2_applications (realm, client_id, name, client_type, authorization_grant_type, organization_id, created_at, modified_at)
        VALUES (NEW.realm, 'twin', NEW.name, NEW.client_type, NEW.authorization_grant_type, NEW.organization_id, NEW.created_at, NEW.modified_at)`,
    },
  }, work)

  it('answers a creation whose name another wrote after the check with 400 non_field_errors, and keeps neither', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Raced Creations')
    await twinWrittenOn('INSERT', 'raced', async () => {
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
      await twinWrittenOn('UPDATE', name, async () => {
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
