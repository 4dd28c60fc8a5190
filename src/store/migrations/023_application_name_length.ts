import type { GatehouseMigration } from './helpers.ts'

/**
 * Application names as long as the platform's: django-ansible-base's OAuth2Application takes `name` from its
 * NamedCommonModel, 512 characters (its oauth2_provider migration 0002 widens django-oauth-toolkit's 255 to that).
 * PostgreSQL holds a `varchar` to its length, so the column is widened there; SQLite holds none, and its column
 * already takes them. Widening a `varchar` rewrites neither the table nor the unique index of migration 022.
 */
export const applicationNameLength: GatehouseMigration = {
  async up(db, dialect) {
    if (dialect !== 'postgres') return
    await db.schema.alterTable('oauth2_applications').alterColumn('name', (column) => column.setDataType('varchar(512)')).execute()
  },
}
