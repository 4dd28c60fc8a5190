import type { Kysely, RawBuilder } from 'kysely'
import { gatehouseMigrator, type Database } from './database.ts'
import { CopyRefused } from './errors.ts'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'
import { migrationNames } from './migrations/index.ts'

/**
 * Copies everything one Gatehouse database holds into another that holds nothing yet, on either backend: SQLite to
 * PostgreSQL when a deployment outgrows one machine, or back. Keycloak moves a realm with `export` and `import`;
 * Gatehouse's data is one schema, so it is carried table by table, as it is: password hashes, tokens' hashes, signing
 * keys, sessions and the activity stream alike, each id kept, so every credential issued before goes on working.
 *
 * The source is read from one snapshot (a read transaction: its processes may go on serving meanwhile), the target
 * written in one transaction, its migrations included: a copy that fails, or is interrupted, leaves the target as it
 * was. What to copy, in which order and as which types comes from the two databases' catalogs, not from a list kept
 * here, so a migration that adds a table or a column needs nothing done in this file.
 */

/** Kysely's record of the migrations: the target's is made by running them there. */
const MIGRATOR_TABLES = new Set(['kysely_migration', 'kysely_migration_lock'])
/**
 * The processes' coordination with one another (which are alive, which runs a periodic job), not data: copied, they
 * would name processes that do not serve the target, and hold a job back until their lease ran out.
 */
const PROCESS_TABLES = new Set(['gateway_processes', 'leases'])
/** Rows read and written at a time: memory stays bounded however large a table is, and each statement short. */
const BATCH_ROWS = 500

export interface CopiedTable {
  name: string
  rows: number
}

interface Column {
  name: string
  /** As the catalog declares it, lower case: `integer`, `varchar(150)`, `boolean`, `bigint`. */
  type: string
}

interface TableShape {
  name: string
  columns: Column[]
  primaryKey: string[]
  /** The tables this one's foreign keys name (itself included, for a row naming another of the table). */
  references: Set<string>
  /** The column a sequence numbers (PostgreSQL's identity column, SQLite's AUTOINCREMENT), if any. */
  numbered: string | undefined
}

/**
 * Copies `source` into `target`. Refused with CopyRefused, nothing written: a source without every one of this
 * version's migrations or with one it does not know, a target holding tables that are not Gatehouse's, migrations of
 * a newer version, or any row the migrations did not make. `copied` is told of each table once it is in.
 */
export async function copyDatabase(source: Database, target: Database, copied: (table: CopiedTable) => void = () => {}): Promise<CopiedTable[]> {
  return await source.db.connection().execute((from) => target.db.connection().execute(async (to) => {
    await sql.raw(source.dialect === 'postgres' ? 'begin isolation level repeatable read read only' : 'begin').execute(from)
    try {
      const tables = await readableTables(from, source.dialect)
      // SQLite: taking the write lock first, so that nothing is written between the check that the target is empty
      // and the copy; PostgreSQL: the migrations' advisory lock, then each table's, are held until the end.
      await sql.raw(target.dialect === 'postgres' ? 'begin' : 'begin immediate').execute(to)
      try {
        await requireNoData(to, target.dialect)
        const { error } = await gatehouseMigrator(to, target.dialect, { insideTransaction: true }).migrateToLatest()
        if (error) throw error
        const targetTables = await describe(to, target.dialect)
        // The rows the migrations made (MIGRATIONS_ROWS): the source's own come in their place, with their ids.
        for (const table of [...tables].reverse()) await sql`delete from ${sql.table(table.name)}`.execute(to)
        const done: CopiedTable[] = []
        for (const table of tables) {
          const into = targetTables.get(table.name)
          if (!into) throw new CopyRefused(`the target has no table ${table.name}, which the source has`)
          const rows = await copyTable(from, source.dialect, table, to, target.dialect, into)
          done.push({ name: table.name, rows })
          copied({ name: table.name, rows })
        }
        await sql`commit`.execute(to)
        return done
      } catch (error) {
        await sql`rollback`.execute(to).catch(() => {})
        throw error
      }
    } finally {
      await sql`rollback`.execute(from).catch(() => {})
    }
  }))
}

/**
 * The source's tables to copy, in an order where every table comes after those its foreign keys name; refused unless
 * its migrations are exactly this version's (older: `migrate` it first; newer: copy it with that version, whose
 * migrations may have changed what a table means).
 */
async function readableTables(db: Kysely<any>, dialect: DialectName): Promise<TableShape[]> {
  const shapes = await describe(db, dialect)
  if (!shapes.has('kysely_migration')) throw new CopyRefused('the source has no Gatehouse tables')
  const applied = await appliedMigrations(db)
  const unknown = applied.filter((name) => !migrationNames.includes(name))
  if (unknown.length) throw new CopyRefused(`the source has migrations this version does not know (${list(unknown)}): copy it with the version that applied them`)
  const pending = migrationNames.filter((name) => !applied.includes(name))
  if (pending.length) throw new CopyRefused(`the source lacks migrations of this version (${list(pending)}): apply them first with gatehouse migrate`)
  return inReferenceOrder([...shapes.values()].filter((table) => !MIGRATOR_TABLES.has(table.name) && !PROCESS_TABLES.has(table.name)))
}

async function appliedMigrations(db: Kysely<any>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db)
  return rows.map((row) => row.name)
}

/**
 * The rows migrations make in an empty database, which a target only migrated holds: the managed role definitions
 * (010), and the news that 015 renumbered one of them, for the processes' caches (the event log is no data: each
 * process reads it from where it was when it started); and the key that signs the identity services are sent, which
 * any command's first run on the database makes (`users list` to look at the target): the source's takes its place.
 */
const MIGRATIONS_ROWS = new Map([['role_definitions', sql` where not managed`], ['events', sql` where 1 = 0`], ['signing_keys', sql` where purpose <> 'identity'`]])

/**
 * The target holds no data: no tables at all, or Gatehouse's (of this version or an older one) with no rows but those
 * the migrations make. Anything else would be mixed with the copy, or lost to it.
 */
async function requireNoData(db: Kysely<any>, dialect: DialectName): Promise<void> {
  const names = [...(await describe(db, dialect)).keys()]
  const tables = names.filter((name) => !MIGRATOR_TABLES.has(name))
  if (!names.includes('kysely_migration')) {
    if (tables.length) throw new CopyRefused(`the target holds tables that are not Gatehouse's (${list(tables)}); copy into an empty database`)
    return
  }
  const unknown = (await appliedMigrations(db)).filter((name) => !migrationNames.includes(name))
  if (unknown.length) throw new CopyRefused(`the target has migrations of a newer version (${list(unknown)}); copy into an empty database`)
  const holding: string[] = []
  for (const table of tables) {
    const rows = await count(db, table, MIGRATIONS_ROWS.get(table))
    if (rows) holding.push(`${table}: ${rows}`)
  }
  if (holding.length) throw new CopyRefused(`the target holds Gatehouse data already (${list(holding)}); copy into an empty database, or one only migrated`)
}

async function count(db: Kysely<any>, table: string, where: RawBuilder<unknown> = sql``): Promise<number> {
  const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}${where}`.execute(db)
  return Number(rows[0]!.n)
}

/**
 * Copies one table in batches, in its primary key's order (keyset pages: each read is an index range, however far into
 * the table; a row naming another row of its table, a token its parent, comes after it), converting each value to its
 * target column's type. Then checks both sides hold as many rows as were copied, and moves the target's sequence past
 * the source's: past every id the source ever gave (SQLite's AUTOINCREMENT never gives one again, even once its row
 * is gone, and the activity stream names deleted objects by id), not only past those copied.
 */
async function copyTable(from: Kysely<any>, fromDialect: DialectName, table: TableShape, to: Kysely<any>, toDialect: DialectName, into: TableShape): Promise<number> {
  const targetTypes = new Map(into.columns.map((column) => [column.name, column.type]))
  const missing = table.columns.filter((column) => !targetTypes.has(column.name))
  if (missing.length) throw new CopyRefused(`the target's table ${table.name} has no column ${missing.map((c) => c.name).join(', ')}, which the source's has`)
  if (!table.primaryKey.length) throw new Error(`the source's table ${table.name} has no primary key to read it in order by`)
  const names = table.columns.map((column) => column.name)
  const convert = names.map((name) => converterTo(toDialect, targetTypes.get(name)!))
  const columns = sql.join(names.map((name) => sql.ref(name)))
  const key = sql.join(table.primaryKey.map((name) => sql.ref(name)))
  let after: unknown[] | undefined
  let copied = 0
  let highest = 0
  for (;;) {
    const page = after ? sql` where (${key}) > (${sql.join(after)})` : sql``
    const { rows } = await sql<Record<string, unknown>>`select ${columns} from ${sql.table(table.name)}${page} order by ${key} limit ${BATCH_ROWS}`.execute(from)
    if (!rows.length) break
    const values = rows.map((row) => sql`(${sql.join(names.map((name, i) => convert[i]!(row[name])))})`)
    await sql`insert into ${sql.table(table.name)} (${columns}) values ${sql.join(values)}`.execute(to)
    copied += rows.length
    const last = rows.at(-1)!
    after = table.primaryKey.map((name) => last[name])
    if (table.numbered) highest = Math.max(highest, Number(last[table.numbered]))
    // node:sqlite answers at once, so a copy between SQLite files never left the event loop's current turn, and a
    // Ctrl-C (which Node delivers in a later turn) waited for the whole copy, then found it done and was lost.
    await new Promise((resolve) => setImmediate(resolve))
  }
  const [inSource, inTarget] = [await count(from, table.name), await count(to, table.name)]
  if (inSource !== copied || inTarget !== copied) throw new Error(`${table.name}: ${copied} rows copied, but the source holds ${inSource} and the target ${inTarget}`)
  if (into.numbered) await setSequence(to, toDialect, into, Math.max(highest, table.numbered ? await lastNumber(from, fromDialect, table.name, table.numbered) : 0))
  return copied
}

/**
 * How a value read from either backend is written into a column of `type`: booleans are INTEGER 0/1 on SQLite and
 * BOOLEAN on PostgreSQL (src/store/schema.ts); node:sqlite binds numbers, strings, bytes and null only.
 */
function converterTo(dialect: DialectName, type: string): (value: unknown) => unknown {
  if (dialect === 'postgres') return type === 'boolean' ? (value) => (value === null ? null : Boolean(value)) : (value) => value
  return (value) => {
    if (typeof value === 'boolean') return Number(value)
    // PostgreSQL's timestamp and JSON types, should a migration ever use them: SQLite keeps epoch ms and JSON text.
    if (value instanceof Date) return value.getTime()
    if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) return JSON.stringify(value)
    return value
  }
}

/** The last number the source's sequence gave for `column`, whether or not its row is still there; 0 for none. */
async function lastNumber(db: Kysely<any>, dialect: DialectName, table: string, column: string): Promise<number> {
  const { rows } = dialect === 'postgres'
    ? await sql<{ n: number | null }>`select pg_sequence_last_value(pg_get_serial_sequence(${table}, ${column})::regclass) as n`.execute(db)
    : await sql<{ n: number | null }>`select seq as n from sqlite_sequence where name = ${table}`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** The target's next number for `table` comes after `last`: PostgreSQL's identity sequence, SQLite's sqlite_sequence. */
async function setSequence(db: Kysely<any>, dialect: DialectName, table: TableShape, last: number): Promise<void> {
  if (dialect === 'postgres') {
    // setval(seq, 1, false): the next is 1, for a table that never had a row.
    await sql`select setval(pg_get_serial_sequence(${table.name}, ${table.numbered}), ${Math.max(last, 1)}, ${last > 0})`.execute(db)
    return
  }
  await sql`delete from sqlite_sequence where name = ${table.name}`.execute(db)
  // As an integer: node:sqlite binds a number as a double, which this untyped table would keep as one.
  if (last > 0) await sql`insert into sqlite_sequence (name, seq) values (${table.name}, ${BigInt(last)})`.execute(db)
}

/** Every table's columns, primary key, foreign keys and sequence, as the database's own catalog has them. */
async function describe(db: Kysely<any>, dialect: DialectName): Promise<Map<string, TableShape>> {
  return dialect === 'postgres' ? describePostgres(db) : describeSqlite(db)
}

async function describeSqlite(db: Kysely<any>): Promise<Map<string, TableShape>> {
  const shapes = new Map<string, TableShape>()
  const { rows: tables } = await sql<{ name: string; sql: string }>`select name, sql from sqlite_master where type = 'table' and substr(name, 1, 7) <> 'sqlite_' order by name`.execute(db)
  for (const { name, sql: definition } of tables) {
    const { rows: columns } = await sql<{ name: string; type: string; pk: number }>`select name, type, pk from pragma_table_info(${name}) order by cid`.execute(db)
    const { rows: keys } = await sql<{ table: string }>`select "table" from pragma_foreign_key_list(${name})`.execute(db)
    const primaryKey = columns.filter((column) => column.pk > 0).sort((a, b) => a.pk - b.pk).map((column) => column.name)
    shapes.set(name, {
      name,
      columns: columns.map((column) => ({ name: column.name, type: column.type.toLowerCase() })),
      primaryKey,
      references: new Set(keys.map((key) => key.table)),
      numbered: primaryKey.length === 1 && /\bautoincrement\b/i.test(definition) ? primaryKey[0] : undefined,
    })
  }
  return shapes
}

/** The tables of the connection's current schema (where Gatehouse's migrations made them). */
async function describePostgres(db: Kysely<any>): Promise<Map<string, TableShape>> {
  const shapes = new Map<string, TableShape>()
  const { rows: columns } = await sql<{ table: string; column: string; type: string; identity: boolean; key: number | null }>`
    select c.relname as "table", a.attname as "column", format_type(a.atttypid, a.atttypmod) as type,
      a.attidentity <> '' as identity, array_position(i.indkey::int2[], a.attnum) as key
    from pg_class c
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_index i on i.indrelid = c.oid and i.indisprimary
    where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p')
    order by c.relname, a.attnum`.execute(db)
  for (const row of columns) {
    let shape = shapes.get(row.table)
    if (!shape) shapes.set(row.table, shape = { name: row.table, columns: [], primaryKey: [], references: new Set(), numbered: undefined })
    shape.columns.push({ name: row.column, type: row.type })
    if (row.identity) shape.numbered = row.column
  }
  for (const shape of shapes.values()) {
    shape.primaryKey = columns.filter((row) => row.table === shape.name && row.key !== null).sort((a, b) => a.key! - b.key!).map((row) => row.column)
  }
  const { rows: keys } = await sql<{ table: string; references: string }>`
    select c.relname as "table", r.relname as "references"
    from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid
    where k.contype = 'f' and k.connamespace = current_schema()::regnamespace`.execute(db)
  for (const key of keys) shapes.get(key.table)?.references.add(key.references)
  return shapes
}

/** The tables ordered so that each comes after every other it references (by name among equals, so runs agree). */
function inReferenceOrder(tables: TableShape[]): TableShape[] {
  const ordered: TableShape[] = []
  const placed = new Set<string>()
  const names = new Set(tables.map((table) => table.name))
  let waiting = [...tables].sort((a, b) => (a.name < b.name ? -1 : 1))
  while (waiting.length) {
    const ready = waiting.filter((table) => [...table.references].every((name) => name === table.name || placed.has(name) || !names.has(name)))
    if (!ready.length) throw new Error(`the foreign keys of ${waiting.map((table) => table.name).join(', ')} name one another in a cycle: no order copies them`)
    for (const table of ready) {
      ordered.push(table)
      placed.add(table.name)
    }
    waiting = waiting.filter((table) => !placed.has(table.name))
  }
  return ordered
}

/** A few names, and how many more: a message stays one line however many there are. */
function list(names: string[]): string {
  const shown = 5
  return names.length > shown ? `${names.slice(0, shown).join(', ')} and ${names.length - shown} more` : names.join(', ')
}
