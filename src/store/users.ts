import type { ExpressionBuilder, Kysely, Selectable } from 'kysely'
import { CompiledStatements } from './compiled-statements.ts'
import { databaseNow } from './database-clock.ts'
import { anyOf, type FilterFields, type ListFilter, listPage, NO_FILTER, oneOf } from './list-filter.ts'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables, UsersTable } from './schema.ts'

export type UserSource = 'local' | 'ldap' | 'sso'

export interface User {
  id: number
  username: string
  email: string
  firstName: string
  lastName: string
  passwordHash: string | null
  isSuperuser: boolean
  isActive: boolean
  source: UserSource
  external: boolean
  isSystemAuditor: boolean
  /** Named groups mapped from a directory (sorted); empty for local accounts. */
  groups: string[]
  created: number
  modified: number
  lastLogin: number | null
  /** Its sessions and OpenID Connect codes and tokens issued before this (epoch ms) are refused (`issuedBefore`); 0: none. */
  notBefore: number
  /** Its personal tokens created before this (epoch ms) are refused; 0: none. */
  tokensNotBefore: number
}

export interface NewUser {
  username: string
  email?: string
  firstName?: string
  lastName?: string
  passwordHash?: string | null
  isSuperuser?: boolean
  isActive?: boolean
  source?: UserSource
  external?: boolean
  isSystemAuditor?: boolean
  groups?: string[]
  /** The SHA-256 (hex) of the password hash an import stores (UsersRepository.importedPasswordDigest). */
  importedPasswordDigest?: string | null
  /** The file's word, at the last import, on whether the account is active, a superuser, a Platform Auditor (UsersRepository.importRecord). */
  importedActive?: boolean | null
  importedSuperuser?: boolean | null
  importedAuditor?: boolean | null
}

/**
 * `DATABASE_NOW` for a not-before: the database's time as the statement runs, never earlier than the one it had, so
 * that changes made from processes whose clocks disagree are ordered by one clock.
 */
export const DATABASE_NOW = 'database-now'

export type UserChanges = Partial<Omit<NewUser, 'username'>> & {
  username?: string
  notBefore?: number | typeof DATABASE_NOW
  tokensNotBefore?: number | typeof DATABASE_NOW
}

export interface UserQuery {
  offset: number
  limit: number
  username?: string | undefined
  source?: UserSource | undefined
  filter?: ListFilter | undefined
  /** Only these users and the superusers (one caller's view); absent: all. */
  visibleIds?: Iterable<number> | undefined
  /** Only the users given this role on this object directly (the members or admins of a team or organization). */
  holding?: { roleDefinitionId: number; objectType: 'organization' | 'team'; objectId: number } | undefined
}

/** What a list of users can be filtered, searched and ordered on, by the API's field names. */
export const userFilterFields: FilterFields = Object.freeze({
  id: { column: 'id', type: 'integer' },
  username: { column: 'username', type: 'text', searched: true },
  email: { column: 'email', type: 'text', searched: true },
  first_name: { column: 'first_name', type: 'text', searched: true },
  last_name: { column: 'last_name', type: 'text', searched: true },
  is_superuser: { column: 'is_superuser', type: 'boolean' },
  is_active: { column: 'is_active', type: 'boolean' },
  is_system_auditor: { column: 'is_system_auditor', type: 'boolean' },
  source: { column: 'source', type: 'text' },
  external: { column: 'external', type: 'boolean' },
  created: { column: 'created_at', type: 'time' },
  modified: { column: 'modified_at', type: 'time' },
  last_login: { column: 'last_login', type: 'time' },
})

/** Accounts, whatever their source. Passwords arrive already hashed: this layer never sees a secret. */
export class UserRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName
  /** The password grant's and the login's statements (the account by its name, the last login), compiled once. */
  readonly #statements = new CompiledStatements()

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async create(input: NewUser, now = Date.now()): Promise<User> {
    const row = await this.#db.insertInto('users').values({
      username: input.username,
      email: input.email ?? '',
      first_name: input.firstName ?? '',
      last_name: input.lastName ?? '',
      password_hash: input.passwordHash ?? null,
      is_superuser: input.isSuperuser ?? false,
      is_active: input.isActive ?? true,
      source: input.source ?? 'local',
      external: input.external ?? false,
      is_system_auditor: input.isSystemAuditor ?? false,
      group_names: JSON.stringify(input.groups ?? []),
      // Named only when set: the column's default is none, and a database at an earlier migration has no column.
      ...(input.importedPasswordDigest ? { imported_password_digest: input.importedPasswordDigest } : {}),
      ...(input.importedActive !== undefined && input.importedActive !== null ? { imported_active: input.importedActive } : {}),
      ...(input.importedSuperuser !== undefined && input.importedSuperuser !== null ? { imported_superuser: input.importedSuperuser } : {}),
      ...(input.importedAuditor !== undefined && input.importedAuditor !== null ? { imported_auditor: input.importedAuditor } : {}),
      created_at: now,
      modified_at: now,
    }).returningAll().executeTakeFirstOrThrow()
    return toUser(row)
  }

  async findById(id: number): Promise<User | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toUser(row)
  }

  /**
   * The account, its row locked until the transaction ends (PostgreSQL's `FOR UPDATE`): a change of the account
   * waits for the transaction that read it, or this read waits for the change and sees it. On SQLite a transaction
   * that writes holds the database's write lock from its start, which orders them already.
   */
  async findByIdForUpdate(id: number): Promise<User | undefined> {
    const read = this.#db.selectFrom('users').selectAll().where('id', '=', id)
    const row = await (this.#dialect === 'postgres' ? read.forUpdate() : read).executeTakeFirst()
    return row && toUser(row)
  }

  async findByUsername(username: string): Promise<User | undefined> {
    const { rows: [row] } = await this.#db.executeQuery(this.#statements.compiled('findByUsername', [username],
      () => this.#db.selectFrom('users').selectAll().where('username', '=', username)))
    return row && toUser(row)
  }

  /**
   * An account other than `exceptId` named `username` without regard to case, the exact spelling first. Names that
   * differ only in case are refused when made (src/directory/accounts.ts), but a database from an earlier version may
   * hold such pairs. Usernames are ASCII (USERNAME_PATTERN), which both backends' lower() fold alike.
   */
  async findCaseVariant(username: string, exceptId?: number): Promise<User | undefined> {
    let query = this.#db.selectFrom('users').selectAll().where((eb) => eb(eb.fn('lower', ['username']), '=', username.toLowerCase()))
    if (exceptId !== undefined) query = query.where('id', '!=', exceptId)
    const row = await query.orderBy(sql`case when username = ${username} then 0 else 1 end`).orderBy('id').limit(1).executeTakeFirst()
    return row && toUser(row)
  }

  /**
   * Usernames whose spelling matches `name` ignoring case, or whose e-mail address is `name` (ignoring case) when
   * `byEmail`; at most `limit`, for callers that accept only a unique match. An address counts only for accounts
   * that log in with a password: an SSO account's address is whatever its provider sent, and one that named a local
   * user's address would make that user's login by address ambiguous, and so fail.
   */
  async findUsernamesLike(name: string, byEmail: boolean, limit = 2): Promise<string[]> {
    const lowered = name.toLowerCase()
    const rows = await this.#db.selectFrom('users').select('username')
      .where((eb) => byEmail
        ? eb.or([eb(eb.fn('lower', ['username']), '=', lowered), eb.and([eb(eb.fn('lower', ['email']), '=', lowered), eb('source', '!=', 'sso')])])
        : eb(eb.fn('lower', ['username']), '=', lowered))
      .limit(limit).execute()
    return rows.map((r) => r.username)
  }

  async count(): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /**
   * Inside a transaction: holds the active superusers' rows until it ends, so that two transactions each taking
   * away a different superuser run one after the other, and the second counts what the first left
   * (activeSuperuserCount). PostgreSQL's row locks do that; on SQLite every write transaction already holds the
   * database's one write lock from its start (BEGIN IMMEDIATE), so there is nothing more to take.
   */
  async lockActiveSuperusers(): Promise<void> {
    if (this.#dialect !== 'postgres') return
    await this.#db.selectFrom('users').select('id').where('is_superuser', '=', true).where('is_active', '=', true).orderBy('id').forUpdate().execute()
  }

  async activeSuperuserCount(): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('is_superuser', '=', true).where('is_active', '=', true).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /**
   * Active accounts of `source` that still hold a credential that works: a session or personal token not yet
   * expired, or a live record of a realm (browser session, grant, refresh or access token, ...) under their id that
   * is not used up. A used one is no credential: a code or device code works once, a refresh token of a client with
   * reuse detection is refused once rotated (src/oidc/adapter.ts), and a used code, kept until its grant's expiry
   * (src/store/oidc.ts `consumeCode`), would have a logged-out account asked about that long. An account's records are
   * read through the account index, the used ones passed over: a logged-out account has few (a used code a sign-in).
   * A page of them, ordered by id, after `afterId`.
   */
  async activeHoldersOfCredentials(source: UserSource, afterId: number, limit: number, now = Date.now()): Promise<User[]> {
    const rows = await this.#db.selectFrom('users').selectAll('users')
      .where('source', '=', source).where('is_active', '=', true).where('id', '>', afterId)
      .where((eb) => eb.or([
        eb.exists(eb.selectFrom('sessions').select('sessions.id').whereRef('sessions.user_id', '=', 'users.id').where('sessions.expires_at', '>', now)),
        eb.exists(eb.selectFrom('tokens').select('tokens.id').whereRef('tokens.user_id', '=', 'users.id').where('tokens.expires_at', '>', now)),
        eb.exists(eb.selectFrom('oidc_records').select('oidc_records.id')
          .where('oidc_records.account_id', '=', eb.cast<string>(eb.ref('users.id'), 'varchar(255)'))
          .where('oidc_records.consumed_at', 'is', null)
          .where((records) => records.or([records('oidc_records.expires_at', 'is', null), records('oidc_records.expires_at', '>', now)]))),
      ]))
      .orderBy('id').limit(limit).execute()
    return rows.map(toUser)
  }

  async list(query: UserQuery): Promise<{ count: number; users: User[] }> {
    const filter = query.filter ?? NO_FILTER
    let base = this.#db.selectFrom('users')
    if (query.username !== undefined) base = base.where('username', '=', query.username)
    if (query.source !== undefined) base = base.where('source', '=', query.source)
    if (query.visibleIds !== undefined) base = base.where(anyOf([oneOf(this.#dialect, 'id', query.visibleIds), sql<boolean>`is_superuser = ${true}`]))
    const { holding } = query
    if (holding !== undefined) {
      base = base.where('id', 'in', this.#db.selectFrom('role_user_assignments').select('user_id')
        .where('role_definition_id', '=', holding.roleDefinitionId).where('object_type', '=', holding.objectType).where('object_id', '=', holding.objectId))
    }
    const { count, rows } = await listPage(this.#dialect, base, userFilterFields, filter, query)
    return { count, users: rows.map(toUser) }
  }

  async update(id: number, changes: UserChanges, now = Date.now()): Promise<User | undefined> {
    const values: Partial<Record<keyof UsersTable, unknown>> = { modified_at: now }
    if (changes.username !== undefined) values.username = changes.username
    if (changes.email !== undefined) values.email = changes.email
    if (changes.firstName !== undefined) values.first_name = changes.firstName
    if (changes.lastName !== undefined) values.last_name = changes.lastName
    if (changes.passwordHash !== undefined) values.password_hash = changes.passwordHash
    if (changes.isSuperuser !== undefined) values.is_superuser = changes.isSuperuser
    if (changes.isActive !== undefined) values.is_active = changes.isActive
    if (changes.source !== undefined) values.source = changes.source
    if (changes.external !== undefined) values.external = changes.external
    if (changes.isSystemAuditor !== undefined) values.is_system_auditor = changes.isSystemAuditor
    if (changes.groups !== undefined) values.group_names = JSON.stringify(changes.groups)
    if (changes.importedPasswordDigest !== undefined) values.imported_password_digest = changes.importedPasswordDigest
    if (changes.importedActive !== undefined) values.imported_active = changes.importedActive
    if (changes.importedSuperuser !== undefined) values.imported_superuser = changes.importedSuperuser
    if (changes.importedAuditor !== undefined) values.imported_auditor = changes.importedAuditor
    if (changes.notBefore !== undefined) values.not_before = this.#notBefore('not_before', changes.notBefore)
    if (changes.tokensNotBefore !== undefined) values.tokens_not_before = this.#notBefore('tokens_not_before', changes.tokensNotBefore)
    const row = await this.#db.updateTable('users').set(values as never).where('id', '=', id).returningAll().executeTakeFirst()
    return row && toUser(row)
  }

  /**
   * Moves every account's `tokensNotBefore` to the database's time (revoking every personal token); the accounts are
   * otherwise unchanged, their modification time too.
   */
  async moveEveryTokensNotBefore(): Promise<void> {
    await this.#db.updateTable('users').set({ tokens_not_before: this.#notBefore('tokens_not_before', DATABASE_NOW) } as never).execute()
  }

  #notBefore(column: 'not_before' | 'tokens_not_before', at: number | typeof DATABASE_NOW): unknown {
    if (at !== DATABASE_NOW) return at
    const later = this.#dialect === 'postgres' ? 'greatest' : 'max'
    return sql<number>`${sql.raw(later)}(${sql.ref(column)}, ${databaseNow(this.#dialect)})`
  }

  /**
   * The account as it is with its login recorded: undefined, and nothing recorded, if it is gone or its password hash
   * is no longer `passwordHash` (the one the login verified).
   */
  async recordLogin(id: number, passwordHash: string | null, at = Date.now()): Promise<User | undefined> {
    const shape = passwordHash === null ? 'recordLogin:no-hash' : 'recordLogin'
    const { rows: [row] } = await this.#db.executeQuery(this.#statements.compiled(shape, passwordHash === null ? [at, id] : [at, id, passwordHash],
      () => this.#db.updateTable('users').set({ last_login: at }).where('id', '=', id).where(hashIs(passwordHash)).returningAll()))
    return row && toUser(row)
  }

  /**
   * The account with its password hash `from` replaced by `to`, a hash of the same password (made anew with other
   * parameters): nothing else changes, its modification time neither. Undefined, and nothing written, if it is gone or
   * its hash is no longer `from`.
   */
  async replacePasswordHash(id: number, from: string, to: string): Promise<User | undefined> {
    const row = await this.#db.updateTable('users').set({ password_hash: to }).where('id', '=', id).where(hashIs(from))
      .returningAll().executeTakeFirst()
    return row && toUser(row)
  }

  /** Whether the account still has the password hash `passwordHash` (a login verified it a moment ago). */
  async hasPasswordHash(id: number, passwordHash: string | null): Promise<boolean> {
    return await this.#db.selectFrom('users').select('id').where('id', '=', id).where(hashIs(passwordHash)).executeTakeFirst() !== undefined
  }

  /**
   * What `users import` last wrote to the account: `passwordDigest`, the SHA-256 (hex) of the password hash it stored
   * (the account still has that password exactly when its hash's digest is this one); `active`, `superuser` and
   * `auditor`, the file's word at the last import on whether the account is active, a superuser and a Platform Auditor,
   * whatever the import did with it (src/directory/accounts.ts importedFlag). Null: no import wrote it, or the account
   * is gone.
   */
  async importRecord(id: number): Promise<{ passwordDigest: string | null; active: boolean | null; superuser: boolean | null; auditor: boolean | null }> {
    const row = await this.#db.selectFrom('users').select(['imported_password_digest', 'imported_active', 'imported_superuser', 'imported_auditor'])
      .where('id', '=', id).executeTakeFirst()
    const flag = (value: boolean | number | null | undefined) => value === null || value === undefined ? null : Boolean(value)
    return { passwordDigest: row?.imported_password_digest ?? null, active: flag(row?.imported_active), superuser: flag(row?.imported_superuser), auditor: flag(row?.imported_auditor) }
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.#db.deleteFrom('users').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }
}

function hashIs(passwordHash: string | null) {
  return (eb: ExpressionBuilder<Tables, 'users'>) => passwordHash === null ? eb('password_hash', 'is', null) : eb('password_hash', '=', passwordHash)
}

function toUser(row: Selectable<UsersTable>): User {
  return {
    id: Number(row.id),
    username: row.username,
    email: row.email,
    firstName: row.first_name,
    lastName: row.last_name,
    passwordHash: row.password_hash,
    isSuperuser: Boolean(row.is_superuser),
    isActive: Boolean(row.is_active),
    source: row.source as UserSource,
    external: Boolean(row.external),
    isSystemAuditor: Boolean(row.is_system_auditor),
    groups: JSON.parse(row.group_names) as string[],
    created: Number(row.created_at),
    modified: Number(row.modified_at),
    lastLogin: row.last_login === null ? null : Number(row.last_login),
    notBefore: Number(row.not_before),
    tokensNotBefore: Number(row.tokens_not_before),
  }
}

/**
 * Whether a credential issued at `issuedAt` (epoch ms) predates the account's not-before for its kind (`tokens`: a
 * personal token), and so is refused: such as a session or OpenID Connect token written while the account was being
 * disabled, which the disable could not end. One comparison with the account as held in memory, which every change
 * to it evicts everywhere (USER_TOPIC).
 */
export function issuedBefore(user: User, issuedAt: number, kind: 'sessions' | 'tokens' = 'sessions'): boolean {
  return issuedAt < (kind === 'tokens' ? user.tokensNotBefore : user.notBefore)
}

/**
 * A JWT's `iat` (whole seconds) as the time `issuedBefore` takes: the last millisecond of its second. Tokens are then
 * compared in whole seconds, as Keycloak compares a token's `iat` with a user's `notBefore`: one of the same second
 * as the not-before is not refused.
 */
export function lastMillisecondOf(iat: number): number {
  return iat * 1000 + 999
}
