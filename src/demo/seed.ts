import { configuredNames } from '../access/rules.ts'
import { SYSTEM_ACTOR } from '../audit/actor.ts'
import { serializeOrganization, serializeTeam } from '../api/organizations.ts'
import type { App } from '../app.ts'
import type { Organization, Team } from '../store/access.ts'
import { UniqueViolation } from '../store/errors.ts'
import { ACCESS_TOPIC } from '../store/topics.ts'

/** Why the audit trail shows these made by Gatehouse itself, with no actor. */
export const DEMO_SEED = 'demo_seed'

const DESCRIPTION = 'Created by serve --demo, for the access rules of the demo configuration.'

/**
 * Creates the organizations, and the teams of organizations, that the demo configuration's access rules name and
 * the database does not have yet, so that a first `npm start` runs those rules as written, with nothing to warn
 * of. Only what is missing is made: a second start, or one after an administrator deleted or renamed them, finds
 * and makes what it must. Processes starting together (`--workers`) may race on PostgreSQL: the one that loses
 * finds the winner's rows when it tries again.
 */
export async function seedDemoAccess(app: App): Promise<void> {
  const wanted = configuredNames(app.config).filter((name) => name.by === 'rule' && name.organization !== undefined)
  if (!wanted.length) return
  let created: { organizations: Organization[]; teams: Team[] }
  try {
    created = await createMissing(app, wanted)
  } catch (error) {
    if (!(error instanceof UniqueViolation)) throw error
    created = await createMissing(app, wanted)
  }
  for (const organization of created.organizations) {
    app.audit.change(SYSTEM_ACTOR, 'create', { type: 'organization', id: organization.id, name: organization.name }, undefined, serializeOrganization(organization), DEMO_SEED)
  }
  for (const team of created.teams) {
    app.audit.change(SYSTEM_ACTOR, 'create', { type: 'team', id: team.id, name: team.name }, undefined, serializeTeam(app, team), DEMO_SEED)
  }
}

function createMissing(app: App, wanted: readonly { organization?: string | undefined; team?: string | undefined }[]) {
  return app.bus.change(async (tx, announce) => {
    const organizations: Organization[] = []
    const teams: Team[] = []
    for (const { organization: organizationName, team: teamName } of wanted) {
      let organization = await tx.access.findOrganizationByName(organizationName!)
      if (!organization) {
        organization = await tx.access.createOrganization({ name: organizationName!, description: DESCRIPTION })
        organizations.push(organization)
      }
      if (teamName !== undefined && !await tx.access.findTeamByName(organization.id, teamName)) {
        teams.push(await tx.access.createTeam({ name: teamName, organizationId: organization.id, description: DESCRIPTION }))
      }
    }
    if (organizations.length || teams.length) announce(ACCESS_TOPIC, 'demo')
    return { organizations, teams }
  })
}
