import type { Migration, MigrationProvider } from 'kysely'
import type { DialectName, GatehouseMigration } from './helpers.ts'
import { core } from './001_core.ts'
import { sessions } from './002_sessions.ts'
import { tokens } from './003_tokens.ts'
import { ldap } from './004_ldap.ts'
import { oidc } from './005_oidc.ts'
import { sso } from './006_sso.ts'
import { loginFailures } from './007_login_failures.ts'
import { oidcAccount } from './008_oidc_account.ts'
import { loginAddressFailures } from './009_login_address_failures.ts'
import { access } from './010_access.ts'
import { audit } from './011_audit.ts'
import { oauth2Applications } from './012_oauth2_applications.ts'
import { applicationOrganization } from './013_application_organization.ts'

/** Every migration in order; names sort in the order they must run. Add new ones at the end. */
const migrations: Record<string, GatehouseMigration> = {
  '001_core': core,
  '002_sessions': sessions,
  '003_tokens': tokens,
  '004_ldap': ldap,
  '005_oidc': oidc,
  '006_sso': sso,
  '007_login_failures': loginFailures,
  '008_oidc_account': oidcAccount,
  '009_login_address_failures': loginAddressFailures,
  '010_access': access,
  '011_audit': audit,
  '012_oauth2_applications': oauth2Applications,
  '013_application_organization': applicationOrganization,
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
