import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Where a record's id is a secret its holder presents, the store keeps only the SHA-256 of it, as it keeps the gateway's
 * sessions and personal tokens: whoever reads the database (a backup, a replica) cannot take over a realm browser
 * session (its cookie's value), redeem a code, poll a device code or finish another's login (an interaction's cookie).
 * The ids of tokens and grants are not secrets: a client presents a JWT that only the realm's key signs, never its
 * `jti` alone (routes.ts), and the other models' ids are looked up from values that no one holds as a credential.
 */
export const SECRET_ID_MODELS: ReadonlySet<string> = new Set(['Session', 'AuthorizationCode', 'DeviceCode', 'Interaction'])

/**
 * A record found by another key than its id (a session by its `uid`, a device code by its user code) has no id to
 * give oidc-provider, which saves and destroys it by one: it gets its key sealed with this process's own secret, which
 * `recordKey` takes back as that key. A key read from the database, without the seal, is hashed as any id.
 */
const SEAL_SECRET = randomBytes(32)
const SEPARATOR = '.'

function seal(key: string): string {
  return createHmac('sha256', SEAL_SECRET).update(key).digest('base64url')
}

/** The key a record whose id is a secret is stored under: the SHA-256 of the id, or the key an id sealed (`sealedKey`). */
export function recordKey(id: string): string {
  const at = id.indexOf(SEPARATOR)
  if (at > 0) {
    const key = id.slice(0, at)
    const given = Buffer.from(id.slice(at + 1))
    const expected = Buffer.from(seal(key))
    if (given.length === expected.length && timingSafeEqual(given, expected)) return key
  }
  return hash('sha256', id, 'base64url')
}

/** An id for a record known only by its key, that `recordKey` takes back as that key in this process only. */
export function sealedKey(key: string): string {
  return `${key}${SEPARATOR}${seal(key)}`
}
