import assert from 'node:assert/strict'
import { createOrgAndTeam, userId } from './access.ts'
import type { TestGateway } from './gateway.ts'
import { withTrigger } from './triggers.ts'

/** Roles `username` holds on `type` `id`, read from the database, as the API hides none of them there. */
export async function heldOn(gw: TestGateway, username: string, type: 'organization' | 'team', id: number): Promise<number> {
  return (await gw.store.access.listAssignments('user', { offset: 0, limit: 10, actorId: await userId(gw, username), objectType: type, objectId: id })).count
}

/**
 * The membership mappings of a sign-in racing deletions, for a source's config: two whose organization or team a
 * test deletes while the sign-in gives their roles, and one that stays.
 */
export function racingMemberships(group: string): { organization: string; team?: string; role?: string; groups: string[] }[] {
  return [
    { organization: 'Vanishing', groups: [group] },
    { organization: 'Vanishing Teams', team: 'Gone', role: 'admin', groups: [group] },
    { organization: 'Staying', groups: [group] },
  ]
}

/** The ids of what `racingMemberships` names. */
export interface RacingObjects {
  vanishing: number
  gone: number
  staying: number
}

/** Creates the organizations and the team that `racingMemberships` names. */
export async function createRacingObjects(gw: TestGateway): Promise<RacingObjects> {
  return {
    vanishing: (await createOrgAndTeam(gw, 'Vanishing')).organization,
    gone: (await createOrgAndTeam(gw, 'Vanishing Teams', 'Gone')).team!,
    staying: (await createOrgAndTeam(gw, 'Staying')).organization,
  }
}

/** A sign-in during which the organization (or the team) of one of `racingMemberships` is deleted. */
export interface DeletedDuringSignIn {
  source: 'ldap' | 'sso'
  username: string
  password: string
  deleted: 'organization' | 'team'
}

/**
 * Runs `signIn` while a trigger deletes the organization or team as soon as the sign-in's transaction gives a role on
 * it (as another process would), then checks that the sign-in went on without that role, left no assignment naming
 * what is gone, warned naming the source, user and mapping (and no password), and gave the staying mapping's role.
 */
export async function signInWhileDeleting(gw: TestGateway, logLines: readonly Record<string, unknown>[], racing: RacingObjects, race: DeletedDuringSignIn, signIn: () => Promise<void>): Promise<void> {
  const [table, id, organization, team] = race.deleted === 'team' ? ['teams', racing.gone, 'Vanishing Teams', 'Gone'] : ['organizations', racing.vanishing, 'Vanishing', undefined]
  await withTrigger(gw.store.database, { table: 'role_user_assignments', timing: 'AFTER', operation: 'INSERT', condition: `NEW.object_type = '${race.deleted}' AND NEW.object_id = ${id}`, action: { statement: `DELETE FROM ${table} WHERE id = ${id}` } }, signIn)
  assert.equal(await heldOn(gw, race.username, race.deleted, id), 0)
  const warned = logLines.find((line) => line.organization === organization && line.user === race.username)
  assert.ok(warned, JSON.stringify(logLines))
  assert.equal(warned.source, race.source)
  assert.equal(warned.team, team)
  assert.ok(!JSON.stringify(logLines).includes(race.password), 'no password in the log')
  assert.equal(await heldOn(gw, race.username, 'organization', racing.staying), 1, 'the other mappings are given')
}
