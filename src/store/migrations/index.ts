import type { Migration, MigrationProvider } from 'kysely'
import type { DialectName, GatehouseMigration } from './helpers.ts'

/**
 * Every migration in order; names sort in the order they must run. Add new ones at the end. Each one's code loads
 * only when the Migrator asks for it: a start on an up-to-date database needs their names alone.
 */
const migrations: Record<string, () => Promise<GatehouseMigration>> = {
  '001_core': async () => (await import('./001_core.ts')).core,
  '002_sessions': async () => (await import('./002_sessions.ts')).sessions,
  '003_tokens': async () => (await import('./003_tokens.ts')).tokens,
  '004_ldap': async () => (await import('./004_ldap.ts')).ldap,
  '005_oidc': async () => (await import('./005_oidc.ts')).oidc,
  '006_sso': async () => (await import('./006_sso.ts')).sso,
  '007_login_failures': async () => (await import('./007_login_failures.ts')).loginFailures,
  '008_oidc_account': async () => (await import('./008_oidc_account.ts')).oidcAccount,
  '009_login_address_failures': async () => (await import('./009_login_address_failures.ts')).loginAddressFailures,
  '010_access': async () => (await import('./010_access.ts')).access,
  '011_audit': async () => (await import('./011_audit.ts')).audit,
  '012_oauth2_applications': async () => (await import('./012_oauth2_applications.ts')).oauth2Applications,
  '013_application_organization': async () => (await import('./013_application_organization.ts')).applicationOrganization,
  '014_oidc_token_indexes': async () => (await import('./014_oidc_token_indexes.ts')).oidcTokenIndexes,
  '015_platform_auditor_first': async () => (await import('./015_platform_auditor_first.ts')).platformAuditorFirst,
  '016_oidc_gateway_session': async () => (await import('./016_oidc_gateway_session.ts')).oidcGatewaySession,
  '017_leases': async () => (await import('./017_leases.ts')).leases,
  '018_oidc_ended_sessions': async () => (await import('./018_oidc_ended_sessions.ts')).oidcEndedSessions,
  '019_username_case': async () => (await import('./019_username_case.ts')).usernameCase,
  '020_account_not_before': async () => (await import('./020_account_not_before.ts')).accountNotBefore,
  '021_username_unique_case': async () => (await import('./021_username_unique_case.ts')).usernameUniqueCase,
  '022_application_unique_name': async () => (await import('./022_application_unique_name.ts')).applicationUniqueName,
  '023_application_name_length': async () => (await import('./023_application_name_length.ts')).applicationNameLength,
  '024_ldap_entries': async () => (await import('./024_ldap_entries.ts')).ldapEntries,
  '025_oidc_null_key_indexes': async () => (await import('./025_oidc_null_key_indexes.ts')).oidcNullKeyIndexes,
  '026_token_parents': async () => (await import('./026_token_parents.ts')).tokenParents,
  '027_token_access_token_parents': async () => (await import('./027_token_access_token_parents.ts')).tokenAccessTokenParents,
  '028_signing_key_publication': async () => (await import('./028_signing_key_publication.ts')).signingKeyPublication,
  '029_oidc_account_grants_index': async () => (await import('./029_oidc_account_grants_index.ts')).oidcAccountGrantsIndex,
  '030_oidc_grant_refresh_tokens_index': async () => (await import('./030_oidc_grant_refresh_tokens_index.ts')).oidcGrantRefreshTokensIndex,
  '031_realm_name_columns': async () => (await import('./031_realm_name_columns.ts')).realmNameColumns,
  '032_assignment_holder_indexes': async () => (await import('./032_assignment_holder_indexes.ts')).assignmentHolderIndexes,
  '033_sso_logout': async () => (await import('./033_sso_logout.ts')).ssoLogout,
  '034_audit_entry_kinds': async () => (await import('./034_audit_entry_kinds.ts')).auditEntryKinds,
  '035_sso_id_token': async () => (await import('./035_sso_id_token.ts')).ssoIdToken,
  '036_sso_logout_token_hash': async () => (await import('./036_sso_logout_token_hash.ts')).ssoLogoutTokenHash,
  '037_application_pkce_required': async () => (await import('./037_application_pkce_required.ts')).applicationPkceRequired,
  '038_application_secret_rotation': async () => (await import('./038_application_secret_rotation.ts')).applicationSecretRotation,
  '039_imported_password': async () => (await import('./039_imported_password.ts')).importedPassword,
  '040_oidc_secret_record_ids': async () => (await import('./040_oidc_secret_record_ids.ts')).oidcSecretRecordIds,
  '041_oidc_user_code_keys': async () => (await import('./041_oidc_user_code_keys.ts')).oidcUserCodeKeys,
  '042_imported_active': async () => (await import('./042_imported_active.ts')).importedActive,
  '043_imported_privileges': async () => (await import('./043_imported_privileges.ts')).importedPrivileges,
  '044_sign_in_freshness': async () => (await import('./044_sign_in_freshness.ts')).signInFreshness,
}

/** The names of this version's migrations, in order. */
export const migrationNames: readonly string[] = Object.keys(migrations)

export function migrationProvider(dialect: DialectName): MigrationProvider {
  return {
    async getMigrations() {
      const loaded = await Promise.all(Object.entries(migrations).map(async ([name, load]) => [name, await load()] as const))
      const result: Record<string, Migration> = {}
      for (const [name, migration] of loaded) {
        result[name] = { up: (db) => migration.up(db, dialect) }
      }
      return result
    },
  }
}
