import type { Kysely } from 'kysely'
import type { GatehouseMigration } from './helpers.ts'

/** The longest name an application may have (012's column). */
const NAME_LENGTH = 255

/**
 * An application's name unique within its organization in the database itself, as django-ansible-base's model has it
 * (`unique_together = (("name", "organization"),)`): two creations or renames at once cannot both pass the API's
 * check, the second write fails and is answered as a taken name. Applications without an organization are not
 * compared, as NULLs are distinct in a unique index on both backends (and the platform's validator skips them too).
 *
 * A database from an earlier version may hold such twins. The oldest of each keeps its name; each later one (a higher
 * id) is renamed `<name> (<id>)`, which the `ansible.platform` collection, finding an application by name and
 * organization, can then tell apart; its client id and secret, and so its tokens, stay as they were. Each renaming
 * is reported as a warning on the process that migrates.
 */
export const applicationUniqueName: GatehouseMigration = {
  async up(db) {
    for (const rename of await renameTwins(db)) {
      process.emitWarning(`OAuth2 application ${rename.id} renamed from ${JSON.stringify(rename.from)} to ${JSON.stringify(rename.to)}: another application of organization ${rename.organizationId} has its name, which must now be unique there`, { code: 'GATEHOUSE_APPLICATION_RENAMED' })
    }
    await db.schema.createIndex('oauth2_applications_organization_name').on('oauth2_applications').columns(['organization_id', 'name']).unique().execute()
  },
}

interface Renaming {
  id: number
  organizationId: number
  from: string
  to: string
}

/** Renames every application but the oldest of each name in an organization to a name free there. */
async function renameTwins(db: Kysely<any>): Promise<Renaming[]> {
  const twins = await db.selectFrom('oauth2_applications as a').select(['a.id', 'a.name', 'a.organization_id'])
    .where('a.organization_id', 'is not', null)
    .where((eb) => eb.exists(eb.selectFrom('oauth2_applications as older').select('older.id')
      .whereRef('older.organization_id', '=', 'a.organization_id').whereRef('older.name', '=', 'a.name').whereRef('older.id', '<', 'a.id')))
    .orderBy('a.id').execute()
  const renamings: Renaming[] = []
  for (const twin of twins) {
    const id = Number(twin.id)
    const organizationId = Number(twin.organization_id)
    const to = await freeName(db, twin.name, id, organizationId)
    await db.updateTable('oauth2_applications').set({ name: to }).where('id', '=', id).execute()
    renamings.push({ id, organizationId, from: twin.name, to })
  }
  return renamings
}

/** `<name> (<id>)`, cut to fit the column, with a counter after the id in the unlikely case that is taken too. */
async function freeName(db: Kysely<any>, name: string, id: number, organizationId: number): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const suffix = attempt === 1 ? ` (${id})` : ` (${id}-${attempt})`
    // By code point, so that no character is cut in half.
    const candidate = [...name].slice(0, NAME_LENGTH - suffix.length).join('') + suffix
    const holder = await db.selectFrom('oauth2_applications').select('id').where('organization_id', '=', organizationId).where('name', '=', candidate).executeTakeFirst()
    if (!holder) return candidate
  }
}
