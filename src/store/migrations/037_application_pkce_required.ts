import type { GatehouseMigration } from './helpers.ts'
import { booleanType, falseDefault } from './helpers.ts'

/**
 * Whether an application's authorization requests must carry PKCE (S256), django-ansible-base's per-application
 * `pkce_required` (docs/api.md#oauth2-applications). Public applications made before it now must: a public
 * client has no other proof that a code is its own (RFC 9700 §2.1.1). Confidential ones keep what they had, as the
 * platform's migration keeps its existing applications.
 */
export const applicationPkceRequired: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('oauth2_applications').addColumn('pkce_required', booleanType(dialect), falseDefault(dialect)).execute()
    await db.updateTable('oauth2_applications').set({ pkce_required: dialect === 'postgres' ? true : 1 }).where('client_type', '=', 'public').execute()
  },
}
