import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'
import { withTrigger } from '../helpers/triggers.ts'
import { sql } from '../../src/store/kysely.ts'

const fields = { client_type: 'public', authorization_grant_type: 'password' }
const missing = (id: number) => [`Invalid pk "${id}" - object does not exist.`]

/**
 * A team or an application names its organization (and an application its user) by id, and a token its owner, held by a foreign key: one
 * deleted after the API found it, by another request or another process, makes the write fail, and the request is
 * answered as a later one would be, 400 naming the field, never 500; nothing is written.
 */
for (const backend of gatewayBackends) describe(`teams and applications naming an organization or user deleted meanwhile (${backend.name})`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await backend.start()
  })
  after(async () => {
    await gw.close()
  })

  /** As if another process deleted the row the write names, once the request had found it: in the write's own statement. */
  const deletedOnWrite = (table: string, operation: 'INSERT' | 'UPDATE', deletion: string, work: () => Promise<void>) =>
    withTrigger(gw.store.database, { table, timing: 'BEFORE', operation, action: { statement: deletion } }, work)

  it('refuses a team whose organization is deleted as it is written with 400 on organization', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Gone Before The Team')
    await deletedOnWrite('teams', 'INSERT', `DELETE FROM organizations WHERE id = ${organization}`, async () => {
      const refused = await call(gw, 'POST', 'teams/', { name: 'Orphan', organization })
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.deepEqual(refused.body.organization, missing(organization))
    })
    assert.equal((await call(gw, 'GET', `organizations/${organization}/`)).status, 200, 'the deletion went back with the write')
    assert.equal((await call(gw, 'GET', 'teams/?name=Orphan')).body.count, 0)
  })

  it('answers a token created by a user deleted as it is written with 401, as the next request of theirs is answered', async () => {
    const user = await gw.app.accounts.create({ username: 'leaving-token-owner', password: 'leaving-token-owner-password' })
    await deletedOnWrite('tokens', 'INSERT', `DELETE FROM users WHERE id = ${user.id}`, async () => {
      const refused = await call(gw, 'POST', 'tokens/', {}, { authorization: basic('leaving-token-owner', 'leaving-token-owner-password') })
      assert.equal(refused.status, 401, JSON.stringify(refused.body))
      assert.equal(refused.body.code, 'invalid_credentials')
    })
    assert.equal((await gw.store.tokens.list({ offset: 0, limit: 1, userId: user.id })).count, 0)
  })

  it('refuses an application naming a user deleted by another process, before its news arrived, with 400 on user', async () => {
    const user = await call(gw, 'POST', 'users/', { username: 'gone-elsewhere' })
    const moving = await call(gw, 'POST', 'applications/', { name: 'moving to the gone', ...fields })
    // Deleted in the database only: this process still has the account in its cache, as until another's news arrives.
    assert.ok(await gw.app.accounts.get(user.body.id))
    await sql.raw(`DELETE FROM users WHERE id = ${user.body.id}`).execute(gw.store.database.db)
    assert.ok(await gw.app.accounts.get(user.body.id), 'still cached')
    for (const [method, path, body] of [['POST', 'applications/', { name: 'owned by the gone', user: user.body.id, ...fields }], ['PATCH', `applications/${moving.body.id}/`, { user: user.body.id }]] as const) {
      const refused = await call(gw, method, path, body)
      assert.equal(refused.status, 400, `${method}: ${JSON.stringify(refused.body)}`)
      assert.deepEqual(refused.body.user, missing(user.body.id))
    }
  })

  it('answers creations and changes racing the deletion of their organization or user as before it or after it, never 500', async () => {
    for (let round = 0; round < 5; round++) {
      // Deleting an organization or user deletes its applications: one moved into either meanwhile goes with it.
      const moving = await call(gw, 'POST', 'applications/', { name: `moving ${round}`, ...fields })
      const { organization } = await createOrgAndTeam(gw, `Raced Away ${round}`)
      const user = await call(gw, 'POST', 'users/', { username: `raced-away-${round}` })
      const answers = await Promise.all([
        call(gw, 'DELETE', `organizations/${organization}/`),
        call(gw, 'DELETE', `users/${user.body.id}/`),
        call(gw, 'POST', 'teams/', { name: 'Raced', organization }),
        call(gw, 'POST', 'applications/', { name: `raced ${round}`, organization, ...fields }),
        call(gw, 'POST', 'applications/', { name: `raced owner ${round}`, user: user.body.id, ...fields }),
        call(gw, 'PATCH', `applications/${moving.body.id}/`, { organization, user: user.body.id }),
      ])
      assert.deepEqual(answers.slice(0, 2).map((answer) => answer.status), [204, 204])
      for (const [i, answer] of answers.slice(2).entries()) {
        assert.ok([200, 201, 400].includes(answer.status) || (i === 3 && answer.status === 404), `${i}: ${answer.status} ${JSON.stringify(answer.body)}`)
        if (answer.status !== 400) continue
        const field = answer.body.organization ? 'organization' : 'user'
        assert.deepEqual(answer.body[field], missing(field === 'organization' ? organization : user.body.id), JSON.stringify(answer.body))
      }
    }
  })
})
