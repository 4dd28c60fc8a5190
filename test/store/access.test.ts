import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sql } from '../../src/store/kysely.ts'
import { MANAGED_ROLES } from '../../src/access/permissions.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

for (const backend of storeBackends) {
  describe(`access records on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('starts with the managed role definitions', async () => {
      const { results } = await db.store.access.listRoleDefinitions({ offset: 0, limit: 50 })
      assert.deepEqual(results.map((r) => [r.name, r.managed, r.contentType]), MANAGED_ROLES.map((r) => [r.name, true, r.contentType]))
      assert.deepEqual((await db.store.access.findRoleDefinitionByName('Team Member'))?.permissions, ['shared.view_team', 'shared.member_team'])
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
      assert.equal(again.id, first.id)
      const orgMember = (await db.store.access.findRoleDefinitionByName('Organization Member'))!
      await db.store.access.assign({ roleDefinitionId: orgMember.id, actor: 'team', actorId: team.id, objectType: 'organization', objectId: org.id })
      const snapshot = await db.store.access.loadAll()
      assert.deepEqual(snapshot.assignments.map((a) => [a.actor, a.actorId, a.objectType, a.objectId]), [['user', user.id, 'team', team.id], ['team', team.id, 'organization', org.id]])
      assert.equal((await db.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 1)
      assert.equal(await db.store.access.unassign('user', first.id), true)
      assert.equal(await db.store.access.unassign('user', first.id), false)
    })

    it('deletes an organization with its teams and every role granted on them', async () => {
      const user = await db.store.users.create({ username: 'bob' })
      const org = await db.store.access.createOrganization({ name: 'Doomed' })
      const team = await db.store.access.createTeam({ name: 'Crew', organizationId: org.id })
      const admin = (await db.store.access.findRoleDefinitionByName('Organization Admin'))!
      const teamAdmin = (await db.store.access.findRoleDefinitionByName('Team Admin'))!
      await db.store.access.assign({ roleDefinitionId: admin.id, actor: 'user', actorId: user.id, objectType: 'organization', objectId: org.id })
      await db.store.access.assign({ roleDefinitionId: teamAdmin.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      assert.equal(await db.store.access.deleteOrganization(org.id), true)
      assert.equal(await db.store.access.findTeam(team.id), undefined)
      assert.equal((await db.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 0)
    })

    it('adds the access tables to a database that already has later migrations', async () => {
      const other = await db.reopen()
      try {
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
  })
}
