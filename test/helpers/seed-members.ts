import type { Store } from '../../src/store/store.ts'

/**
 * `count` new users, each holding Organization Member on one new organization (Seeded), written straight to the
 * tables a thousand rows a statement: a database of many role assignments, quickly.
 */
export async function seedOrganizationMembers(store: Store, count: number): Promise<void> {
  const db = store.database.db
  const organization = await store.access.createOrganization({ name: 'Seeded' })
  const member = (await store.access.findRoleDefinitionByName('Organization Member'))!
  const now = Date.now()
  for (let from = 0; from < count; from += 1000) {
    const users = await db.insertInto('users').values(Array.from({ length: Math.min(1000, count - from) }, (_, i) => ({
      username: `seeded-${from + i}`, email: '', first_name: '', last_name: '', password_hash: null, is_superuser: false, is_active: true,
      source: 'local', external: false, created_at: now, modified_at: now, last_login: null,
    }))).returning('id').execute()
    await db.insertInto('role_user_assignments').values(users.map((u) => ({
      role_definition_id: member.id, user_id: Number(u.id), object_type: 'organization', object_id: organization.id, created_at: now,
    }))).execute()
  }
}
