import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KyselyPlugin } from 'kysely'
import { Migrator, sql } from '../../src/store/kysely.ts'
import { migrationProvider } from '../../src/store/migrations/index.ts'
import { MANAGED_ROLES } from '../../src/access/permissions.ts'
import { AccessRepository, AssignmentsFingerprint } from '../../src/store/access.ts'
import { openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'
import { queryPlan } from '../helpers/query-plan.ts'

for (const backend of storeBackends) {
  describe(`access records on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('starts with the managed role definitions, Platform Auditor as 1', async () => {
      const { results } = await db.store.access.listRoleDefinitions({ offset: 0, limit: 50 })
      const byName = <T extends { name: string }>(rows: readonly T[]) => [...rows].sort((a, b) => a.name.localeCompare(b.name))
      assert.deepEqual(byName(results).map((r) => [r.name, r.managed, r.contentType]), byName(MANAGED_ROLES).map((r) => [r.name, true, r.contentType]))
      assert.equal(results[0]!.name, 'Platform Auditor')
      assert.equal(results[0]!.id, 1)
      assert.deepEqual((await db.store.access.findRoleDefinitionByName('Team Member'))?.permissions, ['shared.view_team', 'shared.member_team'])
    })

    it('finds a user\'s and a team\'s assignments through an index on their holder', async () => {
      const { db: kysely } = db.store.database
      for (const [table, column, index] of [['role_user_assignments', 'user_id', 'role_user_assignments_user_id'], ['role_team_assignments', 'team_id', 'role_team_assignments_team_id']] as const) {
        const plan = await queryPlan(db.store, kysely.selectFrom(table as 'role_user_assignments').select('id').where(sql.ref(column), '=', 7))
        assert.match(plan, new RegExp(index), plan)
      }
    })

    it('keeps team names unique within an organization, not across them', async () => {
      const research = await db.store.access.createOrganization({ name: 'Research', description: 'labs' })
      const ops = await db.store.access.createOrganization({ name: 'Ops' })
      await db.store.access.createTeam({ name: 'Automation', organizationId: research.id })
      await db.store.access.createTeam({ name: 'Automation', organizationId: ops.id })
      await assert.rejects(db.store.access.createTeam({ name: 'Automation', organizationId: research.id }))
      await assert.rejects(db.store.access.createOrganization({ name: 'Research' }))
      const { count, results } = await db.store.access.listTeams({ offset: 0, limit: 10, organizationId: research.id })
      assert.equal(count, 1)
      assert.equal(results[0]!.organizationId, research.id)
    })

    it('grants a role once, lists and revokes it, and reads everything back in one snapshot', async () => {
      const user = await db.store.users.create({ username: 'alice' })
      const org = (await db.store.access.findOrganizationByName('Research'))!
      const team = (await db.store.access.findTeamByName(org.id, 'Automation'))!
      const member = (await db.store.access.findRoleDefinitionByName('Team Member'))!
      const first = await db.store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      const again = await db.store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      assert.equal(first.created, true)
      assert.deepEqual(again, { assignment: first.assignment, created: false })
      const orgMember = (await db.store.access.findRoleDefinitionByName('Organization Member'))!
      await db.store.access.assign({ roleDefinitionId: orgMember.id, actor: 'team', actorId: team.id, objectType: 'organization', objectId: org.id })
      const snapshot = await db.store.access.loadAll()
      assert.deepEqual(snapshot.assignments.map((a) => [a.actor, a.actorId, a.objectType, a.objectId]), [['user', user.id, 'team', team.id], ['team', team.id, 'organization', org.id]])
      assert.equal((await db.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 1)
      assert.equal(await db.store.access.unassign('user', first.assignment.id), true)
      assert.equal(await db.store.access.unassign('user', first.assignment.id), false)
    })

    it('deletes an organization with its teams and every role granted on them', async () => {
      const user = await db.store.users.create({ username: 'bob' })
      const org = await db.store.access.createOrganization({ name: 'Doomed' })
      const team = await db.store.access.createTeam({ name: 'Crew', organizationId: org.id })
      const admin = (await db.store.access.findRoleDefinitionByName('Organization Admin'))!
      const teamAdmin = (await db.store.access.findRoleDefinitionByName('Team Admin'))!
      await db.store.access.assign({ roleDefinitionId: admin.id, actor: 'user', actorId: user.id, objectType: 'organization', objectId: org.id })
      await db.store.access.assign({ roleDefinitionId: teamAdmin.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      assert.deepEqual((await db.store.access.deleteOrganization(org.id))?.map((gone) => gone.id), [team.id])
      assert.equal(await db.store.access.findTeam(team.id), undefined)
      assert.equal((await db.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 0)
    })

    it('deletes a team with the roles it held and the roles given on it, to users and to other teams', async () => {
      const user = await db.store.users.create({ username: 'leaver' })
      const org = await db.store.access.createOrganization({ name: 'Kept' })
      const leaving = await db.store.access.createTeam({ name: 'Leaving', organizationId: org.id })
      const staying = await db.store.access.createTeam({ name: 'Staying', organizationId: org.id })
      const member = (await db.store.access.findRoleDefinitionByName('Team Member'))!
      const orgMember = (await db.store.access.findRoleDefinitionByName('Organization Member'))!
      await db.store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: leaving.id })
      await db.store.access.assign({ roleDefinitionId: orgMember.id, actor: 'team', actorId: leaving.id, objectType: 'organization', objectId: org.id })
      await db.store.access.assign({ roleDefinitionId: member.id, actor: 'team', actorId: leaving.id, objectType: 'team', objectId: staying.id })
      await db.store.access.assign({ roleDefinitionId: member.id, actor: 'team', actorId: staying.id, objectType: 'team', objectId: leaving.id })
      assert.equal(await db.store.access.deleteTeam(leaving.id), true)
      const left = (await db.store.access.loadAll()).assignments.filter((a) => (a.actor === 'team' && a.actorId === leaving.id)
        || (a.objectType === 'team' && a.objectId === leaving.id) || (a.actor === 'user' && a.actorId === user.id))
      assert.deepEqual(left, [])
      assert.equal((await db.store.access.findTeam(staying.id))?.name, 'Staying')
    })

    it('adds the access tables to a database that already has later migrations', async () => {
      const other = await db.reopen()
      try {
        // SQLite drops no column an index names: migration 022's unique name within an organization goes first.
        await sql`DROP INDEX IF EXISTS oauth2_applications_organization_name`.execute(other.database.db)
        await sql`ALTER TABLE oauth2_applications DROP COLUMN organization_id`.execute(other.database.db)
        await sql`DELETE FROM kysely_migration WHERE name = '013_application_organization'`.execute(other.database.db)
        for (const table of ['role_user_assignments', 'role_team_assignments', 'teams', 'role_definitions', 'organizations']) {
          await sql`DROP TABLE ${sql.table(table)}`.execute(other.database.db)
        }
        await sql`DELETE FROM kysely_migration WHERE name = '010_access'`.execute(other.database.db)
        assert.deepEqual(await other.database.migrate(), ['010_access', '013_application_organization'])
        assert.equal((await other.access.listRoleDefinitions({ offset: 0, limit: 10 })).count, 5)
      } finally {
        await other.close()
      }
    })

    it('drops a deleted user\'s assignments with the account', async () => {
      const user = await db.store.users.create({ username: 'carol' })
      const auditor = (await db.store.access.findRoleDefinitionByName('Platform Auditor'))!
      await db.store.access.assign({ roleDefinitionId: auditor.id, actor: 'user', actorId: user.id, objectType: 'platform', objectId: 0 })
      await db.store.users.delete(user.id)
      assert.equal((await db.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 0)
    })

    it('reads the assignments a bounded number at a time, and all of them', async () => {
      const org = await db.store.access.createOrganization({ name: 'Paged' })
      const member = (await db.store.access.findRoleDefinitionByName('Organization Member'))!
      for (let i = 0; i < 25; i++) {
        const user = await db.store.users.create({ username: `paged-${i}` })
        await db.store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'organization', objectId: org.id })
      }
      const reads: { limit: boolean }[] = []
      const counting: KyselyPlugin = {
        transformQuery({ node }) {
          if (node.kind === 'SelectQueryNode' && /role_(user|team)_assignments/.test(JSON.stringify(node.from))) reads.push({ limit: node.limit !== undefined })
          return node
        },
        async transformResult({ result }) {
          return result
        },
      }
      const access = new AccessRepository(db.store.database.db.withPlugin(counting), db.store.database.dialect)
      const paged = await access.loadAll(10)
      assert.deepEqual(paged, await db.store.access.loadAll())
      assert.equal(paged.assignments.filter((a) => a.objectId === org.id).length, 25)
      assert.equal(reads.length, 4, 'three reads of the users\' 25, one of the teams\'')
      assert.ok(reads.every((read) => read.limit), 'each read bounded')
    })

    it('keeps a fingerprint of assignments held, as they are given and taken, equal to the database\'s', async () => {
      const org = await db.store.access.createOrganization({ name: 'Fingerprinted' })
      const member = (await db.store.access.findRoleDefinitionByName('Organization Member'))!
      const admin = (await db.store.access.findRoleDefinitionByName('Organization Admin'))!
      const held = new Map<number, number>()
      const running = new AssignmentsFingerprint()
      const usersPart = async () => (await db.store.access.assignmentsFingerprint()).split('/')[0]
      for (const { id } of (await db.store.access.loadAll()).assignments.filter((a) => a.actor === 'user')) {
        held.set(id, 0)
        running.add(id)
      }
      const give = async (userId: number, roleDefinitionId: number) => {
        const { assignment: { id } } = await db.store.access.assign({ roleDefinitionId, actor: 'user', actorId: userId, objectType: 'organization', objectId: org.id })
        held.set(id, userId)
        running.add(id)
        return id
      }
      const take = async (id: number) => {
        assert.ok(await db.store.access.unassign('user', id))
        held.delete(id)
        running.remove(id)
      }
      const users = await Promise.all(['fay', 'gus', 'hal'].map((username) => db.store.users.create({ username })))
      for (const user of users) await give(user.id, member.id)
      const newest = await give(users[0]!.id, admin.id)
      assert.equal(running.value(() => held.keys()), await usersPart())
      await take(newest)
      assert.equal(running.value(() => held.keys()), await usersPart(), 'the highest id taken')
      await take([...held].find(([, userId]) => userId === users[1]!.id)![0])
      await give(users[2]!.id, admin.id)
      await db.store.users.delete(users[2]!.id)
      for (const [id, userId] of [...held]) {
        if (userId !== users[2]!.id) continue
        held.delete(id)
        running.remove(id)
      }
      assert.equal(running.value(() => held.keys()), await usersPart(), 'a deleted account\'s taken with it')
    })
  })
}

describe('a running fingerprint of assignments', () => {
  it('sums ids exactly beyond Number\'s safe integers, as they are added and removed', () => {
    const ids = [2 ** 52 + 1, 2 ** 52 + 3, 2 ** 52 + 5, 2 ** 52 + 7]
    const running = new AssignmentsFingerprint()
    for (const id of ids) running.add(id)
    running.remove(ids[1]!)
    const left = [ids[0]!, ids[2]!, ids[3]!]
    const sum = left.reduce((total, id) => total + BigInt(id), 0n)
    assert.equal(running.value(() => left), `3:${ids[3]}:${sum}`)
    running.remove(ids[3]!)
    assert.equal(running.value(() => left.slice(0, 2)), `2:${ids[2]}:${BigInt(ids[0]!) + BigInt(ids[2]!)}`, 'the highest worked out again')
  })
})

for (const backend of unmigratedBackends) {
  describe(`role definitions numbered before Platform Auditor was 1, on ${backend.name}`, () => {
    it('trade ids with their assignments when the database is upgraded', async () => {
      const { store, cleanup } = await backend.open()
      try {
        const migrator = new Migrator({ db: store.database.db, provider: migrationProvider(store.database.dialect) })
        assert.equal((await migrator.migrateTo('014_oidc_token_indexes')).error, undefined)
        const role = async (name: string) => (await store.access.findRoleDefinitionByName(name))!
        const organizationAdmin = await role('Organization Admin')
        const auditor = await role('Platform Auditor')
        assert.deepEqual([organizationAdmin.id, auditor.id], [1, 5], 'as 010_access numbered them')
        const custom = await store.access.createRoleDefinition({ name: 'Custom', contentType: 'shared.team', permissions: ['shared.view_team'] })
        const user = await store.users.create({ username: 'held' })
        const organization = await store.access.createOrganization({ name: 'Held' })
        const team = await store.access.createTeam({ name: 'Holders', organizationId: organization.id })
        await store.access.assign({ roleDefinitionId: organizationAdmin.id, actor: 'user', actorId: user.id, objectType: 'organization', objectId: organization.id })
        await store.access.assign({ roleDefinitionId: auditor.id, actor: 'user', actorId: user.id, objectType: 'platform', objectId: 0 })
        await store.access.assign({ roleDefinitionId: organizationAdmin.id, actor: 'team', actorId: team.id, objectType: 'organization', objectId: organization.id })
        await store.access.assign({ roleDefinitionId: custom.id, actor: 'team', actorId: team.id, objectType: 'team', objectId: team.id })

        const lastEvent = Number((await store.database.db.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst())?.id ?? 0)
        // The later migrations run too: the one under test is the first.
        assert.equal((await store.database.migrate())[0], '015_platform_auditor_first')
        assert.deepEqual((await store.events.after(lastEvent)).map((event) => [event.topic, event.key]), [['access', 'role_definition']], 'running processes read the roles again')
        const after = { organizationAdmin: await role('Organization Admin'), auditor: await role('Platform Auditor'), custom: await role('Custom') }
        assert.deepEqual([after.auditor.id, after.organizationAdmin.id, after.custom.id], [1, 5, custom.id])
        assert.deepEqual(after.organizationAdmin.permissions, organizationAdmin.permissions)
        assert.equal(after.auditor.managed, true)
        assert.equal(after.auditor.contentType, null)
        assert.equal((await store.access.listRoleDefinitions({ offset: 0, limit: 50 })).count, 6)

        const held = (actor: 'user' | 'team', actorId: number) => store.access.listAssignments(actor, { offset: 0, limit: 10, actorId })
        assert.deepEqual((await held('user', user.id)).results.map((a) => [a.roleDefinitionId, a.objectType]).sort(), [[1, 'platform'], [5, 'organization']])
        assert.deepEqual((await held('team', team.id)).results.map((a) => [a.roleDefinitionId, a.objectType]).sort(), [[5, 'organization'], [custom.id, 'team']])
        const next = await store.access.createRoleDefinition({ name: 'After', contentType: 'shared.team', permissions: ['shared.view_team'] })
        assert.ok(next.id > custom.id, 'new role definitions still get fresh ids')
      } finally {
        await store.close()
        await cleanup()
      }
    })
  })
}
