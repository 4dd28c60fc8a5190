import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { AccessModel } from '../../src/access/model.ts'
import type { EventBus } from '../../src/store/event-bus.ts'
import type { User } from '../../src/store/users.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'
import { seedOrganizationMembers } from '../helpers/seed-members.ts'

const MEMBERS = 2_000
const noBus = { on() {}, onMissed() {} } as unknown as EventBus

/**
 * Every change of access anywhere makes every process read the access snapshot again. Working out each member's
 * access at each reload (their teams, organizations, roles, group paths, each frozen) took some three seconds of the
 * process's one thread with 100,000 members, while every request waited; a user's access is now worked out when asked
 * for, and kept until the next reload.
 */
describe('reloading the access model', () => {
  const db = openForSuite(storeBackends[0]!)

  it('works out no member\'s access until asked for, and then the same as before', async () => {
    const { store } = db
    const organization = await store.access.createOrganization({ name: 'Platform' })
    const team = await store.access.createTeam({ name: 'Automation', organizationId: organization.id })
    const orgMember = (await store.access.findRoleDefinitionByName('Organization Member'))!
    const teamMember = (await store.access.findRoleDefinitionByName('Team Member'))!
    await store.access.assign({ actor: 'team', actorId: team.id, roleDefinitionId: orgMember.id, objectType: 'organization', objectId: organization.id })
    const users: User[] = []
    await store.transaction(async (tx) => {
      for (let i = 0; i < MEMBERS; i++) {
        const user = await tx.users.create({ username: `member-${i}` })
        await tx.access.assign({ actor: 'user', actorId: user.id, roleDefinitionId: teamMember.id, objectType: 'team', objectId: team.id })
        users.push(user)
      }
    })
    const model = new AccessModel(store, noBus, new Set())
    const freeze = Object.freeze
    let frozen = 0
    Object.freeze = ((value: unknown) => {
      frozen++
      return freeze(value)
    }) as typeof Object.freeze
    try {
      await model.reload()
    } finally {
      Object.freeze = freeze
    }
    assert.ok(frozen < MEMBERS, `${frozen} objects frozen reading ${MEMBERS} members' access`)

    const access = model.of(users[7]!)
    assert.deepEqual(access.teams.map((t) => t.name), ['Automation'])
    assert.deepEqual(access.organizations.map((o) => o.name), ['Platform'], 'a member of the organization through the team')
    assert.deepEqual(access.groups, ['/Platform', '/Platform/Automation'])
    assert.equal(model.of(users[7]!), access, 'kept')
    const visible = model.visibleTo(users[7]!)
    assert.equal(visible?.users?.size, MEMBERS, 'sees the organization\'s members')
  })
})

const SEEDED = 30_000
/** The most this thread's time one turn of the event loop may take while a whole reload runs. */
const TURN_BOUND_MS = 50

/**
 * The longest turn of the event loop while `work` runs, in this thread's own time (what other work waited for; a
 * turn's wall time also counts other programs' use of the machine's cores).
 */
async function longestTurnDuring(work: () => Promise<void>): Promise<number> {
  const threadMs = () => {
    const { user, system } = process.threadCpuUsage()
    return (user + system) / 1000
  }
  let longest = 0
  let last = threadMs()
  const timer = setInterval(() => {
    const now = threadMs()
    longest = Math.max(longest, now - last)
    last = now
  }, 1)
  try {
    await work()
    await sleep(5)
  } finally {
    clearInterval(timer)
  }
  return longest
}

/**
 * A whole reload (a role definition changed, news lost) read and worked out every assignment in one turn of the event
 * loop: some four seconds with 200,000 of them, while every request of the process waited. It now lets other work run
 * between pages and slices, and swaps the finished snapshot in at once.
 */
for (const backend of storeBackends) {
  describe(`a whole reload of the access model (${backend.name})`, () => {
    const db = openForSuite(backend)

    it(`never holds the event loop longer than ${TURN_BOUND_MS} ms at a time, ${SEEDED} assignments`, async () => {
      await seedOrganizationMembers(db.store, SEEDED)
      const model = new AccessModel(db.store, noBus, new Set())
      await model.reload()
      const longest = await longestTurnDuring(() => model.reload())
      assert.ok(longest < TURN_BOUND_MS, `a turn of ${longest.toFixed(1)} ms`)
      const member = (await db.store.users.findByUsername('seeded-7'))!
      assert.deepEqual(model.of(member).organizations.map((o) => o.name), ['Seeded'])
      assert.ok(model.visibleTo(member)?.users?.has(member.id))
    })
  })
}

/**
 * A user's read naming a role definition this process has not read has the whole snapshot read again. The periodic
 * read waits first for a user's read under way; had that user's read waited for the whole read in turn, neither would
 * ever end, and the process would hold its snapshot, roles taken away included, until restarted.
 */
for (const backend of storeBackends) {
  describe(`a user's read finding a role definition not yet read while the periodic read waits for it (${backend.name})`, () => {
    const db = openForSuite(backend)

    it('ends, and the whole snapshot read again holds the role', async () => {
      const { store } = db
      const organization = await store.access.createOrganization({ name: 'Platform' })
      const user = await store.users.create({ username: 'nia' })
      const model = new AccessModel(store, noBus, new Set())
      await model.reload()
      // Written beside the event bus: the model has read neither.
      const role = await store.access.createRoleDefinition({ name: 'Unread', contentType: 'shared.organization', permissions: ['shared.view_organization'] })
      await store.access.assign({ actor: 'user', actorId: user.id, roleDefinitionId: role.id, objectType: 'organization', objectId: organization.id })
      const assignmentsOfUsers = store.access.assignmentsOfUsers
      const { promise: letGo, resolve: release } = Promise.withResolvers<void>()
      store.access.assignmentsOfUsers = async (...args) => {
        await letGo
        return assignmentsOfUsers.apply(store.access, args)
      }
      try {
        const userRead = model.reloadUsers([user.id])
        model.start(5)
        await sleep(100)
        model.stop()
        release()
        const ended = await Promise.race([userRead.then(() => true), sleep(3000).then(() => false)])
        assert.ok(ended, 'the user\'s read ended')
      } finally {
        release()
        store.access.assignmentsOfUsers = assignmentsOfUsers
        model.stop()
      }
      await model.reload()
      assert.deepEqual(model.of(user).roles, ['Unread'])
    })
  })
}
