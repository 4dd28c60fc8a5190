import type { MembershipMapping } from '../config/access.ts'
import type { User } from '../store/users.ts'
import type { AccessAdmin, MappedGrant } from './admin.ts'
import type { AccessModel } from './model.ts'

const ROLE_NAMES = {
  team: { member: 'Team Member', admin: 'Team Admin' },
  organization: { member: 'Organization Member', admin: 'Organization Admin' },
} as const

/**
 * Memberships from the directory's groups or an SSO provider's groups claim, set at every login: each mapping
 * whose groups the user is in grants its role, each other mapping's role is revoked. Grants no mapping names
 * (given by an administrator) are left alone. Names are resolved against the in-memory snapshot, so a team
 * created after start is mapped from the next login on; until then the mapping is skipped (serve warns of it at
 * start: src/access/rules.ts `unknownNames`).
 */
export class MembershipMappings {
  readonly #admin: AccessAdmin
  readonly #model: AccessModel

  constructor(admin: AccessAdmin, model: AccessModel) {
    this.#admin = admin
    this.#model = model
  }

  /**
   * Applies `mappings` to `user`, who is in `groups`; `normalize` makes a configured value and a group comparable
   * (DNs ignore case and spacing). Returns whether the user's memberships changed.
   */
  async apply(user: User, mappings: readonly MembershipMapping[], groups: readonly string[], normalize: (value: string) => string = (v) => v): Promise<boolean> {
    if (!mappings.length) return false
    const held = new Set(groups.map(normalize))
    const mapped: MappedGrant[] = []
    const wanted: MappedGrant[] = []
    for (const mapping of mappings) {
      const grant = this.#grantFor(mapping)
      if (!grant) continue
      mapped.push(grant)
      if (mapping.groups.some((value) => held.has(normalize(value)))) wanted.push(grant)
    }
    return this.#admin.applyMapped(user.id, mapped, wanted)
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
