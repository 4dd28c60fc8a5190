import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, before, beforeEach, describe, it } from 'node:test'
import type { App } from '../../src/app.ts'
import type { Organization, RoleDefinition, Team } from '../../src/store/access.ts'
import type { User } from '../../src/store/users.ts'
import { countReads, holdWholeRead, twoProcessesForSuite } from '../helpers/access-model.ts'
import { openTwoForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * A role given to or taken from a team (a role on its organization, or a membership of another team) is news naming
 * that team: every other process reads that team's own assignments again, not every assignment, and works out again
 * what it passes on and its members' access, no one else's.
 */
for (const backend of storeBackends) {
  describe(`access news naming a team, between two processes (${backend.name})`, () => {
    const stores = openTwoForSuite(backend)
    let publisher: App
    let other: App
    let admin: User
    let member: User
    let outsider: User
    let organization: Organization
    let team: Team
    let roles: Record<'orgAdmin' | 'orgMember' | 'teamMember', RoleDefinition>
    let wholeReads: ReturnType<typeof countReads>
    let teamReads: ReturnType<typeof countReads>
    /** The users whose access the other process worked out again, by each reload's listener; `all` for a whole reload. */
    let forgotten: (number | 'all')[] = []

    async function seenByOther(user: User): Promise<ReturnType<App['access']['of']>> {
      await other.bus.sync()
      return other.access.of((await stores.other.users.findById(user.id)) ?? user)
    }

    const canChange = (user: User) => other.access.can(user, 'shared.change_organization', 'organization', organization.id)

    const two = twoProcessesForSuite(stores)

    before(async () => {
      ({ publisher, other, admin, member, organization, team, roles } = two)
      other.access.onReload((users) => forgotten.push(...(users ?? ['all' as const])))
      outsider = await publisher.accounts.create({ username: 'otto', password: 'otto-password-long' })
      await publisher.accessAdmin.assign(admin, 'user', { roleDefinitionId: roles.teamMember.id, actorId: member.id, objectId: team.id })
      await publisher.accessAdmin.assign(admin, 'user', { roleDefinitionId: roles.orgMember.id, actorId: outsider.id, objectId: organization.id })
      await other.bus.sync()
    })
    beforeEach(() => {
      forgotten = []
      wholeReads = countReads(stores.other, 'assignmentPages')
      teamReads = countReads(stores.other, 'assignmentsOfTeams')
    })
    afterEach(() => {
      wholeReads.restore()
      teamReads.restore()
    })

    it('gives and takes a team\'s role in the other process reading only that team\'s assignments, and working out only its members\' access', async () => {
      assert.ok(!canChange(member))
      assert.ok(!(await seenByOther(outsider)).roleNames.has('Organization Admin'), 'the outsider\'s access worked out before the change')
      const given = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgAdmin.id, actorId: team.id, objectId: organization.id })
      assert.deepEqual((await seenByOther(member)).roles, ['Organization Admin', 'Team Member'])
      assert.ok(canChange(member), 'given through the team')
      assert.ok(!canChange(outsider), 'not to others')
      assert.deepEqual(forgotten, [member.id], 'only the team\'s member worked out again')
      await publisher.accessAdmin.unassign(admin, 'team', given.assignment.id)
      await seenByOther(member)
      assert.ok(!canChange(member), 'taken')
      assert.deepEqual(other.access.heldByTeam(team.id), [])
      assert.equal(wholeReads.count, 0, 'no assignment but the team\'s read again')
      assert.equal(teamReads.count, 2)
    })

    it('makes a team\'s members members of its organization through it, and no longer', async () => {
      const given = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgMember.id, actorId: team.id, objectId: organization.id })
      assert.deepEqual((await seenByOther(member)).groups, ['/Platform', '/Platform/Automation'])
      assert.ok(other.access.visibleTo(outsider)?.users?.has(member.id), 'among the organization\'s members')
      await publisher.accessAdmin.unassign(admin, 'team', given.assignment.id)
      assert.deepEqual((await seenByOther(member)).groups, ['/Platform/Automation'])
      assert.ok(!other.access.visibleTo(outsider)?.users?.has(member.id), 'no longer among the organization\'s members')
      assert.equal(wholeReads.count, 0)
    })

    it('passes a team\'s role on to the members of a team made a member of it, and stops when that membership is taken', async () => {
      const nested = await publisher.accessAdmin.createTeam(admin, { name: 'Nested', organizationId: organization.id })
      const nestedMember = await publisher.accounts.create({ username: 'nia', password: 'nia-password-long' })
      await publisher.accessAdmin.assign(admin, 'user', { roleDefinitionId: roles.teamMember.id, actorId: nestedMember.id, objectId: nested.id })
      const membership = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.teamMember.id, actorId: nested.id, objectId: team.id })
      assert.deepEqual((await seenByOther(nestedMember)).teams.map((t) => t.name), ['Nested', 'Automation'])
      // The team's creation is news for everyone, and read with the assignments after it may have had everything read once.
      forgotten = []
      wholeReads.reset()
      const given = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgAdmin.id, actorId: team.id, objectId: organization.id })
      await seenByOther(nestedMember)
      assert.ok(canChange(nestedMember), 'through the team it is a member of')
      assert.deepEqual(new Set(forgotten), new Set([member.id, nestedMember.id]))
      await publisher.accessAdmin.unassign(admin, 'team', membership.assignment.id)
      assert.deepEqual((await seenByOther(nestedMember)).teams.map((t) => t.name), ['Nested'])
      assert.ok(!canChange(nestedMember), 'no longer a member of the team that holds it')
      assert.ok(canChange(member))
      await publisher.accessAdmin.unassign(admin, 'team', given.assignment.id)
      await seenByOther(member)
      assert.equal(wholeReads.count, 0)
    })

    for (const [how, after] of [['reading every assignment', 'pages'], ['from the assignments held', 'objects']] as const) {
      // Bounded: were the team's news a whole reload, it would wait behind the one held, and the test with it.
      it(`takes a team's role away at once while a whole read ${how} is under way, and the snapshot it swaps in leaves it taken`, { timeout: 20_000 }, async () => {
        const given = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgAdmin.id, actorId: team.id, objectId: organization.id })
        await seenByOther(member)
        assert.ok(canChange(member))
        const held = holdWholeRead(stores.other, after)
        try {
          const wholeRead = other.access.reload()
          await held.reached
          await publisher.accessAdmin.unassign(admin, 'team', given.assignment.id)
          await other.bus.sync()
          assert.ok(!canChange(member), 'taken away before the whole read ends')
          held.release()
          await wholeRead
          assert.ok(!canChange(member), 'still taken once the snapshot built before it is swapped in')
        } finally {
          held.restore()
        }
      })
    }

    it('holds what the database holds after reading teams one by one, so the periodic read finds nothing to read', async () => {
      const given = await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgAdmin.id, actorId: team.id, objectId: organization.id })
      await publisher.accessAdmin.assign(admin, 'team', { roleDefinitionId: roles.orgMember.id, actorId: team.id, objectId: organization.id })
      // The newest taken away: the fingerprint held finds its highest id again.
      await publisher.accessAdmin.unassign(admin, 'team', given.assignment.id)
      await seenByOther(member)
      await sleep(2500)
      assert.equal(wholeReads.count, 0, 'the assignments held after each team\'s news match the database\'s fingerprint')
      assert.deepEqual((await seenByOther(member)).roles, ['Organization Member', 'Team Member'])
    })
  })
}
