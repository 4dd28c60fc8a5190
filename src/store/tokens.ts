import type { Kysely, Selectable } from 'kysely'
import { type FilterFields, type ListFilter, listPage, NO_FILTER } from './list-filter.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables, TokensTable } from './schema.ts'

export type TokenScope = 'read' | 'write'

/** A personal token as stored: its hash, never its value. */
export interface TokenRecord {
  id: number
  userId: number
  tokenHash: string
  scope: TokenScope
  description: string
  created: number
  modified: number
  expires: number
  lastUsed: number | null
}

/** Which OIDC access token a credential is, and what ends it: its own revocation, its grant's, its realm's not-before. */
export interface AccessTokenOrigin {
  readonly realm: string
  readonly jti: string
  readonly grantId: string | null
  /** Its `iat`, whole seconds. */
  readonly issuedAt: number
}

export interface NewToken {
  userId: number
  tokenHash: string
  scope: TokenScope
  description: string
  expires: number
  /** The token it is created with, if one: revoking or narrowing that one does the same to this. */
  parentTokenId?: number | undefined
  /** The OIDC access token it is created with, if one: that token's revocation, its grant's or its realm's ends this. */
  parentAccessToken?: AccessTokenOrigin | undefined
}

/** What ended OIDC access tokens (REVOKE_TOPIC's keys): tokens by `jti`, grants, and realms' not-befores (seconds). */
export interface EndedAccessTokens {
  jtis: string[]
  grants: string[]
  realms: { realm: string; notBefore: number }[]
}

export interface TokenQuery {
  offset: number
  limit: number
  userId?: number | undefined
  filter?: ListFilter | undefined
}

/** What a list of tokens can be filtered, searched and ordered on, by the API's field names. */
export const tokenFilterFields: FilterFields = Object.freeze({
  id: { column: 'id', type: 'integer' },
  user: { column: 'user_id', type: 'integer' },
  scope: { column: 'scope', type: 'text' },
  description: { column: 'description', type: 'text', searched: true },
  expires: { column: 'expires_at', type: 'time' },
  created: { column: 'created_at', type: 'time' },
  modified: { column: 'modified_at', type: 'time' },
  last_used: { column: 'last_used_at', type: 'time' },
})

/** Values per `in (...)` list: well within SQLite's 32,766 parameters and PostgreSQL's 65,535. */
const IN_BATCH = 500

/** Personal OAuth 2 tokens. Lookups go by the token's hash; this layer never sees a token's value. */
export class TokenRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async create(input: NewToken, now = Date.now()): Promise<TokenRecord> {
    const row = await this.#db.insertInto('tokens').values({
      user_id: input.userId,
      token_hash: input.tokenHash,
      scope: input.scope,
      description: input.description,
      created_at: now,
      modified_at: now,
      expires_at: input.expires,
      last_used_at: null,
      parent_token_id: input.parentTokenId ?? null,
      parent_access_token: input.parentAccessToken?.jti ?? null,
      parent_grant_id: input.parentAccessToken?.grantId ?? null,
      parent_realm: input.parentAccessToken?.realm ?? null,
      parent_issued_at: input.parentAccessToken?.issuedAt ?? null,
    }).returningAll().executeTakeFirstOrThrow()
    return toToken(row)
  }

  /** The tokens created with these, and with those, and so on. */
  async descendantsOf(ids: number | readonly number[]): Promise<number[]> {
    const found: number[] = []
    for (let generation = typeof ids === 'number' ? [ids] : [...ids]; generation.length;) {
      const next: number[] = []
      for (let i = 0; i < generation.length; i += IN_BATCH) {
        const rows = await this.#db.selectFrom('tokens').select('id').where('parent_token_id', 'in', generation.slice(i, i + IN_BATCH)).execute()
        for (const row of rows) next.push(Number(row.id))
      }
      found.push(...next)
      generation = next
    }
    return found
  }

  /** The tokens created with OIDC access tokens that have ended (not those created with these tokens in turn), and whose they are. */
  async createdWithEnded(ended: EndedAccessTokens): Promise<{ id: number; userId: number }[]> {
    const found = new Map<number, number>()
    // In batches, as a client's deletion can end thousands of grants at once: each stays within the bound on parameters.
    for (const [column, values] of [['parent_access_token', ended.jtis], ['parent_grant_id', ended.grants]] as const) {
      for (let i = 0; i < values.length; i += IN_BATCH) {
        const rows = await this.#db.selectFrom('tokens').select(['id', 'user_id']).where(column, 'in', values.slice(i, i + IN_BATCH)).execute()
        for (const row of rows) found.set(Number(row.id), Number(row.user_id))
      }
    }
    for (const { realm, notBefore } of ended.realms) {
      const rows = await this.#db.selectFrom('tokens').select(['id', 'user_id']).where('parent_realm', '=', realm).where('parent_issued_at', '<', notBefore).execute()
      for (const row of rows) found.set(Number(row.id), Number(row.user_id))
    }
    return [...found].map(([id, userId]) => ({ id, userId }))
  }

  /** Deletes these tokens (and, in the database, those created with them); how many there were. */
  async deleteMany(ids: readonly number[]): Promise<number> {
    let deleted = 0
    for (let i = 0; i < ids.length; i += IN_BATCH) {
      const result = await this.#db.deleteFrom('tokens').where('id', 'in', ids.slice(i, i + IN_BATCH)).executeTakeFirst()
      deleted += Number(result.numDeletedRows)
    }
    return deleted
  }

  /** Narrows these tokens to `read`. */
  async narrow(ids: readonly number[], now = Date.now()): Promise<void> {
    if (ids.length) await this.#db.updateTable('tokens').set({ scope: 'read', modified_at: now }).where('id', 'in', ids).where('scope', '=', 'write').execute()
  }

  /** How many tokens a user has, expired ones included (they stay until deleted). */
  async countOf(userId: number): Promise<number> {
    const { n } = await this.#db.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow()
    return Number(n)
  }

  async findByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    const row = await this.#db.selectFrom('tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
    return row && toToken(row)
  }

  async findById(id: number): Promise<TokenRecord | undefined> {
    const row = await this.#db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toToken(row)
  }

  async list(query: TokenQuery): Promise<{ count: number; tokens: TokenRecord[] }> {
    const filter = query.filter ?? NO_FILTER
    let base = this.#db.selectFrom('tokens')
    if (query.userId !== undefined) base = base.where('user_id', '=', query.userId)
    const { count, rows } = await listPage(this.#dialect, base, tokenFilterFields, filter, query)
    return { count, tokens: rows.map(toToken) }
  }

  async update(id: number, changes: { description?: string | undefined; scope?: TokenScope | undefined }, now = Date.now()): Promise<TokenRecord | undefined> {
    const values: Partial<Record<keyof TokensTable, unknown>> = { modified_at: now }
    if (changes.description !== undefined) values.description = changes.description
    if (changes.scope !== undefined) values.scope = changes.scope
    const row = await this.#db.updateTable('tokens').set(values as never).where('id', '=', id).returningAll().executeTakeFirst()
    return row && toToken(row)
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.#db.deleteFrom('tokens').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  async deleteByUser(userId: number): Promise<number> {
    const result = await this.#db.deleteFrom('tokens').where('user_id', '=', userId).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  async deleteAll(): Promise<number> {
    const result = await this.#db.deleteFrom('tokens').executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /** Saves last-use times gathered in memory, in one transaction; a time never moves backwards. */
  async recordLastUsed(uses: ReadonlyMap<number, number>): Promise<void> {
    if (uses.size === 0) return
    await this.#db.transaction().execute(async (trx) => {
      for (const [id, at] of uses) {
        await trx.updateTable('tokens').set({ last_used_at: at })
          .where('id', '=', id)
          .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', at)]))
          .execute()
      }
    })
  }
}

function toToken(row: Selectable<TokensTable>): TokenRecord {
  return {
    id: Number(row.id),
    userId: Number(row.user_id),
    tokenHash: row.token_hash,
    // Anything but `write` reads as `read`: an unexpected value must not widen a token.
    scope: row.scope === 'write' ? 'write' : 'read',
    description: row.description,
    created: Number(row.created_at),
    modified: Number(row.modified_at),
    expires: Number(row.expires_at),
    lastUsed: row.last_used_at === null ? null : Number(row.last_used_at),
  }
}
