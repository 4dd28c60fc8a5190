import { withId, type GatehouseMigration } from './helpers.ts'

/**
 * The audit trail (src/audit/): who did what, when and from where. Written in batches and pruned by age and count;
 * never updated. `changes` is JSON text (changed fields before and after, never a secret).
 */
export const audit: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('audit_entries'), dialect)
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('operation', 'varchar(32)', (c) => c.notNull())
      .addColumn('content_type', 'varchar(32)', (c) => c.notNull())
      .addColumn('object_id', 'varchar(64)')
      .addColumn('object_name', 'varchar(200)')
      .addColumn('actor_id', 'integer')
      .addColumn('actor_username', 'varchar(150)')
      .addColumn('source_address', 'varchar(64)')
      .addColumn('auth_method', 'varchar(16)')
      .addColumn('code', 'varchar(64)')
      .addColumn('realm', 'varchar(64)')
      .addColumn('changes', 'text')
      .execute()
    await db.schema.createIndex('audit_entries_created_at').on('audit_entries').column('created_at').execute()
    await db.schema.createIndex('audit_entries_object').on('audit_entries').columns(['content_type', 'object_id']).execute()
    await db.schema.createIndex('audit_entries_actor').on('audit_entries').column('actor_id').execute()
  },
}
