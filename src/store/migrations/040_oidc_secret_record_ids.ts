import { hash } from 'node:crypto'
import type { GatehouseMigration } from './helpers.ts'

/** The models whose record id is a secret its holder presents (src/oidc/record-keys.ts), as this migration found them. */
const SECRET_ID_MODELS = ['Session', 'AuthorizationCode', 'DeviceCode', 'Interaction']
const BATCH = 200

const sha256 = (value: string) => hash('sha256', value, 'base64url')

/**
 * Realm browser sessions, authorization codes, device codes and logins under way are kept under the SHA-256 of their
 * id, which is the secret their holder presents (a cookie's value, a code), and without it in their payload; a login
 * under way names its browser session and its device code by their hashes too, and its own id in the URL it resumes at. Existing records are rewritten so, and go on working: nobody
 * is signed out by the upgrade.
 */
export const oidcSecretRecordIds: GatehouseMigration = {
  async up(db) {
    const keys: { model: string; id: string }[] = await db.selectFrom('oidc_records').select(['model', 'id']).where('model', 'in', SECRET_ID_MODELS).execute()
    for (let start = 0; start < keys.length; start += BATCH) {
      for (const model of SECRET_ID_MODELS) {
        const ids = keys.slice(start, start + BATCH).filter((key) => key.model === model).map((key) => key.id)
        if (!ids.length) continue
        const rows: { id: string; payload: string }[] = await db.selectFrom('oidc_records').select(['id', 'payload']).where('model', '=', model).where('id', 'in', ids).execute()
        for (const row of rows) {
          const { jti: _id, ...payload } = JSON.parse(row.payload) as Record<string, unknown>
          const key = sha256(row.id)
          if (model === 'Interaction') {
            const session = payload.session as { cookie?: unknown } | undefined
            if (typeof session?.cookie === 'string') payload.session = { ...session, cookie: sha256(session.cookie) }
            if (typeof payload.deviceCode === 'string') payload.deviceCode = sha256(payload.deviceCode)
            if (typeof payload.returnTo === 'string' && payload.returnTo.endsWith(`/${row.id}`)) payload.returnTo = payload.returnTo.slice(0, -row.id.length) + key
          }
          await db.updateTable('oidc_records').set({ id: key, payload: JSON.stringify(payload) }).where('model', '=', model).where('id', '=', row.id).execute()
        }
      }
    }
  },
}
