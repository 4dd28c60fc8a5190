import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely'
import pg from 'pg'
import type { Tables } from './schema.ts'
import type { DialectName } from './migrations/helpers.ts'
import { migrationProvider } from './migrations/index.ts'
import { NodeSqliteDatabase } from './sqlite-driver.ts'

// PostgreSQL BIGINT (our epoch-millisecond times) arrives as a string by default; every value we store fits a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value))

export interface DatabaseLocation {
  /** A `postgres://` URL; when absent, the embedded SQLite file in `dataDir` is used. */
  url?: string | undefined
  dataDir: string
}

/** One open connection (pool) to either backend, with the one query layer on top. */
export class Database {
  readonly db: Kysely<Tables>
  readonly dialect: DialectName
  readonly description: string
  readonly #sqlite: NodeSqliteDatabase | undefined
  readonly #pool: pg.Pool | undefined

  private constructor(db: Kysely<Tables>, dialect: DialectName, description: string, sqlite?: NodeSqliteDatabase, pool?: pg.Pool) {
    this.db = db
    this.dialect = dialect
    this.description = description
    this.#sqlite = sqlite
    this.#pool = pool
  }

  static open(location: DatabaseLocation): Database {
    const url = location.url
    if (url && /^postgres(ql)?:\/\//.test(url)) {
      const pool = new pg.Pool({ connectionString: url, max: 10 })
      // An idle client losing its connection must not crash the process; the next query reconnects.
      pool.on('error', () => {})
      // Nor may a checked-out one: its query in flight fails on its own, but pg also emits 'error' on the
      // client, where the pool listens only while the client is idle.
      pool.on('connect', (client) => client.on('error', () => {}))
      const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) })
      return new Database(db, 'postgres', redactUrl(url), undefined, pool)
    }
    if (url) throw new Error(`unsupported database URL scheme (expected postgres://): ${redactUrl(url)}`)
    const dir = resolve(location.dataDir)
    mkdirSync(dir, { recursive: true })
    const file = join(dir, 'gatehouse.sqlite')
    const sqlite = new NodeSqliteDatabase(file)
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) })
    return new Database(db, 'sqlite', `sqlite:${file}`, sqlite)
  }

  /** Applies every pending migration; safe to run from several processes at once. */
  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider(this.dialect) })
    const { error, results } = await migrator.migrateToLatest()
    if (error) throw error
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
  }

  /** SQLite only: a counter that moves when another process commits (undefined on PostgreSQL). */
  dataVersion(): number | undefined {
    return this.#sqlite?.dataVersion()
  }

  /** A dedicated PostgreSQL client for LISTEN, or undefined on SQLite. */
  async listenClient(): Promise<pg.PoolClient | undefined> {
    return this.#pool?.connect()
  }

  /**
   * One query that shows the database answers and how its schema compares with this version's migrations:
   * `pending` ones this version needs and the database lacks, `unknown` ones a newer version has applied.
   */
  async migrationStatus(): Promise<{ applied: number; pending: string[]; unknown: string[] }> {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(this.db)
    const applied = new Set(rows.map((row) => row.name))
    const known = Object.keys(await migrationProvider(this.dialect).getMigrations())
    return {
      applied: applied.size,
      pending: known.filter((name) => !applied.has(name)),
      unknown: [...applied].filter((name) => !known.includes(name)),
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.db.selectFrom('settings').select('key').limit(1).execute()
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    await this.db.destroy()
  }
}

export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  return e?.code === '23505' || /UNIQUE constraint failed/.test(String(e?.message))
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')
}
