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
/** The managed role that makes a user a member of an organization. */
export const ORGANIZATION_MEMBER = 'Organization Member'

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
  { name: ORGANIZATION_MEMBER, description: 'Has member permission to a single organization', contentType: 'shared.organization', permissions: ['shared.view_organization', 'shared.member_organization'] },
  { name: 'Team Admin', description: 'Can manage a single team and inherits all role assignments to the team', contentType: 'shared.team', permissions: [...TEAM_PERMISSIONS] },
  { name: 'Team Member', description: 'Inherits all role assignments to a single team', contentType: 'shared.team', permissions: ['shared.view_team', 'shared.member_team'] },
  { name: PLATFORM_AUDITOR, description: 'Has view permissions to all objects', contentType: null, permissions: ['shared.view_organization', 'shared.view_team'] },
]

/**
 * The permissions a role on this content type may hold, as django-ansible-base's permissions_allowed_for_role
 * decides: a model's own permissions but its `add_` one, and every permission of its children (an organization's
 * teams, `add_team` included); a global role, the organization's and `view_team` only.
 */
export function permissionsFor(contentType: ContentType | null): readonly Permission[] {
  if (contentType === 'shared.team') return TEAM_PERMISSIONS
  if (contentType === 'shared.organization') return PERMISSIONS
  return [...ORGANIZATION_PERMISSIONS.filter((p) => p !== 'shared.add_team'), 'shared.view_team']
}

/**
 * A content type as the platform's field reads one: by the model after the last dot (`organization`,
 * `shared.organization`); undefined for a model roles cannot be on.
 */
export function contentTypeNamed(given: string): ContentType | undefined {
  return CONTENT_TYPES.find((type) => type === `shared.${given.split('.').at(-1)}`)
}

/** A permission as the platform's field reads one: by the codename after the last dot (`view_team`, `shared.view_team`). */
export function permissionNamed(given: string): Permission | undefined {
  return PERMISSIONS.find((permission) => permission === `shared.${given.split('.').at(-1)}`)
}

const modelOf = (permission: Permission) => permission.slice(permission.lastIndexOf('_') + 1)
const actionOf = (permission: Permission) => permission.slice('shared.'.length, permission.lastIndexOf('_'))

/**
 * Permissions in the order django-ansible-base lists a role's (DABPermission's `ordering`: the content type's model,
 * then the codename), whatever order they were given in: the collection's role_definition module compares the list
 * it sends with the one shown with Python's `==`, so the same permissions in another order are no change there.
 */
export function inPlatformOrder<P extends string>(permissions: readonly P[]): P[] {
  const key = (permission: string) => `${permission.slice(permission.lastIndexOf('_') + 1)} ${permission}`
  return [...permissions].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

/**
 * What is wrong with a role definition holding `permissions` on `contentType`, in the words of django-ansible-base's
 * validate_permissions_for_model, first problem only (as it raises): no `member_team` in a global role; only the
 * permissions permissionsFor allows; with any other permission of a model, its `view_`; with its `delete_`, its
 * `change_` (ANSIBLE_BASE_DELETE_REQUIRE_CHANGE, on in the platform). Undefined when nothing is.
 */
export function rolePermissionProblem(contentType: ContentType | null, permissions: readonly Permission[]): string | undefined {
  if (contentType === null && permissions.includes('shared.member_team')) return 'The member_team permission can not be used in global roles.'
  const allowed = permissionsFor(contentType)
  const invalid = permissions.filter((p) => !allowed.includes(p))
  if (invalid.length) {
    const roles = contentType === null ? 'global' : contentType.slice('shared.'.length)
    return `Permissions ${invalid.map((p) => `"${p}"`).join(', ')} are not valid for ${roles} roles. Valid: ${allowed.join(', ')}.`
  }
  for (const model of new Set(permissions.map(modelOf))) {
    const held = permissions.filter((p) => modelOf(p) === model && actionOf(p) !== 'add')
    const actions = new Set(held.map(actionOf))
    if (held.length && !actions.has('view')) return `Permissions for model ${model} needs to include view, got: ${held.join(', ')}.`
    if (actions.has('delete') && !actions.has('change')) return `Permissions for model ${model} needs to include change, got: ${held.join(', ')}.`
  }
  return undefined
}
