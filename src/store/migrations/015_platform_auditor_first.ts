import type { Kysely } from 'kysely'
import { PLATFORM_AUDITOR } from '../../access/permissions.ts'
import { EventLog } from '../events.ts'
import { ACCESS_TOPIC } from '../topics.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * The Platform Auditor role definition gets id 1, as on the platform: the `ansible.platform` collection's
 * role_user_assignment and role_team_assignment modules treat a role whose name starts with "Platform" as
 * platform-wide only when its id is 1, and otherwise skip it, reporting no change. Its id and that of the role
 * that had 1 (Organization Admin) trade places, their assignments moving with them. An `access` event tells
 * processes already running on the database to read the roles again.
 */
export const platformAuditorFirst: GatehouseMigration = {
  async up(db, dialect) {
    const auditor = await db.selectFrom('role_definitions').select('id').where('name', '=', PLATFORM_AUDITOR).executeTakeFirst()
    if (!auditor || Number(auditor.id) === 1) return
    const last = await db.selectFrom('role_definitions').select((eb) => eb.fn.max('id').as('id')).executeTakeFirstOrThrow()
    const spare = Number(last.id) + 1
    await moveRoleDefinition(db, 1, spare)
    await moveRoleDefinition(db, Number(auditor.id), 1)
    await moveRoleDefinition(db, spare, Number(auditor.id))
    const events = new EventLog(db, dialect)
    const id = await events.append(ACCESS_TOPIC, 'role_definition')
    if (dialect === 'postgres') await events.notify(id)
  },
}

/** Gives a role definition another id: a copy at the new id takes over its assignments, then the old row goes. */
async function moveRoleDefinition(db: Kysely<any>, from: number, to: number): Promise<void> {
  const row = await db.selectFrom('role_definitions').selectAll().where('id', '=', from).executeTakeFirst()
  if (!row) return
  // Names are unique: the old row steps aside while both exist.
  await db.updateTable('role_definitions').set({ name: `renumbering ${from} to ${to}` }).where('id', '=', from).execute()
  await db.insertInto('role_definitions').values({ ...row, id: to }).execute()
  for (const actor of ['user', 'team']) {
    await db.updateTable(`role_${actor}_assignments`).set({ role_definition_id: to }).where('role_definition_id', '=', from).execute()
  }
  await db.deleteFrom('role_definitions').where('id', '=', from).execute()
}
