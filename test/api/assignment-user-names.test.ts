import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'
import { startGatewayOn } from '../helpers/postgres.ts'

/**
 * The platform's web interface sorts an object's user access tab by the user's first and last name
 * (`order_by=user__first_name`, `-user__last_name`); django-ansible-base's OrderByBackend follows the relation, and
 * refuses a field the assignment itself lacks (`order_by=first_name`, 400; the interface's older releases sent that).
 * A join, so on both backends.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`user role assignments ordered by the user's names (${backend})`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGatewayOn(backend)
    const gamma = await createOrgAndTeam(gw, 'Gamma')
    for (const [username, firstName, lastName] of [['u1', 'Cleo', 'Adams'], ['u2', 'Anna', 'Brown'], ['u3', 'Bert', 'Clark']]) {
      await gw.app.accounts.create({ username: username!, password: `${username}-password-long`, firstName, lastName })
      assert.equal((await grant(gw, username!, 'Organization Member', gamma.organization)).status, 201)
    }
  })
  after(() => gw.close())

  const usernames = async (query: string, headers?: Record<string, string>) => {
    const answer = await call(gw, 'GET', `role_user_assignments/?${query}`, undefined, headers)
    assert.equal(answer.status, 200, `${query}: ${JSON.stringify(answer.body)}`)
    return answer.body.results.map((a: any) => a.summary_fields.user.username)
  }

  it('orders by the user\'s first or last name, either way, as the platform\'s web interface asks', async () => {
    assert.deepEqual(await usernames('order_by=user__first_name'), ['u2', 'u3', 'u1'])
    assert.deepEqual(await usernames('order_by=-user__first_name'), ['u1', 'u3', 'u2'])
    assert.deepEqual(await usernames('order_by=user__last_name'), ['u1', 'u2', 'u3'])
    assert.deepEqual(await usernames('order_by=-user__last_name,id'), ['u3', 'u2', 'u1'])
    // Within what the caller sees: u1 sees the assignments of the organization they are a member of.
    assert.deepEqual(await usernames('order_by=user__first_name', { authorization: basic('u1', 'u1-password-long') }), ['u2', 'u3', 'u1'])
  })

  it('filters by them too, as the platform follows any relation', async () => {
    assert.deepEqual(await usernames('user__first_name=Anna'), ['u2'])
    assert.deepEqual(await usernames('user__last_name__istartswith=c&order_by=user__first_name'), ['u3'])
    assert.deepEqual(await usernames('not__user__first_name__in=Anna,Bert'), ['u1'])
  })

  it('refuses a name the assignment itself lacks, as the platform does', async () => {
    for (const query of ['order_by=first_name', 'order_by=-last_name', 'order_by=user__email', 'first_name=Anna']) {
      const refused = await call(gw, 'GET', `role_user_assignments/?${query}`)
      assert.equal(refused.status, 400, query)
      assert.ok(refused.body.errors[query.startsWith('order_by') ? 'order_by' : 'first_name'], `${query}: ${JSON.stringify(refused.body)}`)
    }
  })
})
