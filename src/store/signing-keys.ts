import { sql, type Kysely } from 'kysely'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables } from './schema.ts'

export interface SigningKey {
  kid: string
  purpose: string
  alg: string
  privateJwk: Record<string, unknown>
  publicJwk: Record<string, unknown>
  /** When it signs (or signed) from, by the options of the process that made it. */
  created: number
  /** When it was published, for a key published ahead of signing (migration 028): each process counts from it. */
  published?: number | null
  retireAt: number | null
}

/** Signing keys shared by every gateway process, so a JWKS served by any of them verifies tokens of all. */
export class SigningKeyRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async list(purpose: string): Promise<SigningKey[]> {
    const rows = await this.#db.selectFrom('signing_keys').selectAll().where('purpose', '=', purpose).orderBy('created_at', 'desc').execute()
    return rows.map((r) => ({
      kid: r.kid,
      purpose: r.purpose,
      alg: r.alg,
      privateJwk: JSON.parse(r.private_jwk),
      publicJwk: JSON.parse(r.public_jwk),
      created: Number(r.created_at),
      published: r.published_at == null ? null : Number(r.published_at),
      retireAt: r.retire_at === null ? null : Number(r.retire_at),
    }))
  }

  async add(key: SigningKey): Promise<void> {
    await this.#db.insertInto('signing_keys').values({
      kid: key.kid,
      purpose: key.purpose,
      alg: key.alg,
      private_jwk: JSON.stringify(key.privateJwk),
      public_jwk: JSON.stringify(key.publicJwk),
      created_at: key.created,
      published_at: key.published ?? null,
      retire_at: key.retireAt,
    }).execute()
  }

  /**
   * Adds a purpose's first key only while it has no key in use, and says whether it did: processes starting together
   * on an empty database then sign with one key, rather than each publish one and all but one retire theirs.
   */
  async addFirst(key: SigningKey): Promise<boolean> {
    const values = sql.join([key.kid, key.purpose, key.alg, JSON.stringify(key.privateJwk), JSON.stringify(key.publicJwk), key.created, key.retireAt])
    const insert = (db: Kysely<Tables>) => sql`
      insert into signing_keys (kid, purpose, alg, private_jwk, public_jwk, created_at, retire_at)
      select ${values}
      where not exists (select 1 from signing_keys where purpose = ${key.purpose} and retire_at is null)`.execute(db)
    // On SQLite a statement that writes holds the write lock from its start, so the check and the insert are one step;
    // PostgreSQL's read committed lets two such statements each see no key, so they take turns under a lock.
    const result = this.#dialect === 'postgres'
      ? await this.#db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext(${`signing_keys:${key.purpose}`}))`.execute(trx)
        return await insert(trx)
      })
      : await insert(this.#db)
    return Number(result.numAffectedRows ?? 0) === 1
  }

  async retire(kid: string, at: number): Promise<void> {
    await this.#db.updateTable('signing_keys').set({ retire_at: at }).where('kid', '=', kid).execute()
  }

  async deleteRetiredBefore(purpose: string, time: number): Promise<void> {
    await this.#db.deleteFrom('signing_keys').where('purpose', '=', purpose).where('retire_at', '<', time).execute()
  }
}
