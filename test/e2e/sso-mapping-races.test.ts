import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, userId } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createRacingObjects, heldOn, racingMemberships, type RacingObjects, signInWhileDeleting } from '../helpers/mappings.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { signInWithSso, SSO } from '../helpers/sso.ts'
import { withTrigger } from '../helpers/triggers.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

const CREW = 'platform-crew'
/** The `created_at` of an assignment the trigger writes as another process's, which the trigger does not fire for again. */
const OTHER_PROCESS = 1

/**
 * An SSO provider's membership mappings racing other writers, through the real sign-in (a provider on a loopback port,
 * a browser following every redirect): a mapping's organization or team deleted while the sign-in gives its role (as
 * by another process, injected in the sign-in's transaction) is skipped with a warning naming the mapping, and the
 * sign-in goes on with the others; a role given by someone else at the same moment, or by two sign-ins of one
 * person at once, is held once, and every sign-in succeeds.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`SSO membership mappings racing other writers (${backend})`, () => {
  let corp: UpstreamIdp
  let gw: TestGateway
  let database: { url: string; drop: () => Promise<void> } | undefined
  const logLines: Record<string, unknown>[] = []
  let racing: RacingObjects
  let stayingTeam: number

  const person = (username: string) => ({ sub: `sub-${username}`, password: `${username}-upstream-pw`, claims: { preferred_username: username, groups: [CREW] } })

  before(async () => {
    database = backend === 'postgres' ? await createTestDatabase() : undefined
    corp = await startUpstreamIdp({ alice: person('alice'), bob: person('bob'), carol: person('carol'), dave: person('dave') })
    gw = await startGateway({
      ...(database ? { databaseUrl: database.url } : {}),
      logLines,
      logLevel: 'warn',
      config: {
        sso: [corp.ssoConfig({
          name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret',
          memberships: [...racingMemberships(CREW), { organization: 'Staying', team: 'Crew', groups: [CREW] }],
        })],
      },
    })
    corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}${SSO}corp/callback/`] })
    racing = await createRacingObjects(gw)
    stayingTeam = (await call(gw, 'POST', 'teams/', { name: 'Crew', organization: racing.staying })).body.id
  })
  after(async () => {
    await gw?.close()
    await corp?.close()
    await database?.drop()
  })

  /** A whole SSO sign-in as `login`; asserts it ended signed in, on the web interface. */
  const signIn = async (login: string) => {
    const { browser, page } = await signInWithSso(gw, 'Corp ID', login, corp)
    assert.equal(page.response.status, 200, page.body)
    assert.equal(page.url, `${gw.url}/ui/`)
    assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'signed in')
  }

  for (const deleted of ['organization', 'team'] as const) {
    it(`signs in without the role of a mapping whose ${deleted} is deleted meanwhile, leaves no assignment on it, and warns naming the mapping`, async () => {
      // Each a person the mappings have not yet given anything, so every role is given at this sign-in.
      const username = deleted === 'team' ? 'bob' : 'alice'
      await signInWhileDeleting(gw, logLines, racing, { source: 'sso', username, password: corp.users.get(username)!.password, deleted }, () => signIn(username))
      assert.equal(await heldOn(gw, username, 'team', stayingTeam), 1)
    })
  }

  it('holds a mapped role once when another process gives it during the sign-in, and signs in', async () => {
    // As another process's write landing first: the same assignment, inserted just before the sign-in's own.
    await withTrigger(gw.store.database, {
      table: 'role_user_assignments',
      timing: 'BEFORE',
      operation: 'INSERT',
      condition: `NEW.object_type = 'team' AND NEW.object_id = ${stayingTeam} AND NEW.created_at <> ${OTHER_PROCESS}`,
      action: { statement: `INSERT INTO role_user_assignments (role_definition_id, user_id, object_type, object_id, created_at) VALUES (NEW.role_definition_id, NEW.user_id, NEW.object_type, NEW.object_id, ${OTHER_PROCESS})` },
    }, async () => {
      await signIn('carol')
    })
    const { results } = await gw.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: await userId(gw, 'carol'), objectType: 'team', objectId: stayingTeam })
    assert.deepEqual(results.map((a) => a.created), [OTHER_PROCESS], 'the one the other process gave')
    assert.equal(await heldOn(gw, 'carol', 'organization', racing.staying), 1, 'the other mappings are given')
    const members = await call(gw, 'GET', `teams/${stayingTeam}/users/`)
    assert.deepEqual(members.body.results.map((u: { username: string }) => u.username).filter((name: string) => name === 'carol'), ['carol'])
  })

  it('gives each mapped role once when one person signs in twice at once, and signs in both times', async () => {
    // The account exists first (with no group): two first sign-ins at once race to create it, which is another matter.
    corp.users.get('dave')!.claims.groups = []
    await signIn('dave')
    corp.users.get('dave')!.claims.groups = [CREW]
    await Promise.all([signIn('dave'), signIn('dave')])
    assert.equal(await heldOn(gw, 'dave', 'organization', racing.staying), 1)
    assert.equal(await heldOn(gw, 'dave', 'team', stayingTeam), 1)
  })
})
