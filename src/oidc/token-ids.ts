/**
 * The ids of the records written most, the access, client credentials and refresh tokens (two for every refresh),
 * begin with the time they were made. Their records are keyed by (model, id): with ids wholly random, each record
 * went to a random place of that key's B-tree, a page of its own to write (on SQLite a WAL frame, on PostgreSQL a
 * WAL record, with the whole page after each checkpoint); begun with the time, the records of a moment land side by
 * side at the end of it, as the table's own rows and the expiry index's do (docs/performance.md, "Token grants").
 *
 * The time only orders: oidc-provider's random id follows it whole, with every bit it had, so an id is exactly as
 * hard to guess as before, and says only when it was made, which the token's `iat` says already. Ids stay opaque
 * strings of the URL-safe alphabet: a process of the version before, on the same database, reads and writes them
 * as its own.
 */
import type Provider from 'oidc-provider'
import { providerNow } from './provider-clock.ts'

/** Lower-case hex of epoch ms, fixed width: sorts the same bytewise and in any collation (12 digits last past the year 10,000). */
const TIME_DIGITS = 12

/** The prefix of an id made at `now` (epoch ms): later times sort after earlier ones. */
export function timePrefix(now: number): string {
  return Math.floor(now).toString(16).padStart(TIME_DIGITS, '0')
}

/**
 * Has the token models' ids begin with the time oidc-provider's clock reads (the database's, which every gateway process
 * on it shares); the rest of each is the id oidc-provider makes.
 */
export function timeOrderedTokenIds(provider: Provider): void {
  for (const model of [provider.AccessToken, provider.ClientCredentials, provider.RefreshToken]) {
    const prototype = (model as unknown as { prototype: { generateTokenId(this: unknown): string } }).prototype
    // oidc-provider's own also picks the token's format (an access token's, from its resource server): it runs as before.
    const generate = prototype.generateTokenId
    prototype.generateTokenId = function (this: unknown) {
      return timePrefix(providerNow()) + generate.call(this)
    }
  }
}
