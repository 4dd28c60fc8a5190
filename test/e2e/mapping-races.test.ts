import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, userId } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { login } from '../helpers/session.ts'
import { withTrigger } from '../helpers/triggers.ts'

/**
 * A directory mapping's organization or team deleted while a sign-in gives its role (as by another process, injected
 * in the sign-in's transaction): the sign-in succeeds without that role, the others are given, no assignment is left
 * naming what is gone, and a warning names the mapping.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`membership mappings racing deletions (${backend})`, () => {
  let directory: TestDirectory
  let gw: TestGateway
  let database: { url: string; drop: () => Promise<void> } | undefined
  const logLines: Record<string, unknown>[] = []
  let vanishing: number
  let gone: number
  let staying: number

  before(async () => {
    database = backend === 'postgres' ? await createTestDatabase() : undefined
    directory = await startDirectory()
    gw = await startGateway({
      ...(database ? { databaseUrl: database.url } : {}),
      logLines,
      logLevel: 'warn',
      config: {
        ldap: directory.config({
          memberships: [
            { organization: 'Vanishing', groups: [GROUPS.developers] },
            { organization: 'Vanishing Teams', team: 'Gone', role: 'admin', groups: [GROUPS.developers] },
            { organization: 'Staying', groups: [GROUPS.developers] },
          ],
        }),
      },
    })
    vanishing = (await createOrgAndTeam(gw, 'Vanishing')).organization
    gone = (await createOrgAndTeam(gw, 'Vanishing Teams', 'Gone')).team!
    staying = (await createOrgAndTeam(gw, 'Staying')).organization
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
    await database?.drop()
  })

  /** Roles `username` holds on `type` `id`, read from the database, as the API hides none of them here. */
  const heldOn = async (username: string, type: 'organization' | 'team', id: number) =>
    (await gw.store.access.listAssignments('user', { offset: 0, limit: 1, actorId: await userId(gw, username), objectType: type, objectId: id })).count

  for (const deleted of ['organization', 'team'] as const) {
    it(`signs in without the role of a mapping whose ${deleted} is deleted meanwhile, leaves no assignment on it, and warns naming the mapping`, async () => {
      const [table, id] = deleted === 'team' ? ['teams', gone] : ['organizations', vanishing]
      // Each a user the mappings have not yet given anything, so every role is given at this sign-in.
      const username = deleted === 'team' ? 'bob' : 'alice'
      await withTrigger(gw.store.database, { table: 'role_user_assignments', timing: 'AFTER', operation: 'INSERT', condition: `NEW.object_type = '${deleted}' AND NEW.object_id = ${id}`, action: { statement: `DELETE FROM ${table} WHERE id = ${id}` } }, async () => {
        await login(gw, username, PASSWORDS[username]!)
      })
      assert.equal(await heldOn(username, deleted, id), 0)
      const warned = logLines.find((line) => line.organization === (deleted === 'team' ? 'Vanishing Teams' : 'Vanishing') && line.user === username)
      assert.ok(warned, JSON.stringify(logLines))
      assert.equal(warned.source, 'ldap')
      assert.equal(warned.team, deleted === 'team' ? 'Gone' : undefined)
      assert.ok(!JSON.stringify(logLines).includes(PASSWORDS[username]!), 'no password in the log')
      assert.equal(await heldOn(username, 'organization', staying), 1, 'the other mappings are given')
    })
  }
})
