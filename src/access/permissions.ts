/**
 * The permissions a role definition may hold and the platform's managed roles, named as
 * django-ansible-base names them (`shared.<action>_<model>`), so role definitions read the same in both.
 * The list is fixed: custom role definitions choose from it.
 */

export const TEAM_PERMISSIONS = ['shared.view_team', 'shared.change_team', 'shared.delete_team', 'shared.member_team'] as const
export const ORGANIZATION_PERMISSIONS = [
  'shared.view_organization', 'shared.change_organization', 'shared.delete_organization', 'shared.member_organization', 'shared.add_team',
] as const
export const PERMISSIONS = [...ORGANIZATION_PERMISSIONS, ...TEAM_PERMISSIONS] as const
export type Permission = (typeof PERMISSIONS)[number]

/** What a role is granted on: `shared.organization`, `shared.team`, or nothing (the whole platform). */
export const CONTENT_TYPES = ['shared.organization', 'shared.team'] as const
export type ContentType = (typeof CONTENT_TYPES)[number]

export const PLATFORM_AUDITOR = 'Platform Auditor'

export interface ManagedRole {
  name: string
  description: string
  contentType: ContentType | null
  permissions: Permission[]
}

/**
 * The platform's managed roles. An organization role also reaches the organization's teams (an Organization
 * Admin administers its teams), as in django-ansible-base, where a role on an object covers its children.
 */
export const MANAGED_ROLES: readonly ManagedRole[] = [
  { name: 'Organization Admin', description: 'Has all permissions to a single organization and all objects inside of it', contentType: 'shared.organization', permissions: [...PERMISSIONS] },
  { name: 'Organization Member', description: 'Has member permission to a single organization', contentType: 'shared.organization', permissions: ['shared.view_organization', 'shared.member_organization'] },
  { name: 'Team Admin', description: 'Can manage a single team and inherits all role assignments to the team', contentType: 'shared.team', permissions: [...TEAM_PERMISSIONS] },
  { name: 'Team Member', description: 'Inherits all role assignments to a single team', contentType: 'shared.team', permissions: ['shared.view_team', 'shared.member_team'] },
  { name: PLATFORM_AUDITOR, description: 'Has view permissions to all objects', contentType: null, permissions: ['shared.view_organization', 'shared.view_team'] },
]

/** The permissions a role on this content type may hold: a team role cannot hold organization permissions. */
export function permissionsFor(contentType: ContentType | null): readonly Permission[] {
  return contentType === 'shared.team' ? TEAM_PERMISSIONS : PERMISSIONS
}
