import type { Compilable, Kysely } from 'kysely'
import { sql } from './kysely.ts'
import { CompiledStatements } from './compiled-statements.ts'
import { deleteInBatches } from './deletion-batches.ts'
import { DatabaseUnavailable } from '../errors.ts'
import type { DialectName } from './migrations/helpers.ts'
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
  /** The key a device code is found by for its user code (src/oidc/record-keys.ts `userCodeKey`); undefined keeps the one it has. */
  userCode?: string | undefined
  /** Epoch ms; undefined keeps the record until it is destroyed. */
  expiresAt?: number | undefined
}

/** A realm's browser session (`saveSession`), linked to the gateway session of the same browser when it has one. */
export interface SessionInput extends Omit<OidcRecordInput, 'model' | 'grantId' | 'userCode'> {
  /** The key hash of that gateway session, whose end ends this one (`endLinkedSessions`). */
  gatewaySession?: string | undefined
}

/** The record of a realm's not-before (Keycloak's realm `notBefore`), keyed by the realm's name. */
export const REALM_NOT_BEFORE_MODEL = 'RealmNotBefore'
const GRANT_MODEL = 'Grant'
const SESSION_MODEL = 'Session'
const REFRESH_TOKEN_MODEL = 'RefreshToken'
const ACCESS_TOKEN_MODEL = 'AccessToken'

const AUTHORIZATION_CODE_MODEL = 'AuthorizationCode'
/**
 * Codes and device codes outlive the grant they were issued under, ended, until they expire (a minute, or the device
 * code's lifespan): oidc-provider refuses one whose grant is gone, and its refusal names what became of the code's
 * account, "User disabled" as Keycloak answers (src/oidc/keycloak-format.ts), which a deleted code could not tell.
 */
const CODE_MODELS = [AUTHORIZATION_CODE_MODEL, 'DeviceCode']
/** What an ended realm browser session's row keeps: its key and expiry, nothing that finds it or could be used. */
const ENDED_SESSION = { payload: '{}', grant_id: null, uid: null, user_code: null, account_id: null, gateway_session: null, consumed_at: null } as const

/**
 * What ended with an account, besides its realm browser sessions: each of its grants (`payload`), with the tokens issued
 * under it, as they were.
 */
export interface EndedGrant {
  id: string
  payload: Record<string, unknown>
  tokens: Record<string, unknown>[]
}

/** Realm browser sessions (oidc-provider's Session payloads) and grants that ended together. */
export interface EndedSignIns {
  sessions: Record<string, unknown>[]
  grants: EndedGrant[]
}

/** The most records one statement writes: well within both backends' limits on bound parameters. */
const MAX_BATCH_RECORDS = 200

interface QueuedRecord {
  input: OidcRecordInput
  written: () => void
  failed: (error: unknown) => void
}

/**
 * The OpenID Connect provider's records (sessions, grants, codes, tokens, interactions), one row each,
 * as JSON payloads keyed by model and id. Expired rows are never returned and are pruned from time to time.
 *
 * With `batched` (the store's own repository, never one in a transaction), records written in the same turn of
 * the event loop go to the database in one statement: every token endpoint request writes a record, and one
 * commit for all of them costs far less than one each. A caller still waits until its own record is committed,
 * so a token is answered only once revocation can find it; a failure reaches every caller of the batch (an
 * outage), or only the caller whose record was refused. Deleting waits for the writes queued before it, so a
 * revocation never misses a record written before it was asked for, and a deleted record is never written back.
 */
export class OidcRecordRepository {
  readonly #db: Kysely<Tables>
  readonly #batched: boolean
  #queue: QueuedRecord[] = []
  readonly #inFlight = new Set<Promise<void>>()
  readonly #statements = new CompiledStatements()
  /** Grants read along with a token (`findWithGrant`): this repository's own, or the one it is a transaction of. */
  readonly #readAlong: GrantsReadAlong
  /** In a transaction's repository: whether it changed grants, which only its end commits (or undoes). */
  #changedGrants = false
  /** Told of realm browser sessions (and grants) this repository or one of its transactions' ended, once they are committed. */
  readonly #sessionEnds: SessionEnds
  /** In a transaction's repository: the sessions and grants it ended, told once it commits. */
  readonly #endedInTransaction: EndedSignIns | undefined

  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, options: { dialect: DialectName; batched?: boolean }, readAlong = new GrantsReadAlong(), sessionEnds?: SessionEnds) {
    this.#db = db
    this.#dialect = options.dialect
    this.#batched = options.batched === true
    this.#readAlong = readAlong
    this.#sessionEnds = sessionEnds ?? new SessionEnds()
    this.#endedInTransaction = sessionEnds ? { sessions: [], grants: [] } : undefined
  }

  /**
   * Tells `listener` the payloads of the realm browser sessions that `endLinkedSessions`, `endSessionByUid` and
   * `destroyByAccount` end (oidc-provider's Session: `accountId`, `uid`, `authorizations` by client), and the grants
   * that `destroyByAccount` ends with their tokens, after the transaction that ended them committed; never of one
   * rolled back.
   */
  onSessionsEnded(listener: (ended: EndedSignIns) => void): void {
    this.#sessionEnds.listeners.push(listener)
  }

  /** A transaction's repository (`inTransaction`), its transaction committed: the sessions and grants it ended are told. */
  transactionCommitted(): void {
    if (!this.#endedInTransaction) return
    const ended = { sessions: this.#endedInTransaction.sessions.splice(0), grants: this.#endedInTransaction.grants.splice(0) }
    if (ended.sessions.length || ended.grants.length) this.#sessionEnds.tell(ended)
  }

  #sessionsEnded(sessions: Record<string, unknown>[], grants: EndedGrant[] = []): void {
    if (!sessions.length && !grants.length) return
    if (this.#endedInTransaction) {
      this.#endedInTransaction.sessions.push(...sessions)
      this.#endedInTransaction.grants.push(...grants)
    } else {
      this.#sessionEnds.tell({ sessions, grants })
    }
  }

  /**
   * A repository on `trx`, a transaction on this one's database. The grants it deletes (a revocation, an account's
   * records) are not served from what this one read along any more than those this one deletes itself; call its
   * `transactionEnded` once the transaction is over, as a grant may have been read along before the commit.
   */
  inTransaction(trx: Kysely<Tables>): OidcRecordRepository {
    return new OidcRecordRepository(trx, { dialect: this.#dialect }, this.#readAlong, this.#sessionEnds)
  }

  /** A transaction's repository (`inTransaction`), its transaction over: its changes to grants are committed (or undone) only now. */
  transactionEnded(): void {
    if (this.#changedGrants) this.#readAlong.changed()
  }

  /**
   * Writes a realm's browser session; false when nothing was written, because the session was ended
   * (`endLinkedSessions`, `endSession`, `destroyByAccount`) or the gateway session it is to be linked to no
   * longer exists. A request that loaded the session before an end may save it after: the save must not bring it
   * back, so each check and the write are one statement.
   *
   * An ended session's row stays, emptied (`ended_at`), until the session would have expired, and the write, an
   * upsert on the same key, updates only a row that was not ended. On PostgreSQL an end under way holds that row, and
   * the write waits for it and then checks the row as the end left it; an end that comes later finds what was written.
   *
   * With `gatewaySession` the link is written only if that gateway session still exists: the statement holds its row
   * (FOR KEY SHARE, as a foreign key's check does) until it is written, so an end of it under way is waited for and
   * then seen, and an end that comes later waits for the write and then finds the link. Without one, a link the
   * session had is kept. On SQLite the statement and an end's transaction each hold the one write lock.
   */
  async saveSession(input: SessionInput): Promise<boolean> {
    const row = {
      model: SESSION_MODEL,
      id: input.id,
      payload: JSON.stringify(input.payload),
      grant_id: null,
      uid: input.uid ?? null,
      user_code: null,
      account_id: typeof input.payload.accountId === 'string' ? input.payload.accountId : null,
      gateway_session: input.gatewaySession ?? null,
      expires_at: input.expiresAt ?? null,
      consumed_at: null,
    }
    const insert = this.#db.insertInto('oidc_records')
    const link = input.gatewaySession
    const written = link === undefined ? insert.values(row) : insert.columns(Object.keys(row) as (keyof typeof row)[])
      .expression(this.#db.selectNoFrom((eb) => [
        eb.val(row.model).as('model'),
        eb.val(row.id).as('id'),
        eb.val(row.payload).as('payload'),
        eb.cast<string | null>(eb.val(null), 'text').as('grant_id'),
        eb.cast<string | null>(eb.val(row.uid), 'text').as('uid'),
        eb.cast<string | null>(eb.val(null), 'text').as('user_code'),
        eb.cast<string | null>(eb.val(row.account_id), 'text').as('account_id'),
        eb.val(link).as('gateway_session'),
        eb.cast<number | null>(eb.val(row.expires_at), 'bigint').as('expires_at'),
        eb.cast<number | null>(eb.val(null), 'bigint').as('consumed_at'),
      ]).where((eb) => {
        const gatewaySession = this.#db.selectFrom('sessions').select('key_hash').where('key_hash', '=', link)
        return eb.exists(this.#dialect === 'postgres' ? gatewaySession.forKeyShare() : gatewaySession)
      }))
    const result = await written
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet((eb) => ({
        payload: eb.ref('excluded.payload'),
        uid: eb.ref('excluded.uid'),
        account_id: eb.ref('excluded.account_id'),
        ...(link === undefined ? {} : { gateway_session: eb.ref('excluded.gateway_session') }),
        expires_at: eb.ref('excluded.expires_at'),
        consumed_at: eb.ref('excluded.consumed_at'),
      })).where('oidc_records.ended_at', 'is', null))
      .executeTakeFirst()
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0
  }

  /**
   * Extends the live realm browser session of this `uid` to `until` (epoch ms), but never past `maxSeconds` after it
   * began (its payload's `loginTs`, or its first save, `iat`, if later: src/oidc/adapter.ts `browserSessionStart`), nor shortens it.
   * Only the expiry is written: a payload saved meanwhile stays as it was; a session expired or ended stays so.
   */
  async extendSession(uid: string, until: number, maxSeconds: number, now: number): Promise<void> {
    const postgres = this.#dialect === 'postgres'
    const began = postgres
      ? sql<number>`greatest(coalesce((payload::json ->> 'loginTs')::bigint, 0), coalesce((payload::json ->> 'iat')::bigint, 0))`
      : sql<number>`max(coalesce(json_extract(payload, '$.loginTs'), 0), coalesce(json_extract(payload, '$.iat'), 0))`
    const end = sql<number>`(${began} + ${maxSeconds}) * 1000`
    const extended = postgres ? sql<number>`least(cast(${until} as bigint), ${end})` : sql<number>`min(${until}, ${end})`
    await this.#db.updateTable('oidc_records').set({ expires_at: extended })
      .where('model', '=', SESSION_MODEL).where('uid', '=', uid).where('ended_at', 'is', null)
      .where('expires_at', '>', now).where('expires_at', '<', extended).execute()
  }

  /** The gateway session a realm browser session is linked to now, if it has a record and a link. */
  async linkOf(sessionId: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('oidc_records').select('gateway_session').where('model', '=', SESSION_MODEL).where('id', '=', sessionId).executeTakeFirst()
    return row?.gateway_session ?? undefined
  }

  /**
   * Ends one realm browser session as `endLinkedSessions` ends those of a gateway session: its record, whether or not
   * it was written, which no save brings back until `expiresAt` (the session's own expiry), and the grants of its
   * sign-ins (as `payload` lists them) with everything issued under them; returns the grants ended.
   */
  async endSession(id: string, payload: Record<string, unknown>, expiresAt: number, now: number): Promise<string[]> {
    await this.#db.insertInto('oidc_records').values({ ...ENDED_SESSION, model: SESSION_MODEL, id, expires_at: expiresAt, ended_at: now })
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet({ ...ENDED_SESSION, ended_at: now })).execute()
    const grants = sessionGrants(payload)
    await this.#endGrants(grants)
    return grants
  }

  /**
   * Ends the live realm browser session of this `uid` as `endSession` does, and tells it (`onSessionsEnded`); returns
   * the grants ended, its account and the gateway session it was linked to (`saveSession`), or undefined when no live
   * session has that uid (it ended already).
   */
  async endSessionByUid(uid: string, now: number): Promise<{ grants: string[]; accountId: string | undefined; gatewaySession: string | undefined } | undefined> {
    const session = await this.findByUid(SESSION_MODEL, uid, now)
    if (!session) return undefined
    // Read before the end empties the row; in the caller's transaction, as the end is.
    const gatewaySession = await this.linkOf(session.id)
    // Of ends under way at once, the one that empties the row tells it.
    if (!(await this.#endSessions('id', [session.id], now))) return undefined
    const grants = sessionGrants(session.payload)
    await this.#endGrants(grants)
    this.#sessionsEnded([session.payload])
    const accountId = typeof session.payload.accountId === 'string' ? session.payload.accountId : undefined
    return { grants, accountId, gatewaySession }
  }

  /** Empties the realm browser sessions whose `column` is one of `values` into the rows of ended sessions (`saveSession`); returns how many. */
  // `ended_at` only marks the row as ended (no check compares it with a clock), so the machine's time will do.
  async #endSessions(column: 'id' | 'account_id', values: readonly string[], now = Date.now()): Promise<number> {
    const result = await this.#db.updateTable('oidc_records').set({ ...ENDED_SESSION, ended_at: now })
      .where('model', '=', SESSION_MODEL).where('ended_at', 'is', null).where(column, 'in', values).executeTakeFirst()
    return Number(result.numUpdatedRows)
  }

  /** Writes a record, replacing one of the same model and id; resolves once it is committed. */
  upsert(input: OidcRecordInput): Promise<void> {
    this.#changed(input.model)
    if (!this.#batched) return this.#write([input])
    return new Promise((written, failed) => {
      if (this.#queue.length === 0) setImmediate(() => this.#flush())
      this.#queue.push({ input, written, failed })
    })
  }

  /**
   * Writes a record anew only where it still is: a grant read, then saved again (an authorization widening it), is not
   * brought back once ended meanwhile (a logout, a new password, its account disabled), as the codes kept past its end
   * (`CODE_MODELS`) would be redeemable again with it. Writes first what is queued, so that it lands after it.
   */
  async rewrite(input: OidcRecordInput): Promise<void> {
    this.#changed(input.model)
    await this.settled()
    await this.#db.updateTable('oidc_records').set({
      payload: JSON.stringify(input.payload),
      grant_id: input.grantId ?? null,
      uid: input.uid ?? null,
      account_id: typeof input.payload.accountId === 'string' ? input.payload.accountId : null,
      expires_at: input.expiresAt ?? null,
    }).where('model', '=', input.model).where('id', '=', input.id).where('ended_at', 'is', null).execute()
    this.#changed(input.model)
  }

  /** Resolves once every record queued before the call is written (or has failed). */
  async settled(): Promise<void> {
    this.#flush()
    await Promise.all(this.#inFlight)
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH_RECORDS)
      const writing = this.#writeBatch(batch).finally(() => this.#inFlight.delete(writing))
      this.#inFlight.add(writing)
    }
  }

  async #writeBatch(batch: QueuedRecord[]): Promise<void> {
    try {
      await this.#write(batch.map((queued) => queued.input))
      for (const queued of batch) queued.written()
    } catch (error) {
      if (batch.length === 1 || error instanceof DatabaseUnavailable) {
        for (const queued of batch) queued.failed(error)
        return
      }
      // A record the database refuses (bad input) must fail its own caller only.
      await Promise.all(batch.map((queued) => this.#write([queued.input]).then(queued.written, queued.failed)))
    }
  }

  /**
   * A session's link to its gateway session (`saveSession`) is left as it was, and an ended session is not written
   * (`saveSession` says why): the adapter saves sessions through `saveSession`, which says when that happened.
   */
  async #write(inputs: OidcRecordInput[]): Promise<void> {
    // One statement may not change a row twice (PostgreSQL refuses it): the last write of a record wins, as it would one by one.
    const latest = new Map(inputs.map((input) => [`${input.model}\u0000${input.id}`, input]))
    const rows = [...latest.values()].map((input) => ({
      model: input.model,
      id: input.id,
      payload: JSON.stringify(input.payload),
      grant_id: input.grantId ?? null,
      uid: input.uid ?? null,
      user_code: input.userCode ?? null,
      account_id: typeof input.payload.accountId === 'string' ? input.payload.accountId : null,
      expires_at: input.expiresAt ?? null,
      consumed_at: null,
    }))
    const parameters = rows.flatMap((row) => [row.model, row.id, row.payload, row.grant_id, row.uid, row.user_code, row.account_id, row.expires_at, row.consumed_at])
    await this.#db.executeQuery(this.#statements.compiled(`insert:${rows.length}`, parameters, () => this.#db.insertInto('oidc_records').values(rows)
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet((eb) => ({
        payload: eb.ref('excluded.payload'),
        grant_id: eb.ref('excluded.grant_id'),
        uid: eb.ref('excluded.uid'),
        // A device code saved as found by its own id, not its user code, does not know its key, and keeps it.
        user_code: eb.fn.coalesce(eb.ref('excluded.user_code'), eb.ref('oidc_records.user_code')),
        account_id: eb.ref('excluded.account_id'),
        expires_at: eb.ref('excluded.expires_at'),
        // Kept: a record once used stays used, whatever a request that read it before saves of it.
      })).where('oidc_records.ended_at', 'is', null))))
  }

  /**
   * Whether an access token's record (a user's `AccessToken`, a service account's `ClientCredentials`) and, when it has
   * one, its grant are live, and it was issued after its realm's not-before, holding those records (PostgreSQL: locked
   * for share) until the transaction ends: a revocation or `logout-all` that would change them waits for it and then
   * sees what the transaction created with the token, or committed first and is seen here.
   */
  async holdAccessToken(token: { jti: string; grantId: string | null; realm: string; issuedAt: number }, now: number): Promise<boolean> {
    const read = this.#live(now).where((eb) => eb.or([
      eb.and([eb('model', 'in', ['AccessToken', 'ClientCredentials']), eb('id', '=', token.jti)]),
      eb.and([eb('model', '=', REALM_NOT_BEFORE_MODEL), eb('id', '=', token.realm)]),
      ...token.grantId === null ? [] : [eb.and([eb('model', '=', GRANT_MODEL), eb('id', '=', token.grantId)])],
    ]))
    const rows = await (this.#dialect === 'postgres' ? read.forShare() : read).execute()
    const notBefore = rows.find((row) => row.model === REALM_NOT_BEFORE_MODEL)
    if (notBefore && Number(JSON.parse(notBefore.payload).notBefore ?? 0) > token.issuedAt) return false
    return rows.some((row) => row.model === 'AccessToken' || row.model === 'ClientCredentials') && (token.grantId === null || rows.some((row) => row.model === GRANT_MODEL))
  }

  async find(model: string, id: string, now: number): Promise<OidcRecord | undefined> {
    const along = this.#readAlong.take(model, id)
    if (along !== undefined && (along === null || along.expiresAt === null || along.expiresAt > now)) return along ?? undefined
    return this.#findLive('find', now, model, id, () => this.#live(now).where('model', '=', model).where('id', '=', id))
  }

  /**
   * A record (a refresh token) and its grant, in one statement: a refresh reads its token and then, at once, the
   * token's grant, and on PostgreSQL each read is a round trip. The grant is kept for the first `find` of it in the
   * same turn of the event loop, as that find would have read it: a write or deletion of grants through this
   * repository or one of its transactions' (`inTransaction`, as revocations delete grants) since the read was asked
   * for drops it, and so does the turn's end.
   */
  async findWithGrant(model: string, id: string, now: number): Promise<OidcRecord | undefined> {
    const changesBefore = this.#readAlong.changes
    const { rows } = await this.#db.executeQuery(this.#statements.compiled('findWithGrant', [now, model, id, now, GRANT_MODEL, model, id], () =>
      this.#live(now).where('model', '=', model).where('id', '=', id)
        .unionAll(this.#db.selectFrom('oidc_records as g').select(RECORD_COLUMNS.map((column) => `g.${column}` as const))
          .where((eb) => eb.or([eb('g.expires_at', 'is', null), eb('g.expires_at', '>', now)]))
          .where('g.model', '=', GRANT_MODEL)
          .where('g.id', '=', (eb) => eb.selectFrom('oidc_records as t').select('t.grant_id').where('t.model', '=', model).where('t.id', '=', id)))))
    const record = rows.find((row) => row.model === model && row.id === id)
    if (!record) return undefined
    if (record.grant_id !== null && model !== GRANT_MODEL && this.#readAlong.changes === changesBefore) {
      const grant = rows.find((row) => row.model === GRANT_MODEL && row.id === record.grant_id)
      this.#readAlong.keep(record.grant_id, grant ? toRecord(grant) : null)
    }
    return toRecord(record)
  }

  /**
   * A write or deletion of `model`'s records (of any model's, without one), as it starts and once it is done: what
   * was read along of a grant while it was under way may be gone.
   */
  #changed(model?: string): void {
    if (model !== undefined && model !== GRANT_MODEL) return
    this.#changedGrants = true
    this.#readAlong.changed()
  }

  async findByUid(model: string, uid: string, now: number): Promise<OidcRecord | undefined> {
    return this.#findLive('findByUid', now, model, uid, () => this.#live(now).where('model', '=', model).where('uid', '=', uid))
  }

  /** A live record by the key of its user code (`OidcRecordInput.userCode`). */
  async findByUserCode(model: string, userCodeKey: string, now: number): Promise<OidcRecord | undefined> {
    return this.#findLive('findByUserCode', now, model, userCodeKey, () => this.#live(now).where('model', '=', model).where('user_code', '=', userCodeKey))
  }

  async #findLive(shape: string, now: number, model: string, key: string, build: () => Compilable<OidcRow>): Promise<OidcRecord | undefined> {
    const { rows } = await this.#db.executeQuery(this.#statements.compiled(shape, [now, model, key], build))
    return rows[0] && toRecord(rows[0])
  }

  /**
   * Writes a record only where none of its key is live (none, or one expired that the sweep has not yet deleted): true
   * when this call wrote it. In one statement, so that of requests writing the same key at once, one only gets true
   * (a client assertion's `jti`, which authenticates once).
   */
  async insertOnce(input: { model: string; id: string; payload: Record<string, unknown>; expiresAt: number }, now: number): Promise<boolean> {
    const result = await this.#db.insertInto('oidc_records')
      .values({ model: input.model, id: input.id, payload: JSON.stringify(input.payload), grant_id: null, uid: null, user_code: null, account_id: null, expires_at: input.expiresAt, consumed_at: null })
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet((eb) => ({ payload: eb.ref('excluded.payload'), expires_at: eb.ref('excluded.expires_at') }))
        .where('oidc_records.expires_at', '<=', now))
      .executeTakeFirst()
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0
  }

  /**
   * Marks a record used (a code, a rotated refresh token); true when this call did, false when it does not exist or
   * was used already. In one statement, so that of requests that read the record unused at the same time, one only
   * gets true. A code used is kept until its grant's expiry, when that is later than its own, holding `kept` for its
   * payload when given (`consumeCode`).
   */
  async consume(model: string, id: string, at: number, kept?: Record<string, unknown>): Promise<boolean> {
    this.#changed(model)
    if (model === AUTHORIZATION_CODE_MODEL) return this.#consumeCode(id, at, kept)
    const result = await this.#db.executeQuery(this.#statements.compiled('consume', [at, model, id], () => this.#db.updateTable('oidc_records').set({ consumed_at: at })
      .where('model', '=', model).where('id', '=', id).where('consumed_at', 'is', null)))
    return Number(result.numAffectedRows ?? 0) > 0
  }

  /**
   * Marks a code used, and keeps it until its grant would expire (its session's maximum), rather than its own minute:
   * brought again at any time its grant may still hold tokens, it is found used and ends that grant, as Keycloak ends
   * the client session of a code it no longer has, whose session and client its format names (OAuth2CodeParser). A
   * grant keeps at most 100 used codes besides its 100 newest (src/oidc/adapter.ts `CODES_PER_GRANT_LIMIT`, `endCodesPastLimit`): bounded.
   * Its grant's end leaves it to that expiry: brought again then, it ends nothing more and is refused as before.
   * `kept` replaces its payload in the same statement (src/oidc/adapter.ts `usedCodePayload`): kept that long, a code
   * holds only what finds its grant, not the claims, nonce, redirect URI and PKCE challenge nothing reads again.
   */
  async #consumeCode(id: string, at: number, kept: Record<string, unknown> | undefined): Promise<boolean> {
    const payload = kept === undefined ? undefined : JSON.stringify(kept)
    const parameters = payload === undefined ? [at, id] : [at, payload, id]
    const result = await this.#db.executeQuery(this.#statements.compiled(payload === undefined ? 'consumeCode' : 'consumeCodeKeeping', parameters, () => this.#db.updateTable('oidc_records').set((eb) => ({
      consumed_at: at,
      ...payload === undefined ? {} : { payload },
      expires_at: eb.fn.coalesce(
        eb.selectFrom('oidc_records as grant').select('grant.expires_at')
          .where('grant.model', '=', sql.lit(GRANT_MODEL)).whereRef('grant.id', '=', 'oidc_records.grant_id').whereRef('grant.expires_at', '>', 'oidc_records.expires_at'),
        eb.ref('oidc_records.expires_at'),
      ),
    })).where('model', '=', sql.lit(AUTHORIZATION_CODE_MODEL)).where('id', '=', id).where('consumed_at', 'is', null)))
    return Number(result.numAffectedRows ?? 0) > 0
  }

  /**
   * Marks a used record unused again: a code whose redemption was refused only for the moment (429, the grant's
   * `access_tokens_per_grant_limit`), so that the retry its Retry-After invites is not taken for a code used twice.
   * `payload`, given, is written back: a code's whole payload, which its use replaced (`consume`'s `kept`).
   */
  async release(model: string, id: string, payload?: Record<string, unknown>): Promise<void> {
    this.#changed(model)
    await this.#db.updateTable('oidc_records').set({ consumed_at: null, ...payload === undefined ? {} : { payload: JSON.stringify(payload) } })
      .where('model', '=', model).where('id', '=', id).where('consumed_at', 'is not', null).execute()
  }

  /**
   * Deletes a record. A realm browser session is deleted, not ended (`saveSession`): oidc-provider also destroys a
   * session whose identifier it renews (a new login, a logout from one client), and a save of it under the old one
   * that came late would otherwise end the grants that went on with the new one.
   */
  async destroy(model: string, id: string): Promise<void> {
    this.#changed(model)
    await this.settled()
    await this.#db.deleteFrom('oidc_records').where('model', '=', model).where('id', '=', id).execute()
    this.#changed(model)
  }

  async destroyByGrantId(model: string, grantId: string): Promise<void> {
    this.#changed(model)
    await this.settled()
    await this.#db.deleteFrom('oidc_records').where('model', '=', model).where('grant_id', '=', grantId).execute()
    this.#changed(model)
  }

  /**
   * Deletes every record of an account (grants, refresh and access tokens; its codes stay, `CODE_MODELS`), and ends its
   * realm browser sessions (`saveSession`), so that none of them can be used again; returns how many there were.
   * Records of other accounts and those without one (client credentials, interactions) are left alone.
   */
  async destroyByAccount(accountId: string): Promise<number> {
    this.#changed()
    await this.settled()
    // Read before they are emptied, to tell who they were, and only those read are ended. On PostgreSQL the read holds
    // them, waiting for a save under way (a sign-in to another client), so that each is told as it is ended; a session
    // a login inserts after the read stays, refused where it is used (the account's not-before, or it is disabled).
    const read = this.#db.selectFrom('oidc_records').select(['id', 'payload']).where('model', '=', SESSION_MODEL)
      .where('ended_at', 'is', null).where('account_id', '=', accountId)
    const live = await (this.#dialect === 'postgres' ? read.forUpdate() : read).execute()
    let sessions = 0
    for (let start = 0; start < live.length; start += MAX_BATCH_RECORDS) {
      sessions += await this.#endSessions('id', live.slice(start, start + MAX_BATCH_RECORDS).map((session) => session.id))
    }
    // The grants, with their tokens, go with them: those of no browser session (a password login) are told by their tokens.
    const issued = await this.#db.selectFrom('oidc_records').select(['model', 'id', 'grant_id', 'payload']).where('account_id', '=', accountId)
      .where('model', 'in', [GRANT_MODEL, 'AccessToken', 'RefreshToken']).execute()
    const grants = new Map<string, EndedGrant>()
    for (const row of issued) if (row.model === GRANT_MODEL) grants.set(row.id, { id: row.id, payload: JSON.parse(row.payload), tokens: [] })
    for (const row of issued) if (row.model !== GRANT_MODEL && row.grant_id !== null) grants.get(row.grant_id)?.tokens.push(JSON.parse(row.payload))
    this.#sessionsEnded(live.map((session) => JSON.parse(session.payload)), [...grants.values()])
    const result = await this.#db.deleteFrom('oidc_records').where('account_id', '=', accountId).where('model', 'not in', [SESSION_MODEL, ...CODE_MODELS]).executeTakeFirst()
    this.#changed()
    return sessions + Number(result.numDeletedRows)
  }

  /**
   * Ends every grant of these clients, with the refresh and access tokens issued under them, as
   * Keycloak ends a removed client's sessions; returns the grants ended, for the caller to tell every process
   * (REVOKE_TOPIC). Seldom asked (a client was deleted), so the grants are found by their payload, without an index.
   */
  async endClientGrants(clientIds: readonly string[]): Promise<string[]> {
    if (!clientIds.length) return []
    const clientId = this.#dialect === 'postgres' ? sql<string>`payload::json ->> 'clientId'` : sql<string>`cast(json_extract(payload, '$.clientId') as text)`
    const grants = (await this.#db.selectFrom('oidc_records').select('id').where('model', '=', GRANT_MODEL).where(clientId, 'in', [...clientIds]).execute()).map((grant) => grant.id)
    await this.#endGrants(grants)
    return grants
  }

  /**
   * Ends every live realm browser session of one realm (its payload's `member` names the realm) and every grant whose
   * scopes are of the realm's `resource` (browser sign-ins, password logins, offline tokens), with everything issued
   * under them, as Keycloak's `logout-all` removes a realm's user sessions and its new not-before refuses every token
   * issued before; and the gateway sessions those browser sessions were linked to, which would sign their browsers in
   * again, in one statement. Returns the grants ended and the key hashes of the gateway sessions ended, for the caller
   * to tell every process. The sessions are not told (`onSessionsEnded`) one by one, as Keycloak's removal tells none:
   * the caller tells each client's admin URL once. Seldom asked, so they are found by their payload, without an index.
   */
  async endRealmSignIns(member: string, realm: string, resource: string): Promise<{ grants: string[]; gatewaySessions: string[] }> {
    const postgres = this.#dialect === 'postgres'
    const sessionRealm = postgres ? sql<string>`payload::json ->> ${member}` : sql<string>`cast(json_extract(payload, ${`$.${member}`}) as text)`
    const resourceScope = postgres ? sql`payload::json -> 'resources' -> ${resource}` : sql`json_extract(payload, ${`$.resources."${resource}"`})`
    this.#changed()
    await this.settled()
    const realmSessions = () => this.#db.selectFrom('oidc_records').where('model', '=', SESSION_MODEL).where('ended_at', 'is', null).where(sessionRealm, '=', realm)
    const gatewaySessions = await this.#db.deleteFrom('sessions')
      .where('key_hash', 'in', realmSessions().select('gateway_session').where('gateway_session', 'is not', null))
      .returning('key_hash').execute()
    const sessions = await realmSessions().select(['id', 'payload']).execute()
    const grants = new Set<string>()
    for (let start = 0; start < sessions.length; start += MAX_BATCH_RECORDS) {
      const batch = sessions.slice(start, start + MAX_BATCH_RECORDS)
      for (const session of batch) for (const grant of sessionGrants(JSON.parse(session.payload))) grants.add(grant)
      await this.#endSessions('id', batch.map((session) => session.id))
    }
    const granted = await this.#db.selectFrom('oidc_records').select('id').where('model', '=', GRANT_MODEL).where(resourceScope, 'is not', null).execute()
    for (const grant of granted) grants.add(grant.id)
    await this.#endGrants([...grants])
    return { grants: [...grants], gatewaySessions: gatewaySessions.map((session) => session.key_hash) }
  }

  /**
   * Ends the realm browser sessions linked to these gateway sessions, as a logout at the realm does: each session
   * record (which no save brings back, `saveSession`) and, for every client it signed in to, the grant and everything issued under it (codes, refresh and
   * access tokens), except offline grants, which outlive the session they came from. Returns the grants ended, for
   * the caller to tell every process (REVOKE_TOPIC). Sessions linked to other gateway sessions are left alone.
   */
  async endLinkedSessions(gatewaySessions: readonly string[]): Promise<string[]> {
    const grants: string[] = []
    const ended: Record<string, unknown>[] = []
    for (let start = 0; start < gatewaySessions.length; start += MAX_BATCH_RECORDS) {
      const linked = await this.#db.selectFrom('oidc_records').select(['id', 'payload']).where('model', '=', SESSION_MODEL)
        .where('ended_at', 'is', null).where('gateway_session', 'in', gatewaySessions.slice(start, start + MAX_BATCH_RECORDS)).execute()
      if (!linked.length) continue
      const payloads = linked.map((session) => JSON.parse(session.payload) as Record<string, unknown>)
      for (const payload of payloads) grants.push(...sessionGrants(payload))
      ended.push(...payloads)
      await this.#endSessions('id', linked.map((session) => session.id))
    }
    await this.#endGrants(grants)
    this.#sessionsEnded(ended)
    return grants
  }

  /**
   * The grants, with their client, of an account's sign-in that no browser session holds (a password login), which
   * its tokens name with its Keycloak session id (`sid`). Found among the account's live refresh and access tokens,
   * by their payload.
   */
  async grantsOfSignIn(accountId: string, sid: string, now: number): Promise<{ grantId: string; clientId: string }[]> {
    const tokenSid = this.#dialect === 'postgres' ? sql<string>`payload::json ->> 'sid'` : sql<string>`cast(json_extract(payload, '$.sid') as text)`
    const tokens = await this.#live(now).where('account_id', '=', accountId).where('model', 'in', ['RefreshToken', 'AccessToken'])
      .where('grant_id', 'is not', null).where(tokenSid, '=', sid).execute()
    const grants = new Map<string, string>()
    for (const token of tokens) grants.set(token.grant_id!, String(JSON.parse(token.payload).clientId))
    return [...grants].map(([grantId, clientId]) => ({ grantId, clientId }))
  }

  /** Deletes grants and the refresh and access tokens issued under them (their codes stay, `CODE_MODELS`), as a revocation of each does. */
  async endGrants(grants: readonly string[]): Promise<void> {
    await this.#endGrants(grants)
  }

  /** Deletes grants and the refresh and access tokens issued under them (their codes stay, `CODE_MODELS`). */
  async #endGrants(grants: readonly string[]): Promise<void> {
    if (!grants.length) return
    this.#changed()
    await this.settled()
    for (let start = 0; start < grants.length; start += MAX_BATCH_RECORDS) {
      const batch = grants.slice(start, start + MAX_BATCH_RECORDS)
      await this.#db.deleteFrom('oidc_records').where((eb) => eb.or([eb.and([eb('grant_id', 'in', batch), eb('model', 'not in', CODE_MODELS)]), eb.and([eb('model', '=', GRANT_MODEL), eb('id', 'in', batch)])])).execute()
    }
    this.#changed()
  }

  /** The realm sessions linked to one gateway session are linked to another now (the browser's session was replaced by a new one of the same user). */
  async relinkSessions(from: string, to: string): Promise<void> {
    await this.#db.updateTable('oidc_records').set({ gateway_session: to }).where('model', '=', SESSION_MODEL).where('gateway_session', '=', from).execute()
  }

  /**
   * The account's live grants past its `limit` newest: those to end so that it holds at most `limit`, never `kept`
   * (the grant just saved, whose tokens are being issued). Newest by the second they were issued (`iat`), then by
   * when they end, then by id: one order every caller agrees on, so that grants saved at once by several requests
   * or processes end only the older ones, never each other. Counted first, by the account's grants' index; read and
   * ordered only when there are more.
   */
  async grantsPastLimit(accountId: string, limit: number, kept: string, now: number): Promise<string[]> {
    // The model written in the statement, not bound: only so does the database know it may use the index of grants
    // alone (029_oidc_account_grants_index), whose condition names it.
    const live = this.#db.selectFrom('oidc_records').where('account_id', '=', accountId).where('model', '=', sql.lit(GRANT_MODEL))
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    const { count } = await live.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
    if (Number(count) <= limit) return []
    const issued = this.#issuedAt()
    const older = await live.select('id').orderBy(issued, 'desc').orderBy(sql`coalesce(expires_at, 0)`, 'desc').orderBy('id', 'desc').limit(Number(count)).offset(limit).execute()
    return older.map((grant) => grant.id).filter((id) => id !== kept)
  }

  /**
   * Deletes a grant's live refresh tokens past its `limit` newest, never `kept` (the one just saved, being issued).
   * Newest by the second they were issued, then by when they expire, then by id: not by expiry first, as tokens
   * capped by the session's maximum all end at the same second, and their milliseconds say only when in its second
   * each was saved. Counted first, by the index of refresh tokens (030_oidc_grant_refresh_tokens_index);
   * read, ordered and deleted only when there are more. Nothing need be told to other processes: they keep no
   * refresh token in memory past the turn that read it.
   */
  async endRefreshTokensPastLimit(grantId: string, limit: number, kept: string, now: number): Promise<void> {
    await this.#endPastLimit(REFRESH_TOKEN_MODEL, grantId, limit, kept, now)
  }

  /** The ids of a grant's live access tokens but `kept`, by the index of records by grant. */
  async accessTokensOfGrant(grantId: string, kept: string, now: number): Promise<string[]> {
    const rows = await this.#db.selectFrom('oidc_records').select('id').where('grant_id', '=', grantId).where('model', '=', sql.lit(ACCESS_TOKEN_MODEL))
      .where('id', '!=', kept).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])).execute()
    return rows.map((row) => row.id)
  }

  /**
   * The id of the newest live refresh token of one chain of a grant's refreshes, by the id's order (which begins with
   * the time it was issued, and names the chain and the grant after it: src/oidc/token-ids.ts `refreshTokenChain`);
   * undefined when none is left. `chain` is the `iiat`, a dot and the chain's hex tag, which a LIKE pattern takes
   * literally. By the index of refresh tokens, among the grant's few (its `refresh_tokens_per_grant_limit`).
   */
  async newestRefreshTokenOfChain(grantId: string, chain: string, now: number): Promise<string | undefined> {
    if (!/^[0-9]+\.[0-9a-f]+$/.test(chain)) return undefined
    const row = await this.#db.selectFrom('oidc_records').select((eb) => eb.fn.max<string>('id').as('id'))
      .where('grant_id', '=', grantId).where('model', '=', sql.lit(REFRESH_TOKEN_MODEL)).where('id', 'like', `%.${chain}.%`)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst()
    return row?.id ?? undefined
  }

  /**
   * Deletes a grant's live codes past its `limit` newest, never `kept` (the one just saved), ordered as
   * `endRefreshTokensPastLimit` orders refresh tokens: those unused, and those used past the `limit` newest of them.
   * Counted by the index of records by grant: besides its codes, a grant has its refresh and access tokens, which the
   * realm bounds. A code deleted so is refused as an unknown one; one used and kept is still found used when it is
   * brought again, which ends its grant as a code used twice does (oidc-provider's `consumeGrantSource`).
   */
  async endCodesPastLimit(grantId: string, limit: number, kept: string, now: number): Promise<void> {
    await this.#endPastLimit(AUTHORIZATION_CODE_MODEL, grantId, limit, kept, now, limit)
  }

  /** Deletes the records past `limit`, but for `usedKept` of the used ones (the newest). */
  async #endPastLimit(model: string, grantId: string, limit: number, kept: string, now: number, usedKept = 0): Promise<void> {
    // The model written in the statement, not bound: so the database may use the index of refresh tokens alone.
    const live = this.#db.selectFrom('oidc_records').where('grant_id', '=', grantId).where('model', '=', sql.lit(model))
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    const { count } = await live.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()
    if (Number(count) <= limit) return
    const issued = this.#issuedAt()
    const older = await live.select(['id', 'consumed_at']).orderBy(issued, 'desc').orderBy(sql`coalesce(expires_at, 0)`, 'desc').orderBy('id', 'desc').limit(Number(count)).offset(limit).execute()
    let used = 0
    const ended = older.filter((record) => record.id !== kept && (record.consumed_at === null || ++used > usedKept)).map((record) => record.id)
    if (ended.length) await this.#db.deleteFrom('oidc_records').where('model', '=', model).where('id', 'in', ended).execute()
  }

  /** A record's `iat` (the second it was issued); missing (a record written by hand), the oldest, alike on both databases. */
  #issuedAt() {
    return this.#dialect === 'postgres' ? sql<number>`coalesce((payload::json ->> 'iat')::bigint, 0)` : sql<number>`coalesce(json_extract(payload, '$.iat'), 0)`
  }

  /** Deletes the records that expired at or before `now`, a batch at a time (deleteInBatches); returns how many. */
  async pruneExpired(now: number): Promise<number> {
    this.#changed()
    return deleteInBatches(async (limit) => {
      const expired = this.#db.selectFrom('oidc_records').select(['model', 'id']).where('expires_at', '<=', now).limit(limit)
      const result = await this.#db.deleteFrom('oidc_records').where((eb) => eb(eb.refTuple('model', 'id'), 'in', expired.$asTuple('model', 'id'))).executeTakeFirst()
      return Number(result.numDeletedRows)
    })
  }

  #live(now: number) {
    return this.#db.selectFrom('oidc_records').select(RECORD_COLUMNS)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .where('ended_at', 'is', null)
  }
}

/** Who is told of ended realm browser sessions; shared by the store's repository and those of its transactions. */
class SessionEnds {
  readonly listeners: ((ended: EndedSignIns) => void)[] = []

  tell(ended: EndedSignIns): void {
    for (const listener of this.listeners) listener(ended)
  }
}

/**
 * The grants read along with a token (`findWithGrant`), by id (null: it has none), each kept for the first find of it
 * in the same turn of the event loop; shared by the store's repository and those of its transactions.
 */
class GrantsReadAlong {
  readonly #grants = new Map<string, OidcRecord | null>()
  /** Moves with every write and deletion that may touch a grant: a grant read along while one was under way is not kept. */
  changes = 0

  keep(id: string, grant: OidcRecord | null): void {
    if (this.#grants.size === 0) setImmediate(() => this.#grants.clear())
    this.#grants.set(id, grant)
  }

  /** The grant read along (null: the token had none), once; undefined when none was, or `model` is not a grant. */
  take(model: string, id: string): OidcRecord | null | undefined {
    if (model !== GRANT_MODEL) return undefined
    const grant = this.#grants.get(id)
    this.#grants.delete(id)
    return grant
  }

  changed(): void {
    this.changes++
    this.#grants.clear()
  }
}

/**
 * The grants a realm session's sign-ins made, one per client (oidc-provider's `authorizations`), that end with it:
 * those it marked `persistsLogout` (offline access) do not, as in a logout at the realm.
 */
export function sessionGrants(payload: { authorizations?: Record<string, { grantId?: unknown; persistsLogout?: unknown }> }): string[] {
  return Object.values(payload.authorizations ?? {}).flatMap((authorization) =>
    typeof authorization.grantId === 'string' && authorization.persistsLogout !== true ? [authorization.grantId] : [])
}

interface OidcRow {
  model: string
  id: string
  payload: string
  grant_id: string | null
  expires_at: number | null
  consumed_at: number | null
}

/**
 * The columns a record is read with (`OidcRow`): not the lookup keys and links only the store's own statements use
 * (uid, user code, account, gateway session, end), which a read would otherwise copy into every row it returns.
 */
const RECORD_COLUMNS = ['model', 'id', 'payload', 'grant_id', 'expires_at', 'consumed_at'] as const

function toRecord(row: OidcRow): OidcRecord {
  return {
    model: row.model,
    id: row.id,
    payload: JSON.parse(row.payload),
    grantId: row.grant_id,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    consumedAt: row.consumed_at === null ? null : Number(row.consumed_at),
  }
}
