import type { Kysely } from 'kysely'
import { AccessRepository } from './access.ts'
import { AuditRepository } from './audit.ts'
import { Database, type DatabaseLocation } from './database.ts'
import { unusableDatabase } from './errors.ts'
import { EventLog } from './events.ts'
import { LeaseRepository } from './leases.ts'
import { LdapEntryRepository } from './ldap-entries.ts'
import { ApplicationRepository } from './applications.ts'
import { LoginFailureRepository } from './login-failures.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables } from './schema.ts'
import { SessionRepository } from './sessions.ts'
import { OidcRecordRepository } from './oidc.ts'
import { SettingsRepository } from './settings.ts'
import { SigningKeyRepository } from './signing-keys.ts'
import { SsoRepository } from './sso.ts'
import { TokenRepository } from './tokens.ts'
import { UserRepository } from './users.ts'

/** One repository per kind of record, on the database or on one transaction. */
export interface Repositories {
  readonly users: UserRepository
  readonly settings: SettingsRepository
  readonly events: EventLog
  readonly signingKeys: SigningKeyRepository
  readonly sessions: SessionRepository
  readonly tokens: TokenRepository
  readonly oidc: OidcRecordRepository
  readonly sso: SsoRepository
  readonly ldapEntries: LdapEntryRepository
  readonly loginFailures: LoginFailureRepository
  readonly audit: AuditRepository
  readonly access: AccessRepository
  readonly applications: ApplicationRepository
  readonly leases: LeaseRepository
}

/**
 * The storage interface the rest of Gatehouse uses: one repository per kind of record, the same code on
 * SQLite and PostgreSQL (Kysely builds each dialect's SQL). test/store/ runs one conformance suite on both.
 */
export interface Store extends Repositories {
  readonly database: Database
  /**
   * Runs `work` in one transaction: everything it writes through `tx` is committed together, or nothing is.
   * `work` must use `tx` only: on SQLite the one connection is held until it ends, so anything else waits for it.
   */
  transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export async function openStore(location: DatabaseLocation, options: { migrate?: boolean; existing?: boolean } = {}): Promise<Store> {
  const database = await Database.open(location, { existing: options.existing })
  try {
    if (options.migrate !== false) await database.migrate()
  } catch (error) {
    await database.close()
    throw unusableDatabase(database.description, error)
  }
  const repositories = repositoriesOn(database.db, database.dialect, new OidcRecordRepository(database.db, { dialect: database.dialect, batched: true }))
  return {
    database,
    ...repositories,
    // A transaction may revoke tokens (tx.oidc): the token records queued before it are written first.
    transaction: async (work) => {
      await repositories.oidc.settled()
      let oidc: OidcRecordRepository | undefined
      try {
        const result = await database.db.transaction().execute((trx) => work(repositoriesOn(trx, database.dialect, (oidc = repositories.oidc.inTransaction(trx)))))
        oidc?.transactionCommitted()
        return result
      } finally {
        oidc?.transactionEnded()
      }
    },
    close: async () => {
      await repositories.oidc.settled()
      await database.close()
    },
  }
}

function repositoriesOn(db: Kysely<Tables>, dialect: DialectName, oidc: OidcRecordRepository): Repositories {
  return {
    users: new UserRepository(db, dialect),
    settings: new SettingsRepository(db, dialect),
    events: new EventLog(db, dialect),
    signingKeys: new SigningKeyRepository(db, dialect),
    sessions: new SessionRepository(db, dialect),
    tokens: new TokenRepository(db, dialect),
    oidc,
    sso: new SsoRepository(db),
    ldapEntries: new LdapEntryRepository(db),
    loginFailures: new LoginFailureRepository(db),
    audit: new AuditRepository(db, dialect),
    access: new AccessRepository(db, dialect),
    applications: new ApplicationRepository(db, dialect),
    leases: new LeaseRepository(db, dialect),
  }
}
