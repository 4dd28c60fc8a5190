import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * Each audit entry's kind, `sign_in` or `change` (src/store/audit.ts `AuditKind`), so that the count bound deletes
 * sign-in entries before any change: one account logging in in a loop wrote two entries a login and pushed every
 * administrator's change out of a million-entry table in hours. Indexed with the id, so that "the oldest sign-in
 * entries" is a range of the index, not a scan past every change kept.
 *
 * The entries already there are sorted as the trail sorts new ones: the sign-in events and the trail's counts of
 * dropped ones, a session's start (only a sign-in starts one), and a session's end written by a logout, which the
 * logout's own entry follows at once, by the same account. Another session's end (an administrator's, a user's of
 * another of their sessions) stays a change, as does anything unrecognised: kept the longer, never pruned early.
 */
export const auditEntryKinds: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('audit_entries').addColumn('kind', 'varchar(16)', (c) => c.notNull().defaultTo('change')).execute()
    await sql`
      UPDATE audit_entries SET kind = 'sign_in'
      WHERE operation IN ('login', 'login_error', 'logout', 'lockout', 'dropped')
        OR (content_type = 'session' AND operation = 'create' AND object_id IS NOT NULL)
        OR (content_type = 'session' AND operation = 'delete' AND object_id IS NOT NULL AND EXISTS (
          SELECT 1 FROM audit_entries AS logout
          WHERE logout.id = audit_entries.id + 1 AND logout.operation = 'logout' AND logout.actor_id = audit_entries.actor_id))
    `.execute(db)
    await db.schema.createIndex('audit_entries_kind').on('audit_entries').columns(['kind', 'id']).execute()
  },
}
