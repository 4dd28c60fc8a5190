import type { GatehouseMigration } from './helpers.ts'

/**
 * The organization an OAuth2 application belongs to, as the platform has it: optional, and deleted with its
 * organization so that no application outlives the people who manage it.
 */
export const applicationOrganization: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('oauth2_applications')
      .addColumn('organization_id', 'integer', (c) => c.references('organizations.id').onDelete('cascade'))
      .execute()
  },
}
