/**
 * PBKDF2 hashes imported from the products Gatehouse replaces, stored as those products wrote them (marked with
 * their scheme) until the first sign-in that proves their password replaces them with Gatehouse's own argon2id:
 *
 * - Django's (django.contrib.auth.hashers.PBKDF2PasswordHasher and its SHA-1 sibling), as the automation platform's
 *   gateway stores them: `pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>`; the salt is text, hashed as
 *   its UTF-8 bytes, and the key as long as the digest.
 * - Keycloak's (Pbkdf2PasswordHashProvider), which keeps salt, iterations and algorithm in separate JSON fields of a
 *   credential: stored here as `keycloak$<algorithm>$<iterations>$<base64 salt>$<base64 key>`, the key as long as the
 *   stored one (Keycloak derives as many bits as the stored value holds). Keycloak pads a password shorter than 14
 *   characters with NULs before hashing: a no-op for HMAC, which pads its key with zeros to the digest's block anyway.
 */

export interface Pbkdf2Hash {
  /** node:crypto's name for the HMAC's digest. */
  readonly digest: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512'
  readonly iterations: number
  readonly salt: Buffer
  readonly key: Buffer
}

const DJANGO_DIGESTS: Readonly<Record<string, Pbkdf2Hash['digest']>> = { pbkdf2_sha256: 'sha256', pbkdf2_sha1: 'sha1' }
/** Keycloak's algorithm ids (the credential's `algorithm`); plain `pbkdf2` is HMAC-SHA1. */
export const KEYCLOAK_DIGESTS: Readonly<Record<string, Pbkdf2Hash['digest']>> = {
  'pbkdf2': 'sha1', 'pbkdf2-sha224': 'sha224', 'pbkdf2-sha256': 'sha256', 'pbkdf2-sha384': 'sha384', 'pbkdf2-sha512': 'sha512',
}
const DIGEST_BYTES: Readonly<Record<Pbkdf2Hash['digest'], number>> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 }

/**
 * The most PBKDF2 work Gatehouse runs for one sign-in: iterations times the blocks of the key (a key longer than the
 * digest takes one full run per digest-sized block). Two million: Django's default (1,000,000 iterations in 5.2,
 * 1,200,000 in 6.0) and Keycloak's (27,500 to 600,000) are below; about a third of a second of one core for SHA-256.
 * A verification cannot be stopped once begun (src/directory/hashing-threads.ts), so more would let one stored hash
 * hold a core for as long as it says at each sign-in.
 */
export const PBKDF2_MAX_WORK = 2_000_000
const KEY_BYTES = { min: 16, max: 256 }
const SALT_BYTES_MAX = 1024
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const ITERATIONS = /^[1-9]\d{0,9}$/

/** Whether the stored value is marked with one of the PBKDF2 schemes read here (readable or not). */
export function isPbkdf2Hash(stored: string): boolean {
  const scheme = stored.slice(0, stored.indexOf('$'))
  return Object.hasOwn(DJANGO_DIGESTS, scheme) || scheme === 'keycloak'
}

/** The stored value's parameters; undefined when it is not a PBKDF2 hash of a scheme read here, or malformed. */
export function readPbkdf2Hash(stored: string): Pbkdf2Hash | undefined {
  const fields = stored.split('$')
  if (fields[0] === 'keycloak') {
    const [, algorithm, iterations, salt, key] = fields
    if (fields.length !== 5 || !Object.hasOwn(KEYCLOAK_DIGESTS, algorithm!) || !ITERATIONS.test(iterations!)) return undefined
    if (!salt || !BASE64.test(salt) || !BASE64.test(key!)) return undefined
    return { digest: KEYCLOAK_DIGESTS[algorithm!]!, iterations: Number(iterations), salt: Buffer.from(salt, 'base64'), key: Buffer.from(key!, 'base64') }
  }
  const [scheme, iterations, salt, key] = fields
  // Django's salts are letters and digits (get_random_string); `$` would end the field.
  if (fields.length !== 4 || !Object.hasOwn(DJANGO_DIGESTS, scheme!) || !ITERATIONS.test(iterations!) || !salt || !BASE64.test(key!)) return undefined
  const digest = DJANGO_DIGESTS[scheme!]!
  const decoded = Buffer.from(key!, 'base64')
  // Django derives exactly one digest's length: any other length is not a hash Django made.
  if (decoded.length !== DIGEST_BYTES[digest]) return undefined
  return { digest, iterations: Number(iterations), salt: Buffer.from(salt, 'utf8'), key: decoded }
}

/** Why Gatehouse will not verify this PBKDF2 hash (its form, or its cost above PBKDF2_MAX_WORK); undefined when it will. */
export function pbkdf2Refusal(stored: string): string | undefined {
  const hash = readPbkdf2Hash(stored)
  if (!hash) return 'it is not a PBKDF2 hash Gatehouse can read'
  if (hash.key.length < KEY_BYTES.min || hash.key.length > KEY_BYTES.max) return `its key of ${hash.key.length} bytes is outside ${KEY_BYTES.min} to ${KEY_BYTES.max}`
  if (hash.salt.length > SALT_BYTES_MAX) return `its salt of ${hash.salt.length} bytes is longer than ${SALT_BYTES_MAX}`
  const work = hash.iterations * Math.ceil(hash.key.length / DIGEST_BYTES[hash.digest])
  if (work > PBKDF2_MAX_WORK) {
    return `its cost (${hash.iterations} iterations of ${hash.digest.toUpperCase()}, ${work} in all for its ${hash.key.length}-byte key) is above the most Gatehouse verifies (${PBKDF2_MAX_WORK})`
  }
  return undefined
}
