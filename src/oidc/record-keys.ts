import { createHmac, hash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

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

/**
 * A device code's user code is the other secret a device login is found by (the device page looks it up), and the
 * store keeps it as its key only, out of the record's payload: whoever reads the database cannot type a pending code
 * in. Eight letters of twenty hold about 34 bits, which a plain SHA-256 would give back to a search of them all in
 * seconds; PBKDF2's rounds make that search take a graphics card hours, past a code's default lifespan (ten
 * minutes), for a few milliseconds of each lookup. The salt is fixed, as a code must be found by it; it keeps tables
 * made for other uses from applying.
 * Migration 041_oidc_user_code_keys keeps its own copy of these numbers: changing them needs a migration of its own.
 */
const USER_CODE_KEY_SALT = 'gatehouse device user code'
const USER_CODE_KEY_ROUNDS = 10_000
const derive = promisify(pbkdf2)

/** The key a device code is stored under for its user code, as typed (with its dash, in any case) or as kept. */
export async function userCodeKey(userCode: string): Promise<string> {
  return (await derive(normalisedUserCode(userCode), USER_CODE_KEY_SALT, USER_CODE_KEY_ROUNDS, 32, 'sha256')).toString('base64url')
}

/**
 * A user code as oidc-provider keeps and looks it up (lib/helpers/user_codes.js `normalize`): ASCII letters upper case,
 * and only letters, digits and underscores; so the code a device shows and the one a person types find the same key.
 */
function normalisedUserCode(typed: string): string {
  return typed.replace(/[^A-Za-z0-9_]/g, '').replace(/[a-z]/g, (letter) => letter.toUpperCase())
}
