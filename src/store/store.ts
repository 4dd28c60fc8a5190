import { Database, type DatabaseLocation } from './database.ts'
import { EventLog } from './events.ts'
import { LoginFailureRepository } from './login-failures.ts'
import { SessionRepository } from './sessions.ts'
import { OidcRecordRepository } from './oidc.ts'
import { SettingsRepository } from './settings.ts'
import { SigningKeyRepository } from './signing-keys.ts'
import { SsoRepository } from './sso.ts'
import { TokenRepository } from './tokens.ts'
import { UserRepository } from './users.ts'

/**
 * The storage interface the rest of Gatehouse uses: one repository per kind of record, the same code on
 * SQLite and PostgreSQL (Kysely builds each dialect's SQL). test/store/ runs one conformance suite on both.
 */
export interface Store {
  readonly database: Database
  readonly users: UserRepository
  readonly settings: SettingsRepository
  readonly events: EventLog
  readonly signingKeys: SigningKeyRepository
  readonly sessions: SessionRepository
  readonly tokens: TokenRepository
  readonly oidc: OidcRecordRepository
  readonly sso: SsoRepository
  readonly loginFailures: LoginFailureRepository
  close(): Promise<void>
}

export async function openStore(location: DatabaseLocation, options: { migrate?: boolean } = {}): Promise<Store> {
  const database = Database.open(location)
  try {
    if (options.migrate !== false) await database.migrate()
  } catch (error) {
    await database.close()
    throw error
  }
  return {
    database,
    users: new UserRepository(database.db),
    settings: new SettingsRepository(database.db),
    events: new EventLog(database.db),
    signingKeys: new SigningKeyRepository(database.db),
    sessions: new SessionRepository(database.db),
    tokens: new TokenRepository(database.db),
    oidc: new OidcRecordRepository(database.db),
    sso: new SsoRepository(database.db),
    loginFailures: new LoginFailureRepository(database.db),
    close: () => database.close(),
  }
}
