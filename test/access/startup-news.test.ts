import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { createApp, type App } from '../../src/app.ts'
import { validateConfig } from '../../src/config/load.ts'
import type { User } from '../../src/store/users.ts'
import { openTwoForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * A process that starts beside a running one loads its caches (the access model among them) before its event bus
 * runs. A change the running process commits in between must still reach it: a role taken away then used to stay
 * given in the new process until the next change of access anywhere, or its restart.
 */
for (const backend of storeBackends) {
  describe(`a change committed while another process starts reaches it (${backend.name})`, () => {
    const stores = openTwoForSuite(backend)
    let running: App
    let starting: App | undefined
    let admin: User
    let member: User

    before(async () => {
      running = await createApp(validateConfig({ auth: { max_stale_seconds: 2 } }), stores.store)
      await running.bus.start(60_000)
      admin = await running.accounts.create({ username: 'root', password: 'root-password-long', isSuperuser: true })
      member = await running.accounts.create({ username: 'mia', password: 'mia-password-long' })
    })
    after(async () => {
      await starting?.close()
      await running?.close()
    })

    it('takes a team membership revoked between loading the access model and starting the bus as revoked', async () => {
      const organization = await running.accessAdmin.createOrganization(admin, { name: 'Platform' })
      const team = await running.accessAdmin.createTeam(admin, { name: 'Automation', organizationId: organization.id })
      const teamMember = (await stores.store.access.findRoleDefinitionByName('Team Member'))!
      const given = await running.accessAdmin.assign(admin, 'user', { roleDefinitionId: teamMember.id, actorId: member.id, objectId: team.id })

      starting = await createApp(validateConfig({}), stores.other)
      assert.deepEqual(starting.access.of(member).teams.map((t) => t.name), ['Automation'], 'loaded with the membership')
      await running.accessAdmin.unassign(admin, 'user', given.assignment.id)
      await starting.bus.start(60_000)

      assert.deepEqual(running.access.of(member).teams, [])
      assert.deepEqual(starting.access.of(member).teams, [], 'the starting process applied the news it had not yet heard')
    })

    it('reads the access model again within max_stale_seconds, so that a change whose news it never read is applied too', async () => {
      const team = running.access.teams.find((t) => t.name === 'Automation')!
      const teamMember = (await stores.store.access.findRoleDefinitionByName('Team Member'))!
      // Written beside the event bus: no process hears of it but by reading the model again.
      const given = await stores.store.access.assign({ actor: 'user', actorId: member.id, roleDefinitionId: teamMember.id, objectType: 'team', objectId: team.id })
      assert.ok(given)
      assert.deepEqual(running.access.of(member).teams, [], 'not heard of')
      await sleep(2500)
      assert.deepEqual(running.access.of(member).teams.map((t) => t.name), ['Automation'])
    })

    it('never applies a read begun before a change after the change\'s own reload', async () => {
      const organization = running.access.organizations.find((o) => o.name === 'Platform')!
      const team = await running.accessAdmin.createTeam(admin, { name: 'Oncall', organizationId: organization.id })
      const teamMember = (await stores.store.access.findRoleDefinitionByName('Team Member'))!
      const given = await running.accessAdmin.assign(admin, 'user', { roleDefinitionId: teamMember.id, actorId: member.id, objectId: team.id })
      assert.ok(running.access.of(member).teams.some((t) => t.name === 'Oncall'))
      // The next read of the model (the periodic one's) takes 300 ms to come back with what it read at once; its
      // fingerprint never matches, so that it reads the whole snapshot.
      const access = stores.store.access
      const assignmentPages = access.assignmentPages.bind(access)
      const assignmentsFingerprint = access.assignmentsFingerprint.bind(access)
      access.assignmentsFingerprint = async () => `${await assignmentsFingerprint()} never held`
      let slowed = false
      const { promise: read, resolve: readDone } = Promise.withResolvers<void>()
      access.assignmentPages = async function* (...args) {
        const pages = []
        for await (const page of assignmentPages(...args)) pages.push(page)
        if (!slowed) {
          slowed = true
          readDone()
          await sleep(300)
        }
        yield* pages
      }
      try {
        await read
        await running.accessAdmin.unassign(admin, 'user', given.assignment.id)
        assert.ok(!running.access.of(member).teams.some((t) => t.name === 'Oncall'), 'taken away at once')
        await sleep(400)
        assert.ok(!running.access.of(member).teams.some((t) => t.name === 'Oncall'), 'and still, once the read begun before came back')
      } finally {
        access.assignmentPages = assignmentPages
        access.assignmentsFingerprint = assignmentsFingerprint
      }
    })

    it('reads no assignment again while nothing changed, and reads them all once an assignment goes or an organization is renamed beside the bus', async () => {
      const access = stores.store.access
      await running.access.reload()
      const assignmentPages = access.assignmentPages.bind(access)
      let wholeReads = 0
      access.assignmentPages = (...args) => {
        wholeReads++
        return assignmentPages(...args)
      }
      try {
        await sleep(2500)
        assert.equal(wholeReads, 0, 'the periodic reads found nothing changed without reading every assignment')

        const organization = running.access.organizations.find((o) => o.name === 'Platform')!
        await access.updateOrganization(organization.id, { name: 'Platform Engineering' })
        await sleep(2500)
        assert.ok(running.access.organizations.some((o) => o.name === 'Platform Engineering'), 'the rename beside the bus applied')

        const team = running.access.teams.find((t) => t.name === 'Automation')!
        const held = await access.listAssignments('user', { offset: 0, limit: 10, actorId: member.id, objectType: 'team', objectId: team.id })
        assert.ok(held.results.length)
        for (const assignment of held.results) assert.ok(await access.unassign('user', assignment.id))
        assert.ok(running.access.of(member).teams.some((t) => t.name === 'Automation'), 'not heard of')
        await sleep(2500)
        assert.ok(!running.access.of(member).teams.some((t) => t.name === 'Automation'), 'the assignment deleted beside the bus is gone')
      } finally {
        access.assignmentPages = assignmentPages
      }
    })
  })
}
