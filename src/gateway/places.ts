import type { GatewayRequest } from '../http/gateway-request.ts'
import type { BearerPolicy } from '../auth/access-tokens.ts'
import type { Principal } from '../auth/principal.ts'
import type { AuthMethod, Config } from '../config/schema.ts'
import { type GatehouseError, PermissionDenied } from '../errors.ts'
import { isSafeMethod } from '../http/negotiation.ts'
import { gatewayLoginUrl, publishedPath, type UnauthenticatedMode } from './policy.ts'
import { publicPathMatcher, type Route } from './routes.ts'

/** Who may enter a place beyond its public paths, the coarse part of its entry rules. */
export type Who = 'anonymous' | 'signed_in' | 'superuser'

/** An entry rule lets a signed-in principal in, or refuses them with the reason the client and the log see. */
export const ALLOW: unique symbol = Symbol('allow')
export type EntryVerdict = typeof ALLOW | GatehouseError

/**
 * One check of who may enter a place, run in order after authentication on the place's private paths; the first
 * refusal wins. Per-service access rules (users, teams, roles, methods, networks) are one more of these.
 */
export interface EntryRule {
  readonly name: string
  decide(principal: Principal, request: GatewayRequest): EntryVerdict
}

/**
 * Everywhere a request can land that decides who gets in: a service, the gateway API, the web interface, a realm's
 * login. Compiled once at start (src/app.ts); `authorize` (src/gateway/authorize.ts) is the one step that judges a
 * request against it.
 */
export interface Place {
  /** The place's own name in the request log: a service's name, `gateway`, `ui`, `ui/admin`, `realms/<name>`. */
  readonly name: string
  /**
   * Whose place it is: a service's name, `gateway` for the gateway's own API and pages, `realms/<name>`. The request
   * log's `service`, and what the OIDC bearer policy (which tokens the place takes) is looked up by.
   */
  readonly service: string
  readonly accepts: readonly AuthMethod[]
  /** Paths anyone may reach; a credential that fails there counts as none. */
  isPublic(path: string): boolean
  /** What a request without a usable credential gets elsewhere: a login redirect or 401. */
  readonly unauthenticated: UnauthenticatedMode
  loginUrl(next: string): string
  readonly who: Who
  readonly entry: readonly EntryRule[]
  /**
   * The OpenID Connect tokens a service takes, fixed as its route was compiled with its entry rules: a request that
   * found the route before a reload is judged by the audiences that came with the rules it found, not a mix of the
   * two files. Other places look theirs up by `service` as each token is judged.
   */
  readonly bearerPolicy?: BearerPolicy
}

/**
 * Who may call a gateway API route; declared on the route itself (`config: { access }`).
 * `public`: open while listed in `gateway.public_paths`; `open`: always (the JWKS services verify with);
 * `sign_out`: signed-in callers, whom `gateway.access` never refuses, so that anyone may end their own session.
 */
export type Access = 'open' | 'public' | 'user' | 'superuser' | 'sign_out'

/** The route table: every place, compiled once; the services, again on each reload of the configuration. */
export interface Places {
  /** Each configured service, longest prefix first, as now (a reload replaces them). */
  readonly services: readonly Route[]
  /** The gateway API, by the access its routes declare. */
  readonly gatewayApi: Readonly<Record<Access, Place>>
  /** The web interface's pages, and its administration pages. */
  readonly ui: Place
  readonly uiAdmin: Place
  /** Realm endpoints that take the gateway's session (the realm login recognises a browser signed in at the gateway). */
  realm(name: string): Place
}

/** Superusers; and a Platform Auditor (docs/access.md), who reads everything a superuser may and changes nothing. */
export const superuserOnly: EntryRule = {
  name: 'superuser',
  decide: (principal, request) => (principal.user.isSuperuser || (principal.user.isSystemAuditor && isSafeMethod(request.method)) ? ALLOW : new PermissionDenied()),
}

function entryFor(who: Who): readonly EntryRule[] {
  return who === 'superuser' ? [superuserOnly] : []
}

const nowhere = (): boolean => false
const everywhere = (): boolean => true

function place(fields: Omit<Place, 'entry'>, extra: readonly EntryRule[] = []): Place {
  return Object.freeze({ ...fields, entry: [...entryFor(fields.who), ...extra] })
}

/**
 * `gatewayEntry`: the gateway's own access rules (`gateway.access`), judged after the built-in checks on the gateway
 * API's and the web interface's private paths. Public paths (login, API roots, ping, JWKS) never reach them.
 */
export function compilePlaces(config: Config, services: { readonly routes: readonly Route[] }, gatewayEntry: readonly EntryRule[] = []): Places {
  const configuredPublic = publicPathMatcher(config.gateway.public_paths)
  const loginUrl = gatewayLoginUrl(publishedPath(config))
  const api = (who: Who, isPublic: (path: string) => boolean, entry = gatewayEntry): Place =>
    place({ name: 'gateway', service: 'gateway', accepts: config.gateway.accepts, isPublic, unauthenticated: '401', loginUrl, who }, entry)
  const realms = new Map(config.realms.map((realm) => [realm.name, place({ name: `realms/${realm.name}`, service: `realms/${realm.name}`, accepts: ['session'], isPublic: everywhere, unauthenticated: '401', loginUrl, who: 'anonymous' })]))
  return Object.freeze({
    // Those in use: a reload of the configuration replaces them.
    get services() {
      return services.routes
    },
    gatewayApi: Object.freeze({
      open: api('anonymous', everywhere),
      // Configuration can close a public route but never open a private one.
      public: api('signed_in', configuredPublic),
      user: api('signed_in', nowhere),
      superuser: api('superuser', nowhere),
      sign_out: api('signed_in', nowhere, []),
    }),
    ui: place({ name: 'ui', service: 'gateway', accepts: ['session'], isPublic: nowhere, unauthenticated: 'redirect', loginUrl, who: 'signed_in' }, gatewayEntry),
    uiAdmin: place({ name: 'ui/admin', service: 'gateway', accepts: ['session'], isPublic: nowhere, unauthenticated: 'redirect', loginUrl, who: 'superuser' }, gatewayEntry),
    realm: (name: string) => realms.get(name)!,
  })
}
