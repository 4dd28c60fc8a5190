import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { call, createOrgAndTeam, roleId, userId } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { withTrigger } from '../helpers/triggers.ts'

type Answer = Awaited<ReturnType<typeof call>>

/**
 * Roles given at the moment their object is deleted, or given twice at once: the request that loses answers as a
 * later request would (400 for an object gone, the assignment held for a duplicate), and no assignment is left
 * naming an object that is not there.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`role assignments racing deletions and each other (${backend})`, () => {
  let gw: TestGateway
  let database: { url: string; drop: () => Promise<void> } | undefined
  let organizationMember: number
  let teamMember: number
  let alice: number
  let bob: number

  before(async () => {
    database = backend === 'postgres' ? await createTestDatabase() : undefined
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    for (const username of ['alice', 'bob']) await gw.app.accounts.create({ username })
    alice = await userId(gw, 'alice')
    bob = await userId(gw, 'bob')
    organizationMember = await roleId(gw, 'Organization Member')
    teamMember = await roleId(gw, 'Team Member')
  })
  after(async () => {
    await gw.close()
    await database?.drop()
  })

  /** Assignments, of users or teams, naming `type` `id`: read from the database, as the API hides none of them here. */
  const assignmentsOn = async (type: 'organization' | 'team', id: number) => {
    let count = 0
    for (const actor of ['user', 'team'] as const) count += (await gw.store.access.listAssignments(actor, { offset: 0, limit: 1, objectType: type, objectId: id })).count
    return count
  }

  it('refuses a role on an organization deleted once the assignment is written, with 400 object_id, and keeps nothing', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Vanishing')
    // As if another process deleted the organization after the request was checked: in the assignment's transaction.
    await withTrigger(gw.store.database, { table: 'role_user_assignments', timing: 'AFTER', operation: 'INSERT', condition: `NEW.user_id = ${alice}`, action: { statement: `DELETE FROM organizations WHERE id = ${organization}` } }, async () => {
      const refused = await call(gw, 'POST', 'role_user_assignments/', { role_definition: organizationMember, user: alice, object_id: organization })
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.equal(refused.body.code, 'invalid')
      assert.deepEqual(refused.body.object_id, [`Invalid pk "${organization}" - object does not exist.`])
    })
    assert.equal(await assignmentsOn('organization', organization), 0)
    assert.equal((await call(gw, 'GET', `organizations/${organization}/`)).status, 200, 'the deletion went back with the rest')
  })

  it('answers associate/ on a team deleted meanwhile with 404, as a later request is answered, and keeps nothing', async () => {
    const { team } = await createOrgAndTeam(gw, 'Vanishing Teams', 'Gone')
    await withTrigger(gw.store.database, { table: 'role_user_assignments', timing: 'AFTER', operation: 'INSERT', condition: `NEW.user_id = ${alice}`, action: { statement: `DELETE FROM teams WHERE id = ${team}` } }, async () => {
      const refused = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [alice] })
      assert.equal(refused.status, 404, JSON.stringify(refused.body))
      assert.equal(refused.body.code, 'not_found')
    })
    assert.equal(await assignmentsOn('team', team!), 0)
  })

  it('answers two requests giving the same role at once as one given once: 201 with the same assignment, and associate/ 204', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Twice')
    const body = { role_definition: organizationMember, user: bob, object_id: organization }
    const [first, second] = await Promise.all([call(gw, 'POST', 'role_user_assignments/', body), call(gw, 'POST', 'role_user_assignments/', body)])
    assert.deepEqual([first.status, second.status], [201, 201], JSON.stringify([first.body, second.body]))
    assert.equal(first.body.id, second.body.id)
    const associated = await Promise.all([0, 1].map(() => call(gw, 'POST', `organizations/${organization}/admins/associate/`, { instances: [bob] })))
    assert.deepEqual(associated.map((a) => a.status), [204, 204])
    assert.equal(await assignmentsOn('organization', organization), 2)
  })

  if (backend !== 'postgres') return

  /**
   * A second connection to the test database: holds an advisory lock that a trigger in a request's transaction waits
   * for, keeping that transaction open while another request runs, and sees which requests wait for a row lock.
   */
  async function withHeldTransaction(condition: { table: string; timing: 'BEFORE' | 'AFTER'; operation: 'INSERT' | 'DELETE'; condition?: string }, work: (held: HeldTransaction) => Promise<void>) {
    const client = new pg.Client({ connectionString: database!.url })
    await client.connect()
    const key = 7_301
    try {
      await client.query('SELECT pg_advisory_lock($1)', [key])
      await withTrigger(gw.store.database, { ...condition, action: { statement: `PERFORM pg_advisory_xact_lock(${key})` } }, async () => {
        let released = false
        const release = async () => {
          if (!released) await client.query('SELECT pg_advisory_unlock($1)', [key])
          released = true
        }
        try {
          await work({ waits: (event) => waitingFor(client, event), release })
        } finally {
          await release()
        }
      })
    } finally {
      await client.end()
    }
  }

  it('refuses a role given while its organization or team, or the team\'s organization, is being deleted, with 400 object_id, and leaves no assignment', async () => {
    for (const [deleted, on] of [['organization', 'organization'], ['organization', 'team'], ['team', 'team']] as const) {
      const { organization, team } = await createOrgAndTeam(gw, `Deleted While Given ${deleted} ${on}`, 'Inside')
      const deletedId = deleted === 'team' ? team! : organization
      const objectId = on === 'team' ? team! : organization
      const held = await call(gw, 'POST', 'role_user_assignments/', { role_definition: deleted === 'team' ? teamMember : organizationMember, user: bob, object_id: deletedId })
      assert.equal(held.status, 201)
      // Held open once it starts deleting the roles given on what it deletes, the first thing it writes.
      await withHeldTransaction({ table: 'role_user_assignments', timing: 'BEFORE', operation: 'DELETE', condition: `OLD.id = ${held.body.id}` }, async ({ waits, release }) => {
        const deleting = call(gw, 'DELETE', `${deleted}s/${deletedId}/`)
        await until(() => waits('advisory'), 'the deletion holds its transaction open')
        let settled: Answer | undefined
        const giving = call(gw, 'POST', 'role_user_assignments/', { role_definition: on === 'team' ? teamMember : organizationMember, user: alice, object_id: objectId }).then((answer) => (settled = answer))
        // Either it waits for the deletion (a row lock), or it has already answered (and left an assignment behind).
        await until(async () => settled !== undefined || await waits('tuple') || await waits('transactionid'), 'the assignment waits or answers')
        await release()
        assert.equal((await deleting).status, 204)
        const refused = await giving
        assert.equal(refused.status, 400, `${deleted} ${on}: ${JSON.stringify(refused.body)}`)
        assert.deepEqual(refused.body.object_id, [`Invalid pk "${objectId}" - object does not exist.`])
      })
      assert.equal(await assignmentsOn(on, objectId), 0, 'no assignment names what was deleted')
    }
  })

  it('refuses a role given to a user who is being deleted with 400, as a user who does not exist (on user, or instances for associate/), not a 500', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Leaving')
    for (const [field, give] of [
      ['user', (user: number) => call(gw, 'POST', 'role_user_assignments/', { role_definition: organizationMember, user, object_id: organization })],
      ['instances', (user: number) => call(gw, 'POST', `organizations/${organization}/users/associate/`, { instances: [user] })],
    ] as const) {
      const leaving = (await gw.app.accounts.create({ username: `leaving-${field}` })).id
      await withHeldTransaction({ table: 'users', timing: 'BEFORE', operation: 'DELETE', condition: `OLD.id = ${leaving}` }, async ({ waits, release }) => {
        const deleting = call(gw, 'DELETE', `users/${leaving}/`)
        await until(() => waits('advisory'), 'the deletion holds its transaction open')
        const giving = give(leaving)
        await until(async () => await waits('tuple') || await waits('transactionid'), 'the assignment waits for the deletion')
        await release()
        assert.equal((await deleting).status, 204)
        const refused = await giving
        assert.equal(refused.status, 400, JSON.stringify(refused.body))
        assert.deepEqual(refused.body[field], [`Invalid pk "${leaving}" - object does not exist.`])
      })
    }
  })

  it('answers the request that loses a race for an organization\'s or team\'s name as a later duplicate: 400 naming the field', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Named Twice')
    const ways: [string, () => Promise<Answer>, string, string][] = [
      ['organizations', () => call(gw, 'POST', 'organizations/', { name: 'Raced Name' }), 'name', 'organization with this name already exists.'],
      ['teams', () => call(gw, 'POST', 'teams/', { name: 'Raced Team', organization }), 'non_field_errors', 'The fields organization, name must make a unique set.'],
    ]
    for (const [table, create, field, message] of ways) {
      await withHeldTransaction({ table, timing: 'AFTER', operation: 'INSERT', condition: `NEW.name LIKE 'Raced %'` }, async ({ waits, release }) => {
        const first = create()
        await until(() => waits('advisory'), 'the first request holds its transaction open')
        const second = create()
        await until(() => waits('transactionid'), 'the second request waits for the first')
        await release()
        assert.equal((await first).status, 201)
        const refused = await second
        assert.equal(refused.status, 400, JSON.stringify(refused.body))
        assert.deepEqual(refused.body[field], [message])
        const later = await create()
        assert.equal(later.status, 400)
        assert.deepEqual(later.body[field], refused.body[field])
      })
    }
  })

  it('answers the request that loses a race to give the same role as a later duplicate: 201 with the winner\'s assignment, or 204 for associate/', async () => {
    const { organization } = await createOrgAndTeam(gw, 'Raced')
    const ways: [string, (user: number) => Promise<Answer>, number][] = [
      ['role_user_assignments/', (user) => call(gw, 'POST', 'role_user_assignments/', { role_definition: organizationMember, user, object_id: organization }), 201],
      ['associate/', (user) => call(gw, 'POST', `organizations/${organization}/admins/associate/`, { instances: [user] }), 204],
    ]
    for (const [way, give, status] of ways) {
      // The first request's transaction is held open once its assignment is written; the second's insert waits for it.
      await withHeldTransaction({ table: 'role_user_assignments', timing: 'AFTER', operation: 'INSERT', condition: `NEW.user_id = ${bob}` }, async ({ waits, release }) => {
        const first = give(bob)
        await until(() => waits('advisory'), 'the first request holds its transaction open')
        const second = give(bob)
        await until(() => waits('transactionid'), 'the second request waits for the first')
        await release()
        const answers = await Promise.all([first, second])
        assert.deepEqual(answers.map((a) => a.status), [status, status], `${way}: ${JSON.stringify(answers.map((a) => a.body))}`)
        if (status === 201) assert.equal(answers[0]!.body.id, answers[1]!.body.id)
      })
    }
    assert.equal(await assignmentsOn('organization', organization), 2, 'one Organization Member and one Organization Admin')
  })
})

interface HeldTransaction {
  /** Whether a request of this database waits for a lock of this kind (`advisory`, `tuple`, `transactionid`). */
  waits: (event: string) => Promise<boolean>
  release: () => Promise<void>
}

async function waitingFor(client: pg.Client, event: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND wait_event = $1`, [event])
  return rows[0].n > 0
}

/** Polls until `condition` holds; fails naming `what` after 30 s (a loaded machine is slow, not stuck). */
async function until(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`)
    await sleep(20)
  }
}
