import { hash, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'

/**
 * The shape of a personal token: `gatehouse_pat_` + 43 base62 characters (256 random bits) + 6 base62
 * characters of CRC32 over everything before them. The prefix lets secret scanners recognise a leaked
 * token, the checksum lets the gateway refuse a mistyped or truncated one before any lookup (the scheme
 * GitHub describes for its own tokens). The checksum is no secret and proves nothing about validity.
 */
export const TOKEN_PREFIX = 'gatehouse_pat_'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const SECRET_BYTES = 32
/** 62^43 > 2^256, so every 32-byte value fits in 43 characters. */
const SECRET_LENGTH = 43
/** 62^6 > 2^32. */
const CHECKSUM_LENGTH = 6
const TOKEN_LENGTH = TOKEN_PREFIX.length + SECRET_LENGTH + CHECKSUM_LENGTH
const TOKEN_SHAPE = new RegExp(`^${TOKEN_PREFIX}[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}$`)

export type TokenShapeProblem = 'malformed' | 'checksum'

export function generateToken(): string {
  const body = TOKEN_PREFIX + toBase62(BigInt('0x' + randomBytes(SECRET_BYTES).toString('hex')), SECRET_LENGTH)
  return body + checksumOf(body)
}

/**
 * Says what is wrong with a value that claims to be a token (it starts with the prefix), or undefined when it
 * is well formed. Does not say whether such a token exists.
 */
export function tokenShapeProblem(value: string): TokenShapeProblem | undefined {
  if (value.length !== TOKEN_LENGTH || !TOKEN_SHAPE.test(value)) return 'malformed'
  const body = value.slice(0, -CHECKSUM_LENGTH)
  return checksumOf(body) === value.slice(-CHECKSUM_LENGTH) ? undefined : 'checksum'
}

/**
 * What the store keeps and looks tokens up by. A token carries 256 random bits, so a fast hash is as safe as a
 * slow one here (no dictionary to try), and an equality lookup on it reveals nothing usable about the token.
 */
export function hashToken(value: string): string {
  return hash('sha256', value, 'hex')
}

/** Checked on every request that carries a token: a CRC32 fits a double exactly, so no BigInt is needed for it. */
function checksumOf(body: string): string {
  let text = ''
  for (let rest = crc32(body); rest > 0; rest = Math.floor(rest / 62)) text = ALPHABET[rest % 62] + text
  return text.padStart(CHECKSUM_LENGTH, '0')
}

function toBase62(value: bigint, width: number): string {
  let text = ''
  for (let rest = value; rest > 0n; rest /= 62n) text = ALPHABET[Number(rest % 62n)] + text
  return text.padStart(width, '0')
}
