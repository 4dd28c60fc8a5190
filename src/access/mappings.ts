import { mappingActor } from '../audit/actor.ts'
import type { AuditTrail } from '../audit/trail.ts'
import type { MembershipMapping } from '../config/access.ts'
import type { RoleAssignment } from '../store/access.ts'
import type { User } from '../store/users.ts'
import type { AccessAdmin, MappedGrant } from './admin.ts'
import type { AccessModel } from './model.ts'

const ROLE_NAMES = {
  team: { member: 'Team Member', admin: 'Team Admin' },
  organization: { member: 'Organization Member', admin: 'Organization Admin' },
} as const

/** A mapping whose organization or team was deleted during a sign-in, so its grant was not given. */
export interface SkippedMapping {
  source: 'ldap' | 'sso'
  user: User
  mapping: MembershipMapping
}

/**
 * Memberships from the directory's groups or an SSO provider's groups claim, set at every login: each mapping
 * whose groups the user is in grants its role, each other mapping's role is revoked. Grants no mapping names
 * (given by an administrator) are left alone. Names are resolved against the in-memory snapshot, so a team
 * created after start is mapped from the next login on; until then the mapping is skipped (serve warns of it at
 * start: src/access/rules.ts `unknownNames`). Each assignment a mapping makes or ends is in the audit trail, made
 * by the source (`ldap` or `sso`) on the signing-in user's behalf. A grant whose organization or team is deleted
 * while it is given is skipped (src/access/admin.ts `applyMapped`) and reported to `onSkipped`; the sign-in goes on.
 */
export class MembershipMappings {
  readonly #admin: AccessAdmin
  readonly #model: AccessModel
  readonly #audit: AuditTrail
  readonly #skippedListeners: ((skipped: SkippedMapping) => void)[] = []

  constructor(admin: AccessAdmin, model: AccessModel, audit: AuditTrail) {
    this.#admin = admin
    this.#model = model
    this.#audit = audit
  }

  /** Calls `listener` for each mapping whose grant was skipped because its organization or team was deleted meanwhile. */
  onSkipped(listener: (skipped: SkippedMapping) => void): void {
    this.#skippedListeners.push(listener)
  }

  /**
   * Applies `mappings` from `source` to `user`, who is in `groups`; `normalize` makes a configured value and a group
   * comparable (DNs ignore case and spacing). Returns whether the user's memberships changed.
   */
  async apply(source: 'ldap' | 'sso', user: User, mappings: readonly MembershipMapping[], groups: readonly string[], normalize: (value: string) => string = (v) => v): Promise<boolean> {
    if (!mappings.length) return false
    const held = new Set(groups.map(normalize))
    const mapped: MappedGrant[] = []
    const wanted: MappedGrant[] = []
    const mappingOf = new Map<MappedGrant, MembershipMapping>()
    for (const mapping of mappings) {
      const grant = this.#grantFor(mapping)
      if (!grant) continue
      mapped.push(grant)
      mappingOf.set(grant, mapping)
      if (mapping.groups.some((value) => held.has(normalize(value)))) wanted.push(grant)
    }
    const { granted, revoked, skipped } = await this.#admin.applyMapped(user.id, mapped, wanted)
    for (const grant of skipped) {
      for (const listener of this.#skippedListeners) listener({ source, user, mapping: mappingOf.get(grant)! })
    }
    const actor = mappingActor(source, user)
    for (const assignment of granted) this.#audit.change(actor, 'create', this.#audited(assignment), undefined, this.#fields(assignment))
    for (const assignment of revoked) this.#audit.change(actor, 'delete', this.#audited(assignment), this.#fields(assignment))
    return granted.length + revoked.length > 0
  }

  /** Named as the API's own assignments are in the trail (src/api/roles.ts). */
  #audited(assignment: RoleAssignment) {
    return { type: 'role_user_assignment', id: assignment.id, name: this.#model.roleDefinition(assignment.roleDefinitionId)?.name }
  }

  #fields(assignment: RoleAssignment) {
    return { role_definition: assignment.roleDefinitionId, user: assignment.actorId, content_type: `shared.${assignment.objectType}`, object_id: String(assignment.objectId) }
  }

  #grantFor(mapping: MembershipMapping): MappedGrant | undefined {
    const organization = this.#model.organizations.find((o) => o.name === mapping.organization)
    const team = organization && mapping.team !== undefined ? this.#model.teams.find((t) => t.organizationId === organization.id && t.name === mapping.team) : undefined
    const kind = mapping.team === undefined ? 'organization' : 'team'
    const role = this.#model.roleDefinitionNamed(ROLE_NAMES[kind][mapping.role])
    const objectId = kind === 'team' ? team?.id : organization?.id
    if (!role || objectId === undefined) return undefined
    return { roleDefinitionId: role.id, objectType: kind, objectId }
  }
}
