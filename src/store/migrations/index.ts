import type { Migration, MigrationProvider } from 'kysely'
import type { DialectName, GatehouseMigration } from './helpers.ts'
import { core } from './001_core.ts'
import { oidc } from './004_oidc.ts'

/** Every migration in order; names sort in the order they must run. Add new ones at the end. */
const migrations: Record<string, GatehouseMigration> = {
  '001_core': core,
  '004_oidc': oidc,
}

export function migrationProvider(dialect: DialectName): MigrationProvider {
  return {
    async getMigrations() {
      const result: Record<string, Migration> = {}
      for (const [name, migration] of Object.entries(migrations)) {
        result[name] = { up: (db) => migration.up(db, dialect) }
      }
      return result
    },
  }
}
