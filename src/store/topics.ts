/**
 * The event log's topics (src/store/event-bus.ts): each change that must reach every process at once is announced
 * under one of these, with a key naming what changed (conventionally an id, `user:<id>` or `all`).
 */

/** An account changed; the key is its id, or `all` for every account (all personal tokens revoked). */
export const USER_TOPIC = 'user'
/** A login session ended or changed; the key is its key hash, or `user:<id>` for all of a user's. */
export const SESSION_TOPIC = 'session'
/** A personal token ended or narrowed; the key is its id, `user:<id>` or `all`. */
export const TOKEN_TOPIC = 'token'
/** The run-time settings changed. */
export const SETTINGS_TOPIC = 'settings'
/** A realm's signing keys changed; the key is the realm's name. */
export const KEYS_TOPIC = 'oidc-keys'
/** The keys that sign X-Gatehouse-Identity changed (src/gateway/identity.ts); the key is `identity`. */
export const IDENTITY_KEYS_TOPIC = 'identity-keys'
/**
 * An OpenID Connect token or grant was revoked; the key is `jti:<id>`, `grant:<id>`, `realmRevocationKey`'s for
 * every token of a realm issued before its not-before (a `logout-all`), or `keysDroppedKey`'s for the tokens of the
 * keys a realm dropped at once (`keys rotate --realm`).
 */
export const REVOKE_TOPIC = 'oidc-revoke'

/** The REVOKE_TOPIC key of a realm's new not-before (epoch seconds): one event for every token of the realm. */
export function realmRevocationKey(realm: string, notBefore: number): string {
  return `realm:${notBefore}:${realm}`
}

/** The realm and not-before a REVOKE_TOPIC key names, if it is `realmRevocationKey`'s. */
export function realmRevocation(key: string): { realm: string; notBefore: number } | undefined {
  const match = /^realm:([0-9]{1,15}):(.+)$/s.exec(key)
  return match ? { realm: match[2]!, notBefore: Number(match[1]) } : undefined
}

/** The REVOKE_TOPIC key of a realm whose earlier signing keys were dropped at once: their tokens verify no more. */
export function keysDroppedKey(realm: string): string {
  return `keys:${realm}`
}

/** The realm a REVOKE_TOPIC key names, if it is `keysDroppedKey`'s. */
export function keysDropped(key: string): string | undefined {
  return key.startsWith('keys:') ? key.slice(5) : undefined
}

/**
 * Organizations, teams, role definitions or assignments changed. The key `accessUserKey` makes says only one user's
 * own assignments changed, `accessTeamKey`'s only one team's, and each process reads just those again; any other key,
 * every process reloads them all (src/access/model.ts).
 */
export const ACCESS_TOPIC = 'access'

/** The ACCESS_TOPIC key of a change to one user's own role assignments, and nothing else. */
export function accessUserKey(userId: number): string {
  return `user:${userId}`
}

/** The user an ACCESS_TOPIC key names, if it is `accessUserKey`'s. */
export function accessUser(key: string): number | undefined {
  return idNamed('user', key)
}

/** The ACCESS_TOPIC key of a change to one team's own role assignments (its roles, the teams it is a member of). */
export function accessTeamKey(teamId: number): string {
  return `team:${teamId}`
}

/** The team an ACCESS_TOPIC key names, if it is `accessTeamKey`'s. */
export function accessTeam(key: string): number | undefined {
  return idNamed('team', key)
}

function idNamed(kind: 'user' | 'team', key: string): number | undefined {
  const match = /^([a-z]+):([1-9][0-9]{0,14})$/.exec(key)
  return match?.[1] === kind ? Number(match[2]) : undefined
}

export type Topic = typeof USER_TOPIC | typeof SESSION_TOPIC | typeof TOKEN_TOPIC | typeof SETTINGS_TOPIC | typeof KEYS_TOPIC | typeof IDENTITY_KEYS_TOPIC | typeof REVOKE_TOPIC | typeof ACCESS_TOPIC
