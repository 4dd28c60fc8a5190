import type { Kysely, Selectable } from 'kysely'
import { type FilterFields, type ListFilter, listPage, NO_FILTER } from './list-filter.ts'
import type { OAuth2ApplicationsTable, Tables } from './schema.ts'
import type { Changed } from './access.ts'
import type { DialectName } from './migrations/helpers.ts'

export type ClientType = 'confidential' | 'public'
export type AuthorizationGrantType = 'password' | 'authorization-code'

export interface Application {
  id: number
  realm: string
  clientId: string
  /** SHA-256 (hex) of a confidential application's secret; null for a public one. */
  clientSecretHash: string | null
  /** The secret it had before its last rotation, while it still authenticates (until `until`, epoch ms). */
  previousSecret: { hash: string; until: number } | null
  name: string
  description: string
  clientType: ClientType
  authorizationGrantType: AuthorizationGrantType
  redirectUris: string[]
  /** Whether its authorization requests must carry PKCE (S256), django-ansible-base's `pkce_required`. */
  pkceRequired: boolean
  userId: number | null
  /** The organization it belongs to, or null. */
  organizationId: number | null
  created: number
  modified: number
}

export type NewApplication = Omit<Application, 'id' | 'created' | 'modified' | 'previousSecret'>
/** With `clientType`, its `clientSecretHash`: a confidential application's new secret, a public one's none. */
export type ApplicationChanges = Partial<Pick<Application, 'name' | 'description' | 'redirectUris' | 'pkceRequired' | 'authorizationGrantType' | 'organizationId' | 'userId'>>
  & ({ clientType?: undefined } | { clientType: 'confidential'; clientSecretHash: string } | { clientType: 'public'; clientSecretHash: null })

export const applicationFilterFields: FilterFields = Object.freeze({
  id: { column: 'id', type: 'integer' },
  name: { column: 'name', type: 'text', searched: true },
  description: { column: 'description', type: 'text', searched: true },
  client_id: { column: 'client_id', type: 'text' },
  client_type: { column: 'client_type', type: 'text' },
  authorization_grant_type: { column: 'authorization_grant_type', type: 'text' },
  pkce_required: { column: 'pkce_required', type: 'boolean' },
  user: { column: 'user_id', type: 'integer' },
  organization: { column: 'organization_id', type: 'integer' },
  created: { column: 'created_at', type: 'time' },
  modified: { column: 'modified_at', type: 'time' },
})

/** OAuth2 applications: the clients of a realm that are managed at run time rather than configured. */
export class ApplicationRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async create(input: NewApplication, now = Date.now()): Promise<Application> {
    const row = await this.#db.insertInto('oauth2_applications').values({
      realm: input.realm,
      client_id: input.clientId,
      client_secret_hash: input.clientSecretHash,
      name: input.name,
      description: input.description,
      client_type: input.clientType,
      authorization_grant_type: input.authorizationGrantType,
      redirect_uris: input.redirectUris.join(' '),
      pkce_required: input.pkceRequired,
      user_id: input.userId,
      organization_id: input.organizationId,
      created_at: now,
      modified_at: now,
    }).returningAll().executeTakeFirstOrThrow()
    return toApplication(row)
  }

  async findById(id: number): Promise<Application | undefined> {
    const row = await this.#db.selectFrom('oauth2_applications').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toApplication(row)
  }

  /** The application of that name in that organization (the platform's unique pair); none when the organization is null. */
  async findByName(name: string, organizationId: number): Promise<Application | undefined> {
    const row = await this.#db.selectFrom('oauth2_applications').selectAll().where('name', '=', name).where('organization_id', '=', organizationId).executeTakeFirst()
    return row && toApplication(row)
  }

  async findByClientId(realm: string, clientId: string): Promise<Application | undefined> {
    const row = await this.#db.selectFrom('oauth2_applications').selectAll().where('realm', '=', realm).where('client_id', '=', clientId).executeTakeFirst()
    return row && toApplication(row)
  }

  /** An organization's applications, which go with it (its deletion cascades to them). */
  async inOrganization(organizationId: number): Promise<Application[]> {
    const rows = await this.#db.selectFrom('oauth2_applications').selectAll().where('organization_id', '=', organizationId).execute()
    return rows.map(toApplication)
  }

  /** The client ids of the applications a user owns (its `user`), which go with that user. */
  async clientIdsOwnedBy(userId: number): Promise<string[]> {
    const rows = await this.#db.selectFrom('oauth2_applications').select('client_id').where('user_id', '=', userId).execute()
    return rows.map((row) => row.client_id)
  }

  /** Deletes the applications a user owns; answers them as they were. */
  async deleteOwnedBy(userId: number): Promise<Application[]> {
    const rows = await this.#db.deleteFrom('oauth2_applications').where('user_id', '=', userId).returningAll().execute()
    return rows.map(toApplication)
  }

  async list(query: { offset: number; limit: number; filter?: ListFilter | undefined }): Promise<{ count: number; applications: Application[] }> {
    const filter = query.filter ?? NO_FILTER
    const base = this.#db.selectFrom('oauth2_applications')
    const { count, rows } = await listPage(this.#dialect, base, applicationFilterFields, filter, query)
    return { count, applications: rows.map(toApplication) }
  }

  /**
   * The application as it was, read under the update's lock of its row (on PostgreSQL; SQLite's writers are alone),
   * and as it is; undefined when there is none.
   */
  async update(id: number, changes: ApplicationChanges, now = Date.now()): Promise<Changed<Application> | undefined> {
    const read = this.#db.selectFrom('oauth2_applications').selectAll().where('id', '=', id)
    const before = await (this.#dialect === 'postgres' ? read.forUpdate() : read).executeTakeFirst()
    if (!before) return undefined
    const values: Partial<Record<keyof OAuth2ApplicationsTable, unknown>> = { modified_at: now }
    if (changes.name !== undefined) values.name = changes.name
    if (changes.description !== undefined) values.description = changes.description
    if (changes.redirectUris !== undefined) values.redirect_uris = changes.redirectUris.join(' ')
    if (changes.pkceRequired !== undefined) values.pkce_required = changes.pkceRequired
    if (changes.authorizationGrantType !== undefined) values.authorization_grant_type = changes.authorizationGrantType
    if (changes.organizationId !== undefined) values.organization_id = changes.organizationId
    if (changes.userId !== undefined) values.user_id = changes.userId
    if (changes.clientType !== undefined) {
      // A secret kept from a rotation's grace ends with the type's change: it was a secret of the application before.
      Object.assign(values, { client_type: changes.clientType, client_secret_hash: changes.clientSecretHash, previous_client_secret_hash: null, previous_secret_expires_at: null })
    }
    const row = await this.#db.updateTable('oauth2_applications').set(values as never).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return { before: toApplication(before), after: toApplication(row) }
  }

  /**
   * Gives a confidential application a new secret. With `previousUntil` (epoch ms) the secret it had goes on
   * authenticating until then, and one kept from an earlier rotation ends; without, only the new one does. One
   * statement, so two rotations at once each keep the secret the row had as they wrote.
   */
  async rotateSecret(id: number, secretHash: string, previousUntil: number | null, now = Date.now()): Promise<Application | undefined> {
    const row = await this.#db.updateTable('oauth2_applications').set((eb) => ({
      previous_client_secret_hash: previousUntil === null ? null : eb.ref('client_secret_hash'),
      previous_secret_expires_at: previousUntil,
      client_secret_hash: secretHash,
      modified_at: now,
    })).where('id', '=', id).where('client_type', '=', 'confidential').returningAll().executeTakeFirst()
    return row && toApplication(row)
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.#db.deleteFrom('oauth2_applications').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }
}

function toApplication(row: Selectable<OAuth2ApplicationsTable>): Application {
  return {
    id: Number(row.id),
    realm: row.realm,
    clientId: row.client_id,
    clientSecretHash: row.client_secret_hash,
    previousSecret: row.previous_client_secret_hash === null || row.previous_secret_expires_at === null
      ? null
      : { hash: row.previous_client_secret_hash, until: Number(row.previous_secret_expires_at) },
    name: row.name,
    description: row.description,
    clientType: row.client_type as ClientType,
    authorizationGrantType: row.authorization_grant_type as AuthorizationGrantType,
    redirectUris: row.redirect_uris ? row.redirect_uris.split(' ') : [],
    pkceRequired: Boolean(row.pkce_required),
    userId: row.user_id === null ? null : Number(row.user_id),
    organizationId: row.organization_id === null ? null : Number(row.organization_id),
    created: Number(row.created_at),
    modified: Number(row.modified_at),
  }
}
