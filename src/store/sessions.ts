import { type Kysely, type Selectable, sql } from 'kysely'
import { deleteInBatches } from './deletion-batches.ts'
import { type FilterFields, type ListFilter, listPage, NO_FILTER } from './list-filter.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { SessionsTable, Tables } from './schema.ts'

/** A login session as stored: the identifier itself is never stored, only its SHA-256 (`keyHash`). */
export interface StoredSession {
  id: number
  keyHash: string
  userId: number
  created: number
  expiresAt: number
  ip: string
  userAgent: string
  /** The upstream provider's sign-in it was started by, if a single sign-on started it. */
  upstream?: UpstreamSession | undefined
}

/**
 * What a session started by a single sign-on keeps of it (docs/sso.md#signing-out): the provider, the subject and the
 * provider's session id (`sid`) a back-channel logout token names.
 */
export interface UpstreamSession {
  provider: string
  subject: string
  sid?: string | undefined
  /**
   * The provider's ID token, kept only for a provider with `sign_out_at_provider`, to send back as `id_token_hint` when
   * the person signs out (docs/sso.md#signing-out). A credential of sorts: never shown, logged or audited.
   */
  idToken?: string | undefined
  /**
   * Whether the provider had the person log in during this sign-in (its ID token's `auth_time` within it, or a fresh
   * login asked for with `prompt=login`), rather than its own session answering silently: only such a sign-in answers
   * a realm login that asks for a fresh login (docs/sso.md#fresh-sign-ins).
   */
  freshLogin?: boolean | undefined
}

/** Which sessions of a provider a back-channel logout token names: its `sid`, its `sub`, or both. */
export interface UpstreamSessionMatch {
  provider: string
  sid?: string | undefined
  subject?: string | undefined
}

export type NewSession = Omit<StoredSession, 'id'>

export interface SessionQuery {
  offset: number
  limit: number
  /** Sessions that expire after this moment are listed; expired ones are not. */
  now: number
  userId?: number | undefined
  filter?: ListFilter | undefined
}

/** What a list of sessions can be filtered, searched and ordered on, by the API's field names. */
export const sessionFilterFields: FilterFields = Object.freeze({
  id: { column: 'id', type: 'integer' },
  user: { column: 'user_id', type: 'integer' },
  created: { column: 'created_at', type: 'time' },
  expires_on: { column: 'expires_at', type: 'time' },
  ip: { column: 'ip', type: 'text', searched: true },
  user_agent: { column: 'user_agent', type: 'text', searched: true },
})

/** Login sessions. Every method that ends sessions returns the key hashes it ended, so callers can tell other processes. */
export class SessionRepository {
  readonly #db: Kysely<Tables>

  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async create(input: NewSession): Promise<StoredSession> {
    const row = await this.#db.insertInto('sessions').values({
      key_hash: input.keyHash,
      user_id: input.userId,
      created_at: input.created,
      expires_at: input.expiresAt,
      ip: input.ip,
      user_agent: input.userAgent,
      ...(input.upstream ? {
        sso_provider: input.upstream.provider,
        sso_subject: input.upstream.subject,
        sso_sid: input.upstream.sid ?? null,
        sso_id_token: input.upstream.idToken ?? null,
        sso_fresh_login: input.upstream.freshLogin === true,
      } : {}),
    }).returningAll().executeTakeFirstOrThrow()
    return toSession(row)
  }

  async findByKeyHash(keyHash: string): Promise<StoredSession | undefined> {
    const row = await this.#db.selectFrom('sessions').selectAll().where('key_hash', '=', keyHash).executeTakeFirst()
    return row && toSession(row)
  }

  async findById(id: number): Promise<StoredSession | undefined> {
    const row = await this.#db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toSession(row)
  }

  /** Moves a session's end; an already expired or ended session stays ended. */
  async extend(keyHash: string, expiresAt: number, now: number): Promise<StoredSession | undefined> {
    const row = await this.#db.updateTable('sessions').set({ expires_at: expiresAt })
      .where('key_hash', '=', keyHash).where('expires_at', '>', now)
      .returningAll().executeTakeFirst()
    return row && toSession(row)
  }

  async list(query: SessionQuery): Promise<{ count: number; sessions: StoredSession[] }> {
    const filter = query.filter ?? NO_FILTER
    let base = this.#db.selectFrom('sessions').where('expires_at', '>', query.now)
    if (query.userId !== undefined) base = base.where('user_id', '=', query.userId)
    const { count, rows } = await listPage(this.#dialect, base, sessionFilterFields, filter, query)
    return { count, sessions: rows.map(toSession) }
  }

  async deleteByKeyHash(keyHash: string): Promise<StoredSession | undefined> {
    const row = await this.#db.deleteFrom('sessions').where('key_hash', '=', keyHash).returningAll().executeTakeFirst()
    return row && toSession(row)
  }

  async deleteById(id: number): Promise<StoredSession | undefined> {
    const row = await this.#db.deleteFrom('sessions').where('id', '=', id).returningAll().executeTakeFirst()
    return row && toSession(row)
  }

  /**
   * Ends the sessions a provider's back-channel logout token names (OpenID Connect Back-Channel Logout 1.0, 2.7): with
   * a `sid`, the sessions whose sign-in that provider gave that `sid` (and, when the token names a `sub` too, the
   * subject's); sessions whose sign-in had no `sid` are known by their subject alone, so a token naming the subject
   * ends them as well. Without a `sid`, every session of the subject signed in through the provider.
   */
  async deleteForUpstream(match: UpstreamSessionMatch): Promise<StoredSession[]> {
    const { provider, sid, subject } = match
    if (sid === undefined && subject === undefined) return []
    const rows = await this.#db.deleteFrom('sessions').where('sso_provider', '=', provider).where((eb) => {
      const bySid = sid === undefined ? undefined : subject === undefined ? eb('sso_sid', '=', sid) : eb.and([eb('sso_sid', '=', sid), eb('sso_subject', '=', subject)])
      const bySubject = subject === undefined ? undefined : sid === undefined ? eb('sso_subject', '=', subject) : eb.and([eb('sso_sid', 'is', null), eb('sso_subject', '=', subject)])
      return eb.or([bySid, bySubject].filter((condition) => condition !== undefined))
    }).returningAll().execute()
    return rows.map(toSession)
  }

  async deleteForUser(userId: number): Promise<string[]> {
    const rows = await this.#db.deleteFrom('sessions').where('user_id', '=', userId).returning('key_hash').execute()
    return rows.map((r) => r.key_hash)
  }

  /**
   * On PostgreSQL, waits for every other transaction that called this for the same user to end, and holds them off
   * until this one ends (an advisory lock). A transaction that starts a session under `sessions_per_user_limit` calls
   * it first, before it ends any session: were it to end the browser's previous session before waiting, the one it
   * waits for could be ending that same session as surplus, each waiting for the other (a deadlock, answered 500).
   * SQLite's writers are alone already.
   */
  async serializeForUser(userId: number): Promise<void> {
    if (this.#dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${`sessions:${userId}`}))`.execute(this.#db)
  }

  /**
   * Ends all but the `keep` newest sessions of a user that are live at `now`. Expired ones take no place: one started
   * later but left to expire would otherwise end an older one still in use, and they are left to `deleteExpired`.
   * Run in the transaction that starts a session, after `serializeForUser`: it then counts the sessions that every
   * earlier start of the same user committed; otherwise a burst of logins, each counting only the sessions committed
   * before it, would leave more than `keep`. `started`, the session that start just made, is always one of those kept:
   * its `created_at` is when its login began, so a login that began earlier but committed after another would
   * otherwise end its own session in the transaction that made it, and answer with a session already ended.
   */
  async deleteOldest(userId: number, keep: number, now: number, started?: number): Promise<string[]> {
    const rows = await this.#db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('expires_at', '>', now)
      .orderBy('created_at', 'desc').orderBy('id', 'desc').execute()
    const others = rows.filter((r) => Number(r.id) !== started)
    const placesLeft = others.length < rows.length ? keep - 1 : keep
    const surplus = others.slice(placesLeft).map((r) => Number(r.id))
    if (!surplus.length) return []
    const deleted = await this.#db.deleteFrom('sessions').where('id', 'in', surplus).returning('key_hash').execute()
    return deleted.map((r) => r.key_hash)
  }

  /** Removes sessions that expired at or before `now`, a batch at a time (deleteInBatches); returns how many. */
  async deleteExpired(now: number): Promise<number> {
    return deleteInBatches(async (limit) => {
      const expired = this.#db.selectFrom('sessions').select('id').where('expires_at', '<=', now).limit(limit)
      return Number((await this.#db.deleteFrom('sessions').where('id', 'in', expired).executeTakeFirst()).numDeletedRows)
    })
  }
}

function toSession(row: Selectable<SessionsTable>): StoredSession {
  return {
    id: Number(row.id),
    keyHash: row.key_hash,
    userId: Number(row.user_id),
    created: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    ip: row.ip,
    userAgent: row.user_agent,
    ...(row.sso_provider !== null && row.sso_subject !== null ? {
      upstream: {
        provider: row.sso_provider, subject: row.sso_subject, sid: row.sso_sid ?? undefined, ...(row.sso_id_token === null ? {} : { idToken: row.sso_id_token }),
        ...(row.sso_fresh_login ? { freshLogin: true } : {}),
      },
    } : {}),
  }
}
