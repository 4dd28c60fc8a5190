import type { GatehouseMigration } from './helpers.ts'
import { booleanType, falseDefault } from './helpers.ts'

/**
 * What a directory says about an account beyond its name: system auditor, and the named groups it maps to
 * (a JSON array of names, replaced on every directory login). Kept on the account row so the request path
 * reads them with the account, from memory.
 */
export const ldap: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('users').addColumn('is_system_auditor', booleanType(dialect), falseDefault(dialect)).execute()
    await db.schema.alterTable('users').addColumn('group_names', 'text', (c) => c.notNull().defaultTo('[]')).execute()
  },
}
