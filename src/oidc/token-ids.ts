/**
 * The ids of the records written most, the access, client credentials and refresh tokens (two for every refresh),
 * begin with the time they were made. Their records are keyed by (model, id): with ids wholly random, each record
 * went to a random place of that key's B-tree, a page of its own to write (on SQLite a WAL frame, on PostgreSQL a
 * WAL record, with the whole page after each checkpoint); begun with the time, the records of a moment land side by
 * side at the end of it, as the table's own rows and the expiry index's do (docs/performance.md, "Token grants").
 *
 * The time only orders: oidc-provider's random id follows it whole, with every bit it had, so an id is exactly as
 * hard to guess as before, and says only when it was made, which the token's `iat` says already. A refresh token's id
 * ends with the chain of refreshes it is of and its grant's id (`refreshTokenOrigin`), which only the client holding
 * the token reads in it. Ids stay opaque strings of the URL-safe alphabet and the dot: a process of the version
 * before, on the same database, reads and writes them as its own.
 */
import { randomBytes } from 'node:crypto'
import type Provider from 'oidc-provider'
import { providerNow } from './provider-clock.ts'
import { providerRequest } from './provider-errors.ts'

/** Lower-case hex of epoch ms, fixed width: sorts the same bytewise and in any collation (12 digits last past the year 10,000). */
export const TIME_DIGITS = 12

/** The prefix of an id made at `now` (epoch ms): later times sort after earlier ones. */
export function timePrefix(now: number): string {
  return Math.floor(now).toString(16).padStart(TIME_DIGITS, '0')
}

/**
 * What follows a refresh token's own id, before the chain it is of and before its grant's id: neither oidc-provider's
 * ids (its URL-safe alphabet), the time nor a number has it.
 */
const ORIGIN_SEPARATOR = '.'

/**
 * Has the token models' ids begin with the time oidc-provider's clock reads (the database's, which every gateway process
 * on it shares); the rest of each is the id oidc-provider makes. A refresh token's id ends with where it comes from,
 * each after a dot: the chain of refreshes it is of (`refreshTokenChain`) and its grant's id. A refresh token whose
 * record the grant's `refresh_tokens_per_grant_limit` ended so still says, once its JWT verified, which grant and chain
 * it was of and when it was issued, and brought back it is known for one used before (provider.ts
 * `staleRefreshTokensEndTheirGrant`) without a record kept for each.
 */
export function timeOrderedTokenIds(provider: Provider): void {
  for (const model of [provider.AccessToken, provider.ClientCredentials, provider.RefreshToken]) {
    const prototype = (model as unknown as { prototype: { generateTokenId(this: RefreshTokenMembers): string } }).prototype
    // oidc-provider's own also picks the token's format (an access token's, from its resource server): it runs as before.
    const generate = prototype.generateTokenId
    const refreshToken = model === provider.RefreshToken
    prototype.generateTokenId = function (this: RefreshTokenMembers) {
      const id = timePrefix(providerNow()) + generate.call(this)
      const chain = refreshToken ? refreshTokenChain(this) : undefined
      return chain === undefined ? id : `${id}${ORIGIN_SEPARATOR}${chain}${ORIGIN_SEPARATOR}${this.grantId}`
    }
  }
}

/** The members of a refresh token that say which chain of refreshes it is of. */
interface RefreshTokenMembers {
  grantId?: unknown
  iiat?: unknown
}

/**
 * The chain of refreshes a refresh token being issued is of: the second the chain began (oidc-provider's `iiat`, which
 * every rotation copies) and a random tag of the chain's own, which a rotation takes from the token it replaces (the
 * request's `RotatedRefreshToken`, on oidc-provider's refresh grant and on refresh-token.ts's alike) and any other new
 * token draws afresh. The `iiat` alone names no chain: two codes of one grant redeemed within one second (two tabs
 * restored at once) begin two chains with the same one. Undefined for a token of no grant.
 */
function refreshTokenChain(token: RefreshTokenMembers): string | undefined {
  const { grantId, iiat } = token
  if (typeof grantId !== 'string' || !Number.isSafeInteger(iiat)) return undefined
  const rotated = providerRequest()?.oidc?.entities?.RotatedRefreshToken as { jti?: unknown; grantId?: unknown; iiat?: unknown } | undefined
  const from = rotated?.grantId === grantId && rotated.iiat === iiat && typeof rotated.jti === 'string' ? refreshTokenOrigin(rotated.jti) : undefined
  return from?.grantId === grantId && from.chain.startsWith(`${iiat}${ORIGIN_SEPARATOR}`) ? from.chain : `${iiat}${ORIGIN_SEPARATOR}${randomBytes(CHAIN_TAG_BYTES).toString('hex')}`
}

/** A chain's tag: 48 random bits, against the few chains of one grant begun in one second. Hex, which a LIKE pattern takes literally. */
const CHAIN_TAG_BYTES = 6

/**
 * Where a refresh token's id says it comes from: its grant, the chain of refreshes it is of (`iiat` and tag, as
 * `refreshTokenChain` gives it), and the time prefix it was issued at; undefined for an id that says none (one issued
 * before ids said it, whose chain they named by the `iiat` alone, or by a version without the time prefix).
 */
export function refreshTokenOrigin(id: string): { grantId: string; chain: string; issued: string } | undefined {
  const [own, iiat, tag, grantId, ...rest] = id.split(ORIGIN_SEPARATOR)
  if (own === undefined || own.length <= TIME_DIGITS || !/^[0-9a-f]+$/.test(own.slice(0, TIME_DIGITS))) return undefined
  if (iiat === undefined || !/^[0-9]{1,15}$/.test(iiat) || tag === undefined || !CHAIN_TAG.test(tag) || !grantId || rest.length) return undefined
  return { grantId, chain: `${iiat}${ORIGIN_SEPARATOR}${tag}`, issued: own.slice(0, TIME_DIGITS) }
}

const CHAIN_TAG = new RegExp(`^[0-9a-f]{${CHAIN_TAG_BYTES * 2}}$`)
