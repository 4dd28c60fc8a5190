import type { GatehouseMigration } from './helpers.ts'

/**
 * The directory entry each LDAP account was made for, by its stable identifier (`ldap.attributes.uuid`: entryUUID,
 * RFC 4530, or Active Directory's objectGUID), as Keycloak's LDAP federation keeps LDAP_ID. A username given anew to
 * another person, once its first holder's entry was deleted, is then another entry, and does not reach the first
 * holder's account. One row per account, gone with it; accounts from before get theirs at their next login.
 */
export const ldapEntries: GatehouseMigration = {
  async up(db) {
    await db.schema.createTable('ldap_entries')
      .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
      .addColumn('entry_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute()
  },
}
