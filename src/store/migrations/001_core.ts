import type { GatehouseMigration } from './helpers.ts'
import { booleanType, falseDefault, withId } from './helpers.ts'

/** Users, run-time settings, the cross-process event log with its readers, and the gateway's signing keys. */
export const core: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('users'), dialect)
      .addColumn('username', 'varchar(150)', (c) => c.notNull().unique())
      .addColumn('email', 'varchar(254)', (c) => c.notNull().defaultTo(''))
      .addColumn('first_name', 'varchar(150)', (c) => c.notNull().defaultTo(''))
      .addColumn('last_name', 'varchar(150)', (c) => c.notNull().defaultTo(''))
      .addColumn('password_hash', 'text')
      .addColumn('is_superuser', booleanType(dialect), falseDefault(dialect))
      .addColumn('is_active', booleanType(dialect), (c) => c.notNull().defaultTo(dialect === 'postgres' ? true : 1))
      .addColumn('source', 'varchar(16)', (c) => c.notNull().defaultTo('local'))
      .addColumn('external', booleanType(dialect), falseDefault(dialect))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .addColumn('last_login', 'bigint')
      .execute()

    await db.schema.createTable('settings')
      .addColumn('key', 'varchar(100)', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .execute()

    await withId(db.schema.createTable('events'), dialect)
      .addColumn('topic', 'varchar(50)', (c) => c.notNull())
      .addColumn('key', 'varchar(200)', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('events_created_at').on('events').column('created_at').execute()

    // Live gateway processes and how far each has read the event log (PostgreSQL: publishers wait for them).
    await db.schema.createTable('gateway_processes')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
      .addColumn('last_event_id', 'bigint', (c) => c.notNull())
      .execute()

    await db.schema.createTable('signing_keys')
      .addColumn('kid', 'varchar(100)', (c) => c.primaryKey())
      .addColumn('purpose', 'varchar(50)', (c) => c.notNull())
      .addColumn('alg', 'varchar(20)', (c) => c.notNull())
      .addColumn('private_jwk', 'text', (c) => c.notNull())
      .addColumn('public_jwk', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('retire_at', 'bigint')
      .execute()
  },
}
