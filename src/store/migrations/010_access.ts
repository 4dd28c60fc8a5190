import { MANAGED_ROLES } from '../../access/permissions.ts'
import type { GatehouseMigration } from './helpers.ts'
import { booleanType, falseDefault, withId } from './helpers.ts'

/**
 * Access control (docs/access.md): organizations, teams (each in one organization), role definitions with the
 * platform's managed roles, and roles granted to users and teams on an organization, a team, or the whole
 * platform (`object_type` 'platform', `object_id` 0, so one unique constraint covers every kind).
 */
export const access: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('organizations'), dialect)
      .addColumn('name', 'varchar(512)', (c) => c.notNull().unique())
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .execute()

    await withId(db.schema.createTable('teams'), dialect)
      .addColumn('name', 'varchar(512)', (c) => c.notNull())
      .addColumn('organization_id', 'integer', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('teams_organization_name', ['organization_id', 'name'])
      .execute()

    await withId(db.schema.createTable('role_definitions'), dialect)
      .addColumn('name', 'varchar(512)', (c) => c.notNull().unique())
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('content_type', 'varchar(64)')
      .addColumn('permissions', 'text', (c) => c.notNull())
      .addColumn('managed', booleanType(dialect), falseDefault(dialect))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .execute()

    for (const actor of ['user', 'team'] as const) {
      await withId(db.schema.createTable(`role_${actor}_assignments`), dialect)
        .addColumn('role_definition_id', 'integer', (c) => c.notNull().references('role_definitions.id').onDelete('cascade'))
        .addColumn(`${actor}_id`, 'integer', (c) => c.notNull().references(`${actor}s.id`).onDelete('cascade'))
        .addColumn('object_type', 'varchar(16)', (c) => c.notNull())
        .addColumn('object_id', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint(`role_${actor}_assignments_unique`, ['role_definition_id', `${actor}_id`, 'object_type', 'object_id'])
        .execute()
      await db.schema.createIndex(`role_${actor}_assignments_object`).on(`role_${actor}_assignments`).columns(['object_type', 'object_id']).execute()
    }

    const now = Date.now()
    const managed = dialect === 'postgres' ? true : 1
    await db.insertInto('role_definitions').values(MANAGED_ROLES.map((role) => ({
      name: role.name, description: role.description, content_type: role.contentType, permissions: JSON.stringify(role.permissions),
      managed, created_at: now, modified_at: now,
    }))).execute()
  },
}
