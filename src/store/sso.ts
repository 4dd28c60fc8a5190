import type { Kysely, Selectable } from 'kysely'
import type { SsoIdentitiesTable, SsoLoginsTable, Tables } from './schema.ts'

/** The upstream identity an account was made for: issuer and subject, as the provider's ID token names them. */
export interface SsoIdentity {
  id: number
  issuer: string
  subject: string
  userId: number
  /** The configured provider the person last signed in through. */
  provider: string
  created: number
  lastLogin: number
}

/** A sign-in under way. It holds no secret: the browser's cookie is known only by its SHA-256 (`keyHash`). */
export interface PendingSsoLogin {
  keyHash: string
  provider: string
  /** Where to go after the sign-in: a path on this site, or '' for the default. */
  next: string
  created: number
  expiresAt: number
  /** Whether the provider was asked for a fresh login (`prompt=login`): a realm login that asks for one sent the browser. */
  promptLogin: boolean
}

/** What taking a back-channel logout token found: a token not seen before, the same token again, or another token with its `jti`. */
export type LogoutTokenTaking = 'new' | 'resent' | 'jti_reused'

/** Single sign-on records: the links from upstream identities to accounts, and sign-ins under way. */
export class SsoRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  async findIdentity(issuer: string, subject: string): Promise<SsoIdentity | undefined> {
    const row = await this.#db.selectFrom('sso_identities').selectAll()
      .where('issuer', '=', issuer).where('subject', '=', subject).executeTakeFirst()
    return row && toIdentity(row)
  }

  /** Whether any upstream identity is linked to the account. */
  async isLinked(userId: number): Promise<boolean> {
    return (await this.#db.selectFrom('sso_identities').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst()) !== undefined
  }

  /** Links an upstream identity to an account; a second link of the same identity is a unique violation. */
  async link(input: { issuer: string; subject: string; userId: number; provider: string }, now = Date.now()): Promise<SsoIdentity> {
    const row = await this.#db.insertInto('sso_identities').values({
      issuer: input.issuer,
      subject: input.subject,
      user_id: input.userId,
      provider: input.provider,
      created_at: now,
      last_login_at: now,
    }).returningAll().executeTakeFirstOrThrow()
    return toIdentity(row)
  }

  async recordLogin(id: number, provider: string, now = Date.now()): Promise<void> {
    await this.#db.updateTable('sso_identities').set({ provider, last_login_at: now }).where('id', '=', id).execute()
  }

  async createLogin(login: PendingSsoLogin): Promise<void> {
    await this.#db.insertInto('sso_logins').values({
      key_hash: login.keyHash,
      provider: login.provider,
      next_url: login.next,
      created_at: login.created,
      expires_at: login.expiresAt,
      prompt_login: login.promptLogin,
    }).execute()
  }

  /**
   * Removes a sign-in under way and returns it, so it can be finished once: of two callbacks racing with the
   * same cookie (a replay), only one gets it. Expired ones are returned too; the caller says so.
   */
  async takeLogin(keyHash: string): Promise<PendingSsoLogin | undefined> {
    const row = await this.#db.deleteFrom('sso_logins').where('key_hash', '=', keyHash).returningAll().executeTakeFirst()
    return row && toLogin(row)
  }

  /** The sign-in under way with this key, left in place: where a refused callback's browser was going. */
  async findLogin(keyHash: string): Promise<PendingSsoLogin | undefined> {
    const row = await this.#db.selectFrom('sso_logins').selectAll().where('key_hash', '=', keyHash).executeTakeFirst()
    return row && toLogin(row)
  }

  /**
   * Records a back-channel logout token as taken, by issuer and `jti` (`keyHash`), until `expiresAt`. `new` the first
   * time; `resent` when the very same token (`tokenHash`) was taken before, here or on another process sharing the
   * database (the provider sends it again when our answer was lost); `jti_reused` when another token took this `jti`.
   * Within the transaction that ends its sessions, so a failed end leaves the token to be sent again.
   */
  async takeLogoutToken(keyHash: string, tokenHash: string, expiresAt: number): Promise<LogoutTokenTaking> {
    const inserted = await this.#db.insertInto('sso_logout_tokens').values({ key_hash: keyHash, token_hash: tokenHash, expires_at: expiresAt })
      .onConflict((oc) => oc.column('key_hash').doNothing()).returning('key_hash').executeTakeFirst()
    if (inserted) return 'new'
    const taken = await this.#db.selectFrom('sso_logout_tokens').select('token_hash').where('key_hash', '=', keyHash).executeTakeFirst()
    return taken?.token_hash === tokenHash ? 'resent' : 'jti_reused'
  }

  /** Forgets logout tokens that could no longer be taken at `now`; returns how many. */
  async deleteExpiredLogoutTokens(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('sso_logout_tokens').where('expires_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }

  /** Removes sign-ins that expired at or before `now`; returns how many. */
  async deleteExpiredLogins(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('sso_logins').where('expires_at', '<=', now).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

function toIdentity(row: Selectable<SsoIdentitiesTable>): SsoIdentity {
  return {
    id: Number(row.id),
    issuer: row.issuer,
    subject: row.subject,
    userId: Number(row.user_id),
    provider: row.provider,
    created: Number(row.created_at),
    lastLogin: Number(row.last_login_at),
  }
}

function toLogin(row: Selectable<SsoLoginsTable>): PendingSsoLogin {
  return {
    keyHash: row.key_hash,
    provider: row.provider,
    next: row.next_url,
    created: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    promptLogin: Boolean(row.prompt_login),
  }
}
