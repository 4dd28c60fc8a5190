import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { createRacingObjects, racingMemberships, type RacingObjects, signInWhileDeleting } from '../helpers/mappings.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { login } from '../helpers/session.ts'

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
  let racing: RacingObjects

  before(async () => {
    database = backend === 'postgres' ? await createTestDatabase() : undefined
    directory = await startDirectory()
    gw = await startGateway({
      ...(database ? { databaseUrl: database.url } : {}),
      logLines,
      logLevel: 'warn',
      config: {
        ldap: directory.config({ memberships: racingMemberships(GROUPS.developers) }),
      },
    })
    racing = await createRacingObjects(gw)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
    await database?.drop()
  })

  for (const deleted of ['organization', 'team'] as const) {
    it(`signs in without the role of a mapping whose ${deleted} is deleted meanwhile, leaves no assignment on it, and warns naming the mapping`, async () => {
      // Each a user the mappings have not yet given anything, so every role is given at this sign-in.
      const username = deleted === 'team' ? 'bob' : 'alice'
      await signInWhileDeleting(gw, logLines, racing, { source: 'ldap', username, password: PASSWORDS[username]!, deleted }, async () => {
        await login(gw, username, PASSWORDS[username]!)
      })
    })
  }
})
