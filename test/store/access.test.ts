import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { sql } from 'kysely'
import { MANAGED_ROLES } from '../../src/access/permissions.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends, type OpenedStore } from '../helpers/backends.ts'

for (const backend of storeBackends) {
  describe(`access records on ${backend.name}`, () => {
    let opened: OpenedStore
    let store: Store
    before(async () => {
      opened = await backend.open()
      store = opened.store
    })
    after(async () => {
      await store.close()
      await opened.cleanup()
    })

    it('starts with the managed role definitions', async () => {
      const { results } = await store.access.listRoleDefinitions({ offset: 0, limit: 50 })
      assert.deepEqual(results.map((r) => [r.name, r.managed, r.contentType]), MANAGED_ROLES.map((r) => [r.name, true, r.contentType]))
      assert.deepEqual((await store.access.findRoleDefinitionByName('Team Member'))?.permissions, ['shared.view_team', 'shared.member_team'])
    })

    it('keeps team names unique within an organization, not across them', async () => {
      const research = await store.access.createOrganization({ name: 'Research', description: 'labs' })
      const ops = await store.access.createOrganization({ name: 'Ops' })
      await store.access.createTeam({ name: 'Automation', organizationId: research.id })
      await store.access.createTeam({ name: 'Automation', organizationId: ops.id })
      await assert.rejects(store.access.createTeam({ name: 'Automation', organizationId: research.id }))
      await assert.rejects(store.access.createOrganization({ name: 'Research' }))
      const { count, results } = await store.access.listTeams({ offset: 0, limit: 10, organizationId: research.id })
      assert.equal(count, 1)
      assert.equal(results[0]!.organizationId, research.id)
    })

    it('grants a role once, lists and revokes it, and reads everything back in one snapshot', async () => {
      const user = await store.users.create({ username: 'alice' })
      const org = (await store.access.findOrganizationByName('Research'))!
      const team = (await store.access.findTeamByName(org.id, 'Automation'))!
      const member = (await store.access.findRoleDefinitionByName('Team Member'))!
      const first = await store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      const again = await store.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      assert.equal(again.id, first.id)
      const orgMember = (await store.access.findRoleDefinitionByName('Organization Member'))!
      await store.access.assign({ roleDefinitionId: orgMember.id, actor: 'team', actorId: team.id, objectType: 'organization', objectId: org.id })
      const snapshot = await store.access.loadAll()
      assert.deepEqual(snapshot.assignments.map((a) => [a.actor, a.actorId, a.objectType, a.objectId]), [['user', user.id, 'team', team.id], ['team', team.id, 'organization', org.id]])
      assert.equal((await store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 1)
      assert.equal(await store.access.unassign('user', first.id), true)
      assert.equal(await store.access.unassign('user', first.id), false)
    })

    it('deletes an organization with its teams and every role granted on them', async () => {
      const user = await store.users.create({ username: 'bob' })
      const org = await store.access.createOrganization({ name: 'Doomed' })
      const team = await store.access.createTeam({ name: 'Crew', organizationId: org.id })
      const admin = (await store.access.findRoleDefinitionByName('Organization Admin'))!
      const teamAdmin = (await store.access.findRoleDefinitionByName('Team Admin'))!
      await store.access.assign({ roleDefinitionId: admin.id, actor: 'user', actorId: user.id, objectType: 'organization', objectId: org.id })
      await store.access.assign({ roleDefinitionId: teamAdmin.id, actor: 'user', actorId: user.id, objectType: 'team', objectId: team.id })
      assert.equal(await store.access.deleteOrganization(org.id), true)
      assert.equal(await store.access.findTeam(team.id), undefined)
      assert.equal((await store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 0)
    })

    it('adds the access tables to a database that already has later migrations', async () => {
      const other = await opened.reopen()
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
      const user = await store.users.create({ username: 'carol' })
      const auditor = (await store.access.findRoleDefinitionByName('Platform Auditor'))!
      await store.access.assign({ roleDefinitionId: auditor.id, actor: 'user', actorId: user.id, objectType: 'platform', objectId: 0 })
      await store.users.delete(user.id)
      assert.equal((await store.access.listAssignments('user', { offset: 0, limit: 10, actorId: user.id })).count, 0)
    })
  })
}
