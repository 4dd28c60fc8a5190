import type { Kysely } from 'kysely'
import type { Tables } from './schema.ts'

export interface SigningKey {
  kid: string
  purpose: string
  alg: string
  privateJwk: Record<string, unknown>
  publicJwk: Record<string, unknown>
  created: number
  retireAt: number | null
}

/** Signing keys shared by every gateway process, so a JWKS served by any of them verifies tokens of all. */
export class SigningKeyRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
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
      retire_at: key.retireAt,
    }).execute()
  }

  async retire(kid: string, at: number): Promise<void> {
    await this.#db.updateTable('signing_keys').set({ retire_at: at }).where('kid', '=', kid).execute()
  }

  async deleteRetiredBefore(purpose: string, time: number): Promise<void> {
    await this.#db.deleteFrom('signing_keys').where('purpose', '=', purpose).where('retire_at', '<', time).execute()
  }
}
