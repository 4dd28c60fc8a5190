import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'

/**
 * Who sees which organizations, teams, users and role assignments: those they may view, as django-ansible-base's
 * access_qs, visible_users and visible_items show them; superusers and auditors everything.
 */
for (const backend of gatewayBackends) {
  describe(`what each caller sees of organizations, teams, users and assignments on ${backend.name}`, () => {
    let gw: TestGateway
    let research: { organization: number; team: number | undefined }
    let ops: { organization: number; team: number | undefined }
    const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
    const names = async (path: string, who: string, field = 'name') => {
      const { status, body } = await call(gw, 'GET', path, undefined, as(who))
      assert.equal(status, 200, `${who} ${path}: ${JSON.stringify(body)}`)
      assert.equal(body.count, body.results.length, 'the count counts what is shown')
      return body.results.map((r: any) => r[field]).sort()
    }

    before(async () => {
      gw = await backend.start()
      for (const name of ['plain', 'researcher', 'labmember', 'opsmember', 'opsadmin', 'auditor']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
      research = await createOrgAndTeam(gw, 'Research', 'Lab')
      ops = await createOrgAndTeam(gw, 'Ops', 'Oncall')
      await grant(gw, 'researcher', 'Organization Member', research.organization)
      await grant(gw, 'labmember', 'Team Member', research.team)
      await grant(gw, 'opsmember', 'Organization Member', ops.organization)
      await grant(gw, 'auditor', 'Platform Auditor')
      await grant(gw, 'opsadmin', 'Organization Admin', ops.organization)
    })
    after(() => gw.close())

    it('shows a user with no role no organization, team or assignment, and of the users only themselves and the superusers', async () => {
      assert.deepEqual(await names('organizations/', 'plain'), [])
      assert.deepEqual(await names('teams/', 'plain'), [])
      assert.deepEqual(await names('role_user_assignments/', 'plain', 'id'), [])
      assert.deepEqual(await names('role_team_assignments/', 'plain', 'id'), [])
      assert.deepEqual(await names('users/', 'plain', 'username'), ['admin', 'plain'])
      assert.deepEqual(await names('users/?search=member', 'plain', 'username'), [])
    })

    it('answers 404 for an organization, team, user or assignment the caller may not see, as for one that does not exist', async () => {
      const assignment = (await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'opsmember')}`)).body.results[0].id
      for (const path of [`organizations/${research.organization}/`, `organizations/${research.organization}/teams/`, `teams/${research.team}/`,
        `users/${await userId(gw, 'opsmember')}/`, `users/${await userId(gw, 'opsmember')}/teams/`, `users/${await userId(gw, 'opsmember')}/organizations/`,
        `users/${await userId(gw, 'opsmember')}/access/`, `role_user_assignments/${assignment}/`]) {
        const { status, body } = await call(gw, 'GET', path, undefined, as('plain'))
        assert.equal(status, 404, `${path}: ${JSON.stringify(body)}`)
        assert.equal(body.code, 'not_found')
      }
      assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'admin')}/`, undefined, as('plain'))).status, 200, 'superusers show to everyone')
    })

    it('answers a change to an organization, team or assignment the caller may not see with 404, as for one that does not exist, and changes nothing', async () => {
      const assignment = (await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'opsmember')}`)).body.results[0].id
      const changes: [string, string, unknown][] = [
        ['PATCH', `organizations/${research.organization}/`, { description: 'mine now' }],
        ['PUT', `organizations/${research.organization}/`, { name: 'Research' }],
        ['DELETE', `organizations/${research.organization}/`, undefined],
        ['PATCH', `teams/${research.team}/`, { description: 'mine now' }],
        ['DELETE', `teams/${research.team}/`, undefined],
        ['DELETE', `role_user_assignments/${assignment}/`, undefined],
      ]
      for (const [method, path, body] of changes) {
        const answer = await call(gw, method, path, body, as('plain'))
        assert.equal(answer.status, 404, `${method} ${path}: ${JSON.stringify(answer.body)}`)
        assert.equal(answer.body.code, 'not_found')
      }
      // One the caller sees but may not change is refused as such.
      const seen = await call(gw, 'PATCH', `organizations/${research.organization}/`, { description: 'mine now' }, as('researcher'))
      assert.equal(seen.status, 403)
      assert.equal(seen.body.code, 'permission_denied')
      assert.equal((await call(gw, 'GET', `organizations/${research.organization}/`)).body.description, '')
      assert.equal((await call(gw, 'GET', `role_user_assignments/${assignment}/`)).status, 200)
    })

    it('shows an organization\'s members their organization, its members and its assignments, and nothing of another', async () => {
      assert.deepEqual(await names('organizations/', 'researcher'), ['Research'])
      assert.deepEqual(await names('teams/', 'researcher'), [], 'Organization Member holds no view_team')
      assert.deepEqual(await names('users/', 'researcher', 'username'), ['admin', 'researcher'])
      const assignments = (await call(gw, 'GET', 'role_user_assignments/', undefined, as('researcher'))).body.results
      assert.deepEqual(assignments.map((a: any) => a.summary_fields.content_object.name), ['Research'])
      assert.equal((await call(gw, 'GET', `organizations/${ops.organization}/`, undefined, as('researcher'))).status, 404)
      assert.deepEqual(await names('organizations/', 'opsmember'), ['Ops'])
      assert.deepEqual(await names('users/', 'opsmember', 'username'), ['admin', 'opsadmin', 'opsmember'])
    })

    it('shows a team\'s members their team and its assignments', async () => {
      assert.deepEqual(await names('teams/', 'labmember'), ['Lab'])
      assert.deepEqual(await names('organizations/', 'labmember'), [])
      assert.deepEqual(await names(`users/${await userId(gw, 'labmember')}/teams/`, 'labmember'), ['Lab'])
      const assignments = (await call(gw, 'GET', 'role_user_assignments/', undefined, as('labmember'))).body.results
      assert.deepEqual(assignments.map((a: any) => a.summary_fields.content_object.name), ['Lab'])
    })

    it('shows an organization admin their organization and its teams, and every user, to add them', async () => {
      assert.deepEqual(await names('organizations/', 'opsadmin'), ['Ops'])
      assert.deepEqual(await names('teams/', 'opsadmin'), ['Oncall'])
      assert.equal((await call(gw, 'GET', 'users/', undefined, as('opsadmin'))).body.count, 7)
      assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'labmember')}/`, undefined, as('opsadmin'))).status, 200)
      assert.deepEqual(await names(`users/${await userId(gw, 'labmember')}/teams/`, 'opsadmin'), [], 'but not their teams elsewhere')
    })

    it('shows superusers and auditors everything', async () => {
      for (const who of ['admin', 'auditor']) {
        const headers = who === 'admin' ? undefined : as(who)
        assert.equal((await call(gw, 'GET', 'organizations/', undefined, headers)).body.count, 2, who)
        assert.equal((await call(gw, 'GET', 'teams/', undefined, headers)).body.count, 2, who)
        assert.equal((await call(gw, 'GET', 'users/', undefined, headers)).body.count, 7, who)
        assert.equal((await call(gw, 'GET', 'role_user_assignments/', undefined, headers)).body.count, 5, who)
      }
    })
  })
}

describe('what a member of a large organization sees', () => {
  let gw: TestGateway
  // More members than SQLite takes parameters in one statement (32766).
  const MEMBERS = 33_000
  /** Within SQLite's parameters to a statement at 11 a row. */
  const ROWS_PER_STATEMENT = 1000

  before(async () => {
    gw = await gatewayBackends[0]!.start()
    await gw.app.accounts.create({ username: 'member', password: 'member-password-long' })
    const { organization } = await createOrgAndTeam(gw, 'Everyone')
    await grant(gw, 'member', 'Organization Member', organization)
    const role = (await call(gw, 'GET', 'role_definitions/?name=Organization%20Member')).body.results[0].id
    // Rows as the store's users.create and access.assign write them, many to a statement: one statement a row holds
    // the event loop for a minute or more on a slow machine.
    const now = Date.now()
    await gw.store.database.db.transaction().execute(async (trx) => {
      for (let first = 0; first < MEMBERS; first += ROWS_PER_STATEMENT) {
        const usernames = Array.from({ length: Math.min(ROWS_PER_STATEMENT, MEMBERS - first) }, (_, i) => `crowd${first + i}`)
        const users = await trx.insertInto('users').values(usernames.map((username) => ({
          username, email: '', first_name: '', last_name: '', password_hash: null, is_superuser: false, is_active: true, source: 'local', external: false, created_at: now, modified_at: now,
        }))).returning('id').execute()
        await trx.insertInto('role_user_assignments').values(users.map(({ id }) => ({
          role_definition_id: role, user_id: id, object_type: 'organization', object_id: organization, created_at: now,
        }))).execute()
      }
    })
    await gw.app.access.reload()
    // The inserts above held the event loop: the server's keep-alive timers for the client's idle connection may
    // fire only now. Let them close it before the test's request, or that request may be written to a connection
    // the server is closing (ECONNRESET).
    await sleep(200)
  })
  after(() => gw.close())

  it('lists every member, however many', async () => {
    const { status, body } = await call(gw, 'GET', 'users/?page_size=5&username__startswith=crowd', undefined, { authorization: basic('member', 'member-password-long') })
    assert.equal(status, 200, JSON.stringify(body))
    assert.equal(body.count, MEMBERS)
  })
})
