import type { GatehouseMigration } from './helpers.ts'

/**
 * A user's and a team's role assignments by their holder: deleting a user or a team (whose assignments go with it,
 * by the foreign key and by src/store/access.ts), a user's memberships (users/N/organizations/, `?user=` on
 * role_user_assignments/) and a mapping's check of what a user holds read them by holder, which the unique
 * constraint (role definition first) does not answer: each read every assignment, some 30 ms on PostgreSQL with
 * 200,000 of them, growing with the number of users.
 */
export const assignmentHolderIndexes: GatehouseMigration = {
  async up(db) {
    await db.schema.createIndex('role_user_assignments_user_id').on('role_user_assignments').column('user_id').execute()
    await db.schema.createIndex('role_team_assignments_team_id').on('role_team_assignments').column('team_id').execute()
  },
}
