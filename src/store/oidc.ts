import type { Kysely } from 'kysely'
import type { Tables } from './schema.ts'

export interface OidcRecord {
  model: string
  id: string
  payload: Record<string, unknown>
  grantId: string | null
  expiresAt: number | null
  consumedAt: number | null
}

export interface OidcRecordInput {
  model: string
  id: string
  payload: Record<string, unknown>
  grantId?: string | undefined
  uid?: string | undefined
  userCode?: string | undefined
  /** Epoch ms; undefined keeps the record until it is destroyed. */
  expiresAt?: number | undefined
}

/**
 * The OpenID Connect provider's records (sessions, grants, codes, tokens, interactions), one row each,
 * as JSON payloads keyed by model and id. Expired rows are never returned and are pruned from time to time.
 */
export class OidcRecordRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  async upsert(input: OidcRecordInput): Promise<void> {
    const values = {
      payload: JSON.stringify(input.payload),
      grant_id: input.grantId ?? null,
      uid: input.uid ?? null,
      user_code: input.userCode ?? null,
      account_id: typeof input.payload.accountId === 'string' ? input.payload.accountId : null,
      expires_at: input.expiresAt ?? null,
      consumed_at: null,
    }
    await this.#db.insertInto('oidc_records').values({ model: input.model, id: input.id, ...values })
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet(values))
      .execute()
  }

  async find(model: string, id: string, now = Date.now()): Promise<OidcRecord | undefined> {
    const row = await this.#live(now).where('model', '=', model).where('id', '=', id).executeTakeFirst()
    return row && toRecord(row)
  }

  async findByUid(model: string, uid: string, now = Date.now()): Promise<OidcRecord | undefined> {
    const row = await this.#live(now).where('model', '=', model).where('uid', '=', uid).executeTakeFirst()
    return row && toRecord(row)
  }

  async findByUserCode(model: string, userCode: string, now = Date.now()): Promise<OidcRecord | undefined> {
    const row = await this.#live(now).where('model', '=', model).where('user_code', '=', userCode).executeTakeFirst()
    return row && toRecord(row)
  }

  /** Marks a record used (a code, a rotated refresh token); true when it existed. */
  async consume(model: string, id: string, at = Date.now()): Promise<boolean> {
    const result = await this.#db.updateTable('oidc_records').set({ consumed_at: at })
      .where('model', '=', model).where('id', '=', id).executeTakeFirst()
    return Number(result.numUpdatedRows) > 0
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.#db.deleteFrom('oidc_records').where('model', '=', model).where('id', '=', id).execute()
  }

  async destroyByGrantId(model: string, grantId: string): Promise<void> {
    await this.#db.deleteFrom('oidc_records').where('model', '=', model).where('grant_id', '=', grantId).execute()
  }

  /**
   * Deletes every record of an account, whatever its model (sessions, grants, codes, refresh and access tokens),
   * so that none of them can be used again; returns how many there were. Records of other accounts and those
   * without one (client credentials, interactions) are left alone.
   */
  async destroyByAccount(accountId: string): Promise<number> {
    const result = await this.#db.deleteFrom('oidc_records').where('account_id', '=', accountId).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  async pruneExpired(now = Date.now()): Promise<number> {
    const result = await this.#db.deleteFrom('oidc_records').where('expires_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  #live(now: number) {
    return this.#db.selectFrom('oidc_records').selectAll()
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
  }
}

function toRecord(row: { model: string; id: string; payload: string; grant_id: string | null; expires_at: number | null; consumed_at: number | null }): OidcRecord {
  return {
    model: row.model,
    id: row.id,
    payload: JSON.parse(row.payload),
    grantId: row.grant_id,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    consumedAt: row.consumed_at === null ? null : Number(row.consumed_at),
  }
}
