import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import type * as OpenidClient from 'openid-client'
import { millisecondsOf, secondsInWholeMilliseconds } from '../config/durations.ts'
import { ConfigError } from '../config/load.ts'
import { isLoopbackHost, type SsoProviderConfig } from '../config/sso.ts'
import { GatehouseError, SsoAccessDenied, SsoCallbackInvalid, SsoCodeMissing, SsoCodeRejected, SsoLogoutTokenInvalid, SsoNonceMismatch, SsoProviderError, SsoProviderUnavailable, SsoResponseInvalid, SsoStateMismatch } from '../errors.ts'

/** The browser's one-time key of its sign-in under way, over plain HTTP: sent only to the sign-in endpoints. */
export const FLOW_COOKIE = 'gateway_sso'
/**
 * Its name over HTTPS. A browser takes a `__Host-` cookie only from this very host, Secure, with `Path=/` and no
 * Domain, so a sibling subdomain cannot plant its own sign-in's key here and have the victim finish the attacker's
 * sign-in (cookie tossing, login CSRF). The price is `Path=/`: the gateway keeps it from services as its other cookies.
 */
export const SECURE_FLOW_COOKIE = `__Host-${FLOW_COOKIE}`
/**
 * The browser's one-time key of its sign-out at the provider under way, which that sign-out's `state` is derived from,
 * over plain HTTP; over HTTPS, `__Host-` as the sign-in's, so that no sibling subdomain can plant one and have the
 * login page tell a person they signed out at the provider when they did not.
 */
export const LOGOUT_FLOW_COOKIE = 'gateway_sso_logout'
export const SECURE_LOGOUT_FLOW_COOKIE = `__Host-${LOGOUT_FLOW_COOKIE}`
export const SSO_PATH = '/api/gateway/v1/login/sso/'

type FlowCookie = { name: string; options: { path: string; httpOnly: true; sameSite: 'lax'; secure: boolean } }

/**
 * The sign-in cookie's name and path on a connection that is (or is not) HTTPS. Only this name is read: taking the
 * unprefixed one over HTTPS too would let a planted cookie in again. Over HTTP the path is the sign-in endpoints' as
 * the browser addresses them, under the path a proxy publishes the gateway at (`publishedPath`, docs/edge.md), or the
 * browser would not send the cookie back to the callback.
 */
export function flowCookie(secure: boolean, publishedPath: string): FlowCookie {
  return browserFlowCookie(secure ? SECURE_FLOW_COOKIE : FLOW_COOKIE, secure, publishedPath)
}

/**
 * The sign-out's cookie, named and placed as the sign-in's, and read under that name alone. One set under the plain
 * name over HTTPS, by a version before or by an older process during a rolling upgrade, is not read: that sign-out's
 * return lands on the login page without its notice, which is all the key adds.
 */
export function logoutFlowCookie(secure: boolean, publishedPath: string): FlowCookie {
  return browserFlowCookie(secure ? SECURE_LOGOUT_FLOW_COOKIE : LOGOUT_FLOW_COOKIE, secure, publishedPath)
}

function browserFlowCookie(name: string, secure: boolean, publishedPath: string): FlowCookie {
  return { name, options: { path: secure ? '/' : publishedPath + SSO_PATH, httpOnly: true, sameSite: 'lax', secure } }
}

/**
 * Where the "Sign in with <label>" button goes; `freshLogin` asks the provider to have the person log in again
 * (`prompt=login`), for a realm login that asks for a fresh one.
 */
export function ssoStartPath(name: string, next?: string, freshLogin = false): string {
  const query = [...(next ? [`next=${encodeURIComponent(next)}`] : []), ...(freshLogin ? ['prompt=login'] : [])].join('&')
  return `${SSO_PATH}${name}/${query ? `?${query}` : ''}`
}

/** Where the provider posts its back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0). */
export function ssoBackchannelLogoutPath(name: string): string {
  return `${SSO_PATH}${name}/backchannel-logout/`
}

/** Where the provider sends the browser back after signing the person out there (`post_logout_redirect_uri`). */
export function ssoLoggedOutPath(name: string): string {
  return `${SSO_PATH}${name}/logged-out/`
}

/** The redirect URI registered at the provider, under this site's public URL. */
export function ssoCallbackPath(name: string): string {
  return `${SSO_PATH}${name}/callback/`
}

/** What the provider vouched for, after every check: who (issuer and subject) and the claims describing them. */
export interface UpstreamIdentity {
  issuer: string
  subject: string
  claims: Readonly<Record<string, unknown>>
  /** The provider's session this sign-in belongs to (the ID token's `sid`), when it named one that can be kept. */
  sid?: string | undefined
  /** The ID token itself, for `id_token_hint` at the sign-out, when the provider has `sign_out_at_provider` and it is not too long to keep. */
  idToken?: string | undefined
  /** Whether the provider had the person log in during this sign-in (`freshLogin`). */
  freshLogin: boolean
}

/** A back-channel logout token that passed every check: whose sessions it ends, and how it is remembered as taken. */
export interface LogoutRequest {
  sid?: string | undefined
  subject?: string | undefined
  /** The SHA-256 of issuer and `jti`, under which the token is recorded as taken. */
  keyHash: string
  /** The SHA-256 of the whole token, which tells the same token sent again from another token with the same `jti`. */
  tokenHash: string
  /** Until when it is remembered (epoch ms): after that its `iat` is too old for it to be taken anyway. */
  expiresAt: number
}

/**
 * The values one sign-in sends through the browser and the provider, all derived from the one-time key in
 * the browser's cookie: the database keeps only that key's hash, so a copy of it can finish no sign-in.
 */
export interface FlowSecrets {
  state: string
  nonce: string
  codeVerifier: string
}

/** 32 random bytes in base64url: the value of the sign-in cookie. */
export function newFlowKey(): string {
  return randomBytes(32).toString('base64url')
}

export const FLOW_KEY = /^[A-Za-z0-9_-]{43}$/

export function flowKeyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/** HMAC-SHA256 outputs are independent: knowing `state` and `nonce` (which travel) reveals nothing of the verifier. */
export function flowSecrets(key: string): FlowSecrets {
  const derive = (purpose: string) => createHmac('sha256', key).update(purpose).digest('base64url')
  return { state: derive('state'), nonce: derive('nonce'), codeVerifier: derive('code_verifier') }
}

const DISCOVERY_TTL_MS = 60 * 60 * 1000
/**
 * The most of one answer of a provider (discovery, token, UserInfo, keys) that is read: real ones are a few KiB,
 * and one that went on for ever was held whole in memory until `timeout_seconds` ended it (500 MiB in 2 s).
 */
const MAX_ANSWER_BYTES = 1 << 20
/**
 * A subject: 1 to 255 printable ASCII characters (OpenID Connect Core 2: `sub` is "locally unique ... ASCII", at most 255).
 * Anything else is refused before it is looked up: a lone UTF-16 surrogate is stored as U+FFFD, so two different
 * subjects with one would find one account.
 */
const SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/
/** How long after a failed fetch of the provider's keys other sign-ins get its failure rather than fetching again. */
const KEYS_FAILED_GAP_MS = 5_000
/** The same for a discovery the provider did not answer in time (or at all). */
const DISCOVERY_FAILED_GAP_MS = 5_000
/** How far the provider's clock may be from this one: openid-client's own tolerance for `exp`. */
const CLOCK_TOLERANCE_SECONDS = 30
/**
 * How long after its `iat` a logout token is taken: a provider sends it when the person signs out there, and retries
 * for a short while at most. Its `jti` is remembered that long (and the clock tolerance twice over), so a replay is
 * refused for as long as the token would otherwise be taken.
 */
const LOGOUT_TOKEN_MAX_AGE_SECONDS = 300
/** OpenID Connect Back-Channel Logout 1.0, 2.4: the member of `events` that makes a JWT a logout token. */
const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** Signatures a logout token may carry: asymmetric only, as for ID tokens (an HS256 one could be keyed with anything). */
const LOGOUT_TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'Ed25519', 'EdDSA']
/** A `sid` (OpenID Connect Front-Channel Logout 1.0, 3: a string) as kept: 1 to 255 printable ASCII characters, as a subject. */
const SESSION_ID = SUBJECT
/** How old the provider's keys may be (s): openid-client's own bounds. Older than the first, fetched again; an unknown `kid` fetches them again once they are older than the second. */
const KEYS_MAX_AGE_SECONDS = 300
const KEYS_REFETCH_AFTER_SECONDS = 60
/**
 * The longest ID token kept with a session for `id_token_hint`: real ones are one or two KiB. A longer one is not kept,
 * and the sign-out at the provider goes without the hint (the provider then asks the person to confirm), rather than
 * letting a provider make every session row as large as it likes.
 */
const MAX_KEPT_ID_TOKEN = 16 * 1024

type Oidc = typeof OpenidClient

/** A discovery of the provider, under way or done: when it started, and when it failed for want of an answer. */
interface Discovery {
  configuration: Promise<OpenidClient.Configuration>
  at: number
  failedAt?: number
}

/** openid-client (with oauth4webapi) loads with the first sign-in through a provider, not at every start. */
let openidClient: Promise<Oidc> | undefined
const loadOpenidClient = () => (openidClient ??= import('openid-client'))

/**
 * The relying party for one upstream OpenID Connect provider, built on openid-client: discovery (cached
 * for an hour, retried after a failure: a few seconds later when the provider could not be reached), the
 * authorization request (code flow, PKCE S256, state, nonce), and the callback's checks and code exchange.
 * Which account the identity maps to is decided elsewhere (src/directory/sso-sync.ts).
 */
export class SsoRelyingParty {
  readonly config: SsoProviderConfig
  readonly #clientAuth: (oidc: Oidc) => OpenidClient.ClientAuth
  #discovery: Discovery | undefined
  readonly #keys = new ProviderKeys()

  /** Reads the client secret's environment variable now, so a mistake stops the start. */
  constructor(config: SsoProviderConfig, env: NodeJS.ProcessEnv = process.env) {
    this.config = config
    const secret = config.client_secret ?? (config.client_secret_env === undefined ? undefined : env[config.client_secret_env])
    if (config.client_secret_env !== undefined && !secret) {
      throw new ConfigError('sso', [`sso.${config.name}.client_secret_env: the environment variable ${config.client_secret_env} is not set or empty`])
    }
    const method = config.token_endpoint_auth_method ?? (secret === undefined ? 'none' : 'client_secret_basic')
    this.#clientAuth = (oidc) => method === 'none' ? oidc.None() : method === 'client_secret_post' ? oidc.ClientSecretPost(secret) : oidc.ClientSecretBasic(secret)
  }

  get name(): string {
    return this.config.name
  }

  /** The provider's authorization endpoint with this sign-in's parameters (RFC 6749 4.1.1, RFC 7636, OIDC Core 3.1.2.1). */
  async authorizationUrl(redirectUri: string, secrets: FlowSecrets, freshLogin = false): Promise<URL> {
    const configuration = await this.#configuration()
    const oidc = await loadOpenidClient()
    return oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: this.config.scopes.join(' '),
      state: secrets.state,
      nonce: secrets.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(secrets.codeVerifier),
      code_challenge_method: 'S256',
      // As Keycloak's identity brokering passes the client's `prompt` on to the provider.
      ...(freshLogin ? { prompt: 'login' } : {}),
    })
  }

  /**
   * Finishes a sign-in from the provider's redirect back, once `checkAnswerIsOurs` passed: each step throws
   * a GatehouseError saying what was wrong, and nothing is changed here. `redirectUri` is the registered
   * URI; `query` the callback's; `startedAt` when this sign-in started (ms); `promptLogin` whether it asked the
   * provider for a fresh login.
   */
  async finish(redirectUri: string, query: URLSearchParams, secrets: FlowSecrets, startedAt: number, promptLogin = false): Promise<UpstreamIdentity> {
    checkErrorResponse(query, this.config.label)
    checkCodePresent(query)
    const configuration = await this.#configuration()
    const oidc = await loadOpenidClient()
    const tokens = await this.#exchangeCode(oidc, configuration, redirectUri, query, secrets)
    const idToken = tokens.claims()!
    if (!SUBJECT.test(idToken.sub)) throw new SsoResponseInvalid(`${this.config.label} sent a subject (sub) that is not 1 to 255 printable ASCII characters.`)
    this.#checkIssuedDuringSignIn(idToken.iat, startedAt)
    const freshLogin = this.#freshLogin(idToken.auth_time, startedAt, promptLogin)
    this.#checkAuthorizedParty(idToken.azp)
    this.#checkAccessTokenHash(tokens.id_token!, idToken.at_hash, tokens.access_token)
    const userinfo = await this.#fetchUserInfo(oidc, configuration, tokens.access_token, idToken.sub)
    // The ID token is signed and checked, so its values win over the UserInfo response's.
    return {
      issuer: idToken.iss,
      subject: idToken.sub,
      claims: Object.freeze({ ...userinfo, ...idToken }),
      sid: typeof idToken.sid === 'string' && SESSION_ID.test(idToken.sid) ? idToken.sid : undefined,
      idToken: this.#keepsIdToken() && tokens.id_token!.length <= MAX_KEPT_ID_TOKEN ? tokens.id_token : undefined,
      freshLogin,
    }
  }

  /**
   * Whether the provider had the person log in during this sign-in, rather than its own session answering silently:
   * its ID token's `auth_time` (OIDC Core 2) is not before the sign-in started (within the clock tolerance, as for
   * `iat`); without `auth_time`, only when the provider was asked for a fresh login (`prompt=login`, which OIDC Core
   * 3.1.2.1 has it honour or refuse). A provider asked for one that answers with an earlier `auth_time` did not give
   * it, and the sign-in is refused, as Keycloak's brokering refuses one whose `auth_time` is older than the `max_age`
   * it passed on ("User not re-authenticated by the target OpenID Provider").
   */
  #freshLogin(authTime: number | undefined, startedAt: number, promptLogin: boolean): boolean {
    if (authTime === undefined) return promptLogin
    const fresh = authTime >= startedAt / 1000 - CLOCK_TOLERANCE_SECONDS
    if (promptLogin && !fresh) {
      throw new SsoResponseInvalid(`${this.config.label} was asked to have you log in again, and did not (the ID token's auth_time is from before this sign-in).`)
    }
    return fresh
  }

  /** Whether a sign-in's ID token is kept with its session: only to be sent back as `id_token_hint` at the sign-out. */
  #keepsIdToken(): boolean {
    return this.config.sign_out_at_provider && this.config.sign_out_id_token_hint
  }

  /**
   * Where the browser signing out of Gatehouse goes to be signed out at the provider too (OpenID Connect RP-Initiated
   * Logout 1.0, 2): the discovery document's `end_session_endpoint`, its own query kept, with `id_token_hint` (when
   * kept, and `sign_out_id_token_hint` is on), `client_id` (unless `sign_out_client_id` is off),
   * `post_logout_redirect_uri` and `state`. None when the provider names no such endpoint. One that is not https (or,
   * with `allow_insecure_http`, http on a loopback host) is refused (SsoResponseInvalid), as the other endpoints are:
   * the hint would cross the network in clear. Built here rather than by openid-client, which always adds `client_id`.
   */
  async endSessionUrl(postLogoutRedirectUri: string, state: string, idTokenHint: string | undefined): Promise<URL | undefined> {
    const configuration = await this.#configuration()
    const endpoint = configuration.serverMetadata().end_session_endpoint
    if (!endpoint) return undefined
    if (!usableEndpoint(endpoint, this.config)) {
      throw new SsoResponseInvalid(`The discovery document of ${this.config.label} has no usable end_session_endpoint (an absolute https URL${insecureNote(this.config)}).`)
    }
    const url = new URL(endpoint)
    if (idTokenHint !== undefined && this.#keepsIdToken()) url.searchParams.append('id_token_hint', idTokenHint)
    if (this.config.sign_out_client_id) url.searchParams.append('client_id', this.config.client_id)
    url.searchParams.append('post_logout_redirect_uri', postLogoutRedirectUri)
    url.searchParams.append('state', state)
    return url
  }

  /**
   * Checks a back-channel logout token (OpenID Connect Back-Channel Logout 1.0, 2.6) and says which sessions it ends:
   * signed with one of the provider's published keys (the ID tokens' keys, fetched and kept as for them), `typ`
   * `logout+jwt` when given, `iss` the provider, `aud` holding this client, `iat` within the last few minutes and not
   * in the future, `exp` (when present) not past, a `jti`, `events` naming the back-channel logout event with an
   * object, a `sid` or a `sub` (of the shapes a sign-in keeps), and no `nonce` (which would make it an ID token).
   * Throws SsoLogoutTokenInvalid saying which check failed; whether the `jti` was taken before is the caller's.
   */
  async checkLogoutToken(token: string): Promise<LogoutRequest> {
    const configuration = await this.#configuration()
    const oidc = await loadOpenidClient()
    const header = logoutTokenHeader(token)
    let payload: JWTPayload
    try {
      const keys = createLocalJWKSet(await this.#verificationKeys(oidc, configuration, header.kid))
      ;({ payload } = await jwtVerify(token, keys, {
        issuer: this.config.issuer,
        audience: this.config.client_id,
        algorithms: LOGOUT_TOKEN_ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }))
    } catch (error) {
      if (error instanceof GatehouseError) throw error
      throw new SsoLogoutTokenInvalid(`The logout token failed validation (${joseFailure(error)}).`)
    }
    return { ...logoutRequestOf(this.config.issuer, payload), tokenHash: createHash('sha256').update(token).digest('hex') }
  }

  /**
   * The provider's keys for a logout token, from the copy the ID tokens' checks keep (openid-client's, within its
   * bounds): fetched again once it is five minutes old, or once it is a minute old when it lacks the token's `kid`,
   * through the same one-request-at-a-time fetch. So a flood of unknown `kid`s costs the provider at most a request a
   * minute, here as at the sign-in.
   */
  async #verificationKeys(oidc: Oidc, configuration: OpenidClient.Configuration, kid: string | undefined): Promise<JSONWebKeySet> {
    const kept = oidc.getJwksCache(configuration)
    const now = Math.floor(Date.now() / 1000)
    const age = kept?.uat === undefined ? Infinity : now - kept.uat
    const knowsKid = kid === undefined || (kept?.jwks?.keys ?? []).some((key) => key.kid === kid)
    if (kept?.jwks && age < KEYS_MAX_AGE_SECONDS && (knowsKid || age < KEYS_REFETCH_AFTER_SECONDS)) return kept.jwks as JSONWebKeySet
    const url = configuration.serverMetadata().jwks_uri!
    let answer: Response
    try {
      answer = await this.#keys.fetch(url, {
        method: 'GET',
        body: undefined,
        headers: { accept: 'application/json, application/jwk-set+json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(millisecondsOf(this.config.timeout_seconds)),
      })
    } catch (error) {
      if (causes(error).some((cause) => cause instanceof AnswerTooLarge)) throw new SsoResponseInvalid(`${this.config.label} sent an answer larger than 1 MiB (its keys).`, { cause: error })
      throw new SsoProviderUnavailable(`${this.config.label} could not be reached (its keys); try again later.`, { cause: error })
    }
    const jwks = answer.status === 200 ? await answer.json().catch(() => undefined) as { keys?: unknown } | undefined : undefined
    if (!Array.isArray(jwks?.keys) || !jwks.keys.every((key) => typeof key === 'object' && key !== null && !Array.isArray(key))) {
      throw new SsoResponseInvalid(`${this.config.label} did not answer with its keys (status ${answer.status}).`)
    }
    oidc.setJwksCache(configuration, { jwks: jwks as OpenidClient.JWKS, uat: now })
    return jwks as JSONWebKeySet
  }

  /**
   * Token request with the PKCE verifier; openid-client checks the response's `state` and `iss` (RFC 9207)
   * again, and the ID token's signature, `iss`, `aud`, `exp`, `iat` and `nonce` (OIDC Core 3.1.3.7).
   */
  async #exchangeCode(oidc: Oidc, configuration: OpenidClient.Configuration, redirectUri: string, query: URLSearchParams, secrets: FlowSecrets) {
    const currentUrl = new URL(redirectUri)
    currentUrl.search = query.toString()
    try {
      return await oidc.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: secrets.codeVerifier,
        expectedState: secrets.state,
        expectedNonce: secrets.nonce,
        idTokenExpected: true,
      })
    } catch (error) {
      throw this.#failure(oidc, error, 'the code exchange')
    }
  }

  /**
   * OIDC Core 3.1.3.7 (10): openid-client only requires `iat` to be a number. This sign-in's ID token was issued
   * after it started and not in the future; one from another time was not made for it.
   */
  #checkIssuedDuringSignIn(issuedAt: number, startedAt: number): void {
    const earliest = startedAt / 1000 - CLOCK_TOLERANCE_SECONDS
    const latest = Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS
    if (!(issuedAt >= earliest && issuedAt <= latest)) {
      throw new SsoResponseInvalid(`The answer of ${this.config.label} failed validation (the ID token was not issued during this sign-in).`)
    }
  }

  /**
   * OIDC Core 3.1.3.7 (5): openid-client checks `azp` only when there are several audiences; when present, it
   * must name this client all the same (Keycloak's OIDC identity provider checks it the same way).
   */
  #checkAuthorizedParty(authorizedParty: unknown): void {
    if (authorizedParty !== undefined && authorizedParty !== this.config.client_id) {
      throw new SsoResponseInvalid(`The answer of ${this.config.label} failed validation (the ID token was issued to another client).`)
    }
  }

  /**
   * OIDC Core 3.1.3.8: an ID token with `at_hash` names the access token issued with it, and openid-client checks that
   * only in the hybrid flow. The access token is what UserInfo is asked with, and its claims (groups among them) fill
   * the account: one the ID token does not name is not this sign-in's.
   */
  #checkAccessTokenHash(idToken: string, accessTokenHash: unknown, accessToken: string): void {
    if (accessTokenHash === undefined) return
    const expected = tokenHash(idToken, accessToken)
    const given = Buffer.from(typeof accessTokenHash === 'string' ? accessTokenHash : '')
    if (expected === undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new SsoResponseInvalid(`The answer of ${this.config.label} failed validation (the ID token's at_hash does not match the access token).`)
    }
  }

  /** The UserInfo claims (OIDC Core 5.3), when the provider has the endpoint; openid-client checks `sub` matches the ID token's. */
  async #fetchUserInfo(oidc: Oidc, configuration: OpenidClient.Configuration, accessToken: string, subject: string): Promise<Record<string, unknown>> {
    if (!configuration.serverMetadata().userinfo_endpoint || !accessToken) return {}
    try {
      return await oidc.fetchUserInfo(configuration, accessToken, subject)
    } catch (error) {
      throw this.#failure(oidc, error, 'the UserInfo request')
    }
  }

  /**
   * The discovered configuration. A provider that could not be reached is not asked again for a few seconds: those
   * starting a sign-in meanwhile get its failure at once, rather than each waiting up to `timeout_seconds` on a
   * provider that hangs. Any other failure (a document that is not usable) is forgotten, so the next sign-in reads
   * the document again.
   */
  #configuration(): Promise<OpenidClient.Configuration> {
    // By the monotonic clock: a step back of the wall clock must not keep a discovery (or a failure) for as long.
    const now = performance.now()
    const kept = this.#discovery
    if (kept && (kept.failedAt === undefined ? now - kept.at < DISCOVERY_TTL_MS : now - kept.failedAt < DISCOVERY_FAILED_GAP_MS)) return kept.configuration
    const discovery: Discovery = {
      configuration: loadOpenidClient().then((oidc) => this.#discover(oidc)).catch((error: unknown) => {
        if (error instanceof SsoProviderUnavailable) discovery.failedAt = performance.now()
        else if (this.#discovery === discovery) this.#discovery = undefined
        throw error
      }),
      at: now,
    }
    this.#discovery = discovery
    return discovery.configuration
  }

  async #discover(oidc: Oidc): Promise<OpenidClient.Configuration> {
    try {
      const discovered = await oidc.discovery(new URL(this.config.issuer), this.config.client_id, undefined, this.#clientAuth(oidc), {
        timeout: secondsInWholeMilliseconds(this.config.timeout_seconds),
        // Kept by the configuration for every later request to the provider, the keys' included.
        [oidc.customFetch]: (url: string, options: OpenidClient.CustomFetchOptions) => this.#keys.serves(url) ? this.#keys.fetch(url, options) : fetchWithinBound(url, options),
        ...(this.config.allow_insecure_http ? { execute: [oidc.allowInsecureRequests] } : {}),
      })
      checkEndpoints(discovered.serverMetadata(), this.config)
      this.#keys.url = discovered.serverMetadata().jwks_uri
      discovered.timeout = secondsInWholeMilliseconds(this.config.timeout_seconds)
      // Without it openid-client trusts the token endpoint's ID token unsigned (OIDC Core 3.1.3.7 allows that
      // over TLS): `alg: none`, or any key, would do. Checked against the provider's JWKS, so only its keys sign.
      oidc.enableNonRepudiationChecks(discovered)
      return discovered
    } catch (error) {
      throw this.#failure(oidc, error, 'discovery')
    }
  }

  /** Turns what openid-client throws into the answer the person gets; the provider's own words stay in the log. */
  #failure(oidc: Oidc, error: unknown, step: string): GatehouseError {
    if (error instanceof GatehouseError) return error
    const label = this.config.label
    if (error instanceof oidc.ResponseBodyError) {
      if (error.error === 'invalid_grant') {
        return new SsoCodeRejected(`${label} did not accept the sign-in code (used already, expired, or not issued for this sign-in). Start again.`)
      }
      return new SsoProviderError(`${label} refused ${step} (${safeErrorCode(error.error)}).`, { cause: error })
    }
    if (error instanceof oidc.WWWAuthenticateChallengeError) {
      const reason = error.cause[0]?.parameters.error ?? error.cause[0]?.scheme ?? 'unknown error'
      return new SsoProviderError(`${label} refused ${step} (${safeErrorCode(reason)}).`, { cause: error })
    }
    if (error instanceof oidc.AuthorizationResponseError) return providerError(error.error, label)
    if (causes(error).some((cause) => cause instanceof AnswerTooLarge)) {
      return new SsoResponseInvalid(`${label} sent an answer larger than 1 MiB (${step}).`, { cause: error })
    }
    const code = (error as { code?: unknown }).code
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT' || (error instanceof TypeError && error.message === 'fetch failed')) {
      return new SsoProviderUnavailable(`${label} could not be reached (${step}); try again later.`, { cause: error })
    }
    if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claimOf(error) === 'nonce') {
      return new SsoNonceMismatch()
    }
    return new SsoResponseInvalid(`The answer of ${label} failed validation (${step}).`, { cause: error })
  }
}

class AnswerTooLarge extends Error {}

/** The protected header of a signed JWT whose `alg` is one a logout token may have and whose `typ`, if any, is a logout token's. */
function logoutTokenHeader(token: string): { kid?: string | undefined } {
  let header
  try {
    header = decodeProtectedHeader(token)
  } catch {
    throw new SsoLogoutTokenInvalid('The logout token is not a signed JWT.')
  }
  if (token.split('.').length !== 3) throw new SsoLogoutTokenInvalid('The logout token is not a signed JWT.')
  if (typeof header.alg !== 'string' || !LOGOUT_TOKEN_ALGORITHMS.includes(header.alg)) {
    throw new SsoLogoutTokenInvalid('The logout token is not signed with an asymmetric algorithm.')
  }
  // Back-Channel Logout 1.0, 2.4: `logout+jwt` (RFC 7515 4.1.9 lets the `application/` prefix go, in any letter case).
  if (header.typ !== undefined && header.typ.toLowerCase().replace(/^application\//, '') !== 'logout+jwt') {
    throw new SsoLogoutTokenInvalid('The logout token\'s typ is not logout+jwt.')
  }
  return { kid: typeof header.kid === 'string' ? header.kid : undefined }
}

/** The claims jose checked (signature, `iss`, `aud`, `exp`, `nbf`) are good; the rest of 2.6's checks, and what the token names. */
function logoutRequestOf(issuer: string, payload: JWTPayload): Omit<LogoutRequest, 'tokenHash'> {
  const now = Date.now() / 1000
  const issuedAt = payload.iat
  if (typeof issuedAt !== 'number' || issuedAt > now + CLOCK_TOLERANCE_SECONDS || issuedAt < now - LOGOUT_TOKEN_MAX_AGE_SECONDS - CLOCK_TOLERANCE_SECONDS) {
    throw new SsoLogoutTokenInvalid(`The logout token was not issued within the last ${LOGOUT_TOKEN_MAX_AGE_SECONDS} seconds (iat).`)
  }
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 1024) {
    throw new SsoLogoutTokenInvalid('The logout token has no jti.')
  }
  const events = payload.events
  if (!isJsonObject(events) || !isJsonObject(events[BACKCHANNEL_LOGOUT_EVENT])) {
    throw new SsoLogoutTokenInvalid(`The logout token's events do not hold ${BACKCHANNEL_LOGOUT_EVENT} as an object.`)
  }
  if ('nonce' in payload) throw new SsoLogoutTokenInvalid('The logout token has a nonce.')
  const { sid, sub } = payload as { sid?: unknown; sub?: unknown }
  if (sid === undefined && sub === undefined) throw new SsoLogoutTokenInvalid('The logout token names neither a sid nor a sub.')
  if (sid !== undefined && (typeof sid !== 'string' || !SESSION_ID.test(sid))) throw new SsoLogoutTokenInvalid('The logout token\'s sid is not 1 to 255 printable ASCII characters.')
  if (sub !== undefined && (typeof sub !== 'string' || !SUBJECT.test(sub))) throw new SsoLogoutTokenInvalid('The logout token\'s sub is not 1 to 255 printable ASCII characters.')
  return {
    sid,
    subject: sub,
    keyHash: createHash('sha256').update(`${issuer}\n${payload.jti}`).digest('hex'),
    expiresAt: (issuedAt + LOGOUT_TOKEN_MAX_AGE_SECONDS + 2 * CLOCK_TOLERANCE_SECONDS) * 1000,
  }
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Which check jose refused a logout token on, in words for the provider's operator. */
function joseFailure(error: unknown): string {
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `its ${error.claim} claim: ${error.reason}`
  if (error instanceof joseErrors.JWTExpired) return 'it expired (exp)'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key the provider publishes matches its kid and alg'
  if (error instanceof joseErrors.JWKSMultipleMatchingKeys) return 'several of the provider\'s keys match; it needs a kid'
  if (error instanceof joseErrors.JOSEError) return error.code
  return 'it could not be read'
}

/**
 * The hash of a token an ID token names (`at_hash`, OIDC Core 3.1.3.6): the left half of the digest of the hash of
 * the ID token's signature algorithm (SHA-512 for Ed25519, SHAKE256 for ML-DSA, as openid-client computes them in the
 * hybrid flow), base64url-encoded. None for an algorithm without one.
 */
function tokenHash(idToken: string, token: string): Buffer | undefined {
  const alg = jwtAlgorithm(idToken)
  const hash = alg === undefined ? undefined : TOKEN_HASHES.get(alg)
  if (hash === undefined) return undefined
  const digest = createHash(hash, hash === 'shake256' ? { outputLength: 64 } : {}).update(token).digest()
  return Buffer.from(digest.subarray(0, digest.length / 2).toString('base64url'))
}

const TOKEN_HASHES: ReadonlyMap<string, string> = new Map([
  ...['RS256', 'PS256', 'ES256'].map((alg) => [alg, 'sha256'] as const),
  ...['RS384', 'PS384', 'ES384'].map((alg) => [alg, 'sha384'] as const),
  ...['RS512', 'PS512', 'ES512', 'Ed25519', 'EdDSA'].map((alg) => [alg, 'sha512'] as const),
  ...['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87'].map((alg) => [alg, 'shake256'] as const),
])

/** The `alg` of a compact JWS's protected header (already checked by openid-client). */
function jwtAlgorithm(jwt: string): string | undefined {
  try {
    const alg: unknown = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString()).alg
    return typeof alg === 'string' ? alg : undefined
  } catch {
    return undefined
  }
}

/** A fetch of the keys: its answer, once it came when it settled, and whether it failed (or was not a 200). */
interface KeysFetch {
  url: string
  answer: Promise<KeptAnswer>
  settledAt?: number
  failed?: boolean
}

/** An answer read whole, to be given to several requests as a new Response each. */
interface KeptAnswer {
  status: number
  statusText: string
  headers: [string, string][]
  body: ArrayBuffer
}

/**
 * The provider's keys (`jwks_uri`), fetched by one request at a time (after a failure, at most every five seconds).
 * openid-client fetches them again for an ID token naming a key it lacks once its copy is a minute old, and, as each
 * of its requests has a deadline of its own, concurrent callbacks would each fetch: the first sign-ins after a start,
 * or a flood of unknown `kid`s, would each cost the provider a request. Those asking meanwhile share the one answer.
 */
class ProviderKeys {
  /** The keys' address, from discovery. */
  url: string | undefined
  #last: KeysFetch | undefined

  serves(url: string): boolean {
    return url === this.url
  }

  async fetch(url: string, options: OpenidClient.CustomFetchOptions): Promise<Response> {
    const last = this.#last
    // A fetch under way is shared; a failed one for a few seconds. A good answer is openid-client's to keep: it asks
    // again only once its copy is a minute old, which a copy of an older answer would reset.
    const shared = last?.url === url && (last.settledAt === undefined || (last.failed === true && performance.now() - last.settledAt < KEYS_FAILED_GAP_MS))
    if (!shared) {
      const fetching: KeysFetch = { url, answer: fetchWithinBound(url, options).then(kept) }
      fetching.answer.then((answer) => void (fetching.failed = answer.status !== 200), () => void (fetching.failed = true))
        .finally(() => void (fetching.settledAt = performance.now()))
      this.#last = fetching
    }
    const answer = await this.#last!.answer
    return new Response(answer.body.slice(0), { status: answer.status, statusText: answer.statusText, headers: answer.headers })
  }
}

async function kept(response: Response): Promise<KeptAnswer> {
  return { status: response.status, statusText: response.statusText, headers: [...response.headers], body: await response.arrayBuffer() }
}

/**
 * What a sign-in needs of the discovery document: where the browser is sent (`authorization_endpoint`), and where the
 * code is exchanged and the ID token's keys are fetched (`token_endpoint`, `jwks_uri`): OpenID Connect Discovery 1.0 §3
 * makes the three REQUIRED for a provider of the code flow. openid-client reads each only when it first uses it: a
 * missing or non-URL authorization endpoint threw a TypeError (a 500), and a missing token endpoint or key set failed
 * only after the person had signed in at the provider, every time for an hour, as the document was kept. Checked with
 * discovery instead, the document is refused as an invalid answer, before anyone is sent there, and read again at the
 * next sign-in. Each of them, and the UserInfo endpoint when there is one, is https, or http on a loopback host with
 * `allow_insecure_http`, as the issuer must be (src/config/sso.ts): openid-client's `allowInsecureRequests` would take
 * http on any host, and send the client secret, the code and the tokens across the network in clear. Not checked: that
 * the URLs are on the issuer's host (providers put them elsewhere, as Azure AD B2C does).
 */
function checkEndpoints(metadata: OpenidClient.ServerMetadata, config: SsoProviderConfig): void {
  const usable = (value: unknown) => usableEndpoint(value, config)
  const unusable = [
    ...(['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const).filter((name) => !usable(metadata[name])),
    // Without one (none, or an empty value) the sign-in asks for no UserInfo (#fetchUserInfo).
    ...(metadata.userinfo_endpoint && !usable(metadata.userinfo_endpoint) ? ['userinfo_endpoint'] : []),
  ]
  if (unusable.length) {
    throw new SsoResponseInvalid(`The discovery document of ${config.label} has no usable ${unusable.join(', ')} (each an absolute https URL${insecureNote(config)}).`)
  }
}

/** An endpoint of the provider's that may be used: an absolute https URL, or with `allow_insecure_http` an http one on a loopback host. */
function usableEndpoint(value: unknown, config: SsoProviderConfig): boolean {
  const url = typeof value === 'string' ? URL.parse(value) : null
  return url?.protocol === 'https:' || (url?.protocol === 'http:' && config.allow_insecure_http && isLoopbackHost(url.hostname))
}

function insecureNote(config: SsoProviderConfig): string {
  return config.allow_insecure_http ? ', or http on a loopback host' : ''
}

/**
 * fetch, with the body read whole (at most MAX_ANSWER_BYTES) before the answer is handed on, so the request's
 * timeout covers the body as well: a provider that stops in the middle of it is unreachable, not invalid.
 */
async function fetchWithinBound(url: string, options: OpenidClient.CustomFetchOptions): Promise<Response> {
  const response = await fetch(url, options as RequestInit)
  if (!response.body) return response
  if (Number(response.headers.get('content-length')) > MAX_ANSWER_BYTES) {
    await response.body.cancel()
    throw new AnswerTooLarge()
  }
  const chunks: Uint8Array[] = []
  let size = 0
  // Leaving the loop early cancels the body, which closes the connection.
  for await (const chunk of response.body) {
    size += chunk.byteLength
    if (size > MAX_ANSWER_BYTES) throw new AnswerTooLarge()
    chunks.push(chunk)
  }
  return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers })
}

function causes(error: unknown): unknown[] {
  const found: unknown[] = []
  for (let cause = error; cause && typeof cause === 'object' && found.length < 8; cause = (cause as { cause?: unknown }).cause) found.push(cause)
  return found
}

/** The claim an OAUTH_JWT_CLAIM_COMPARISON_FAILED error is about (openid-client wraps oauth4webapi's error). */
function claimOf(error: unknown): unknown {
  let cause = (error as { cause?: unknown }).cause
  while (cause && typeof cause === 'object') {
    if ('claim' in cause) return (cause as { claim: unknown }).claim
    cause = (cause as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * The first check of a redirect back, before the sign-in under way is used up: an answer that is not for
 * this browser's sign-in (RFC 6749 10.12) leaves that sign-in as it was.
 */
export function checkAnswerIsOurs(query: URLSearchParams, secrets: FlowSecrets): void {
  checkSingleValues(query)
  checkState(query, secrets.state)
}

/** RFC 6749 4.1.2: each response parameter appears once; a repeated one is not ours to pick from. */
function checkSingleValues(query: URLSearchParams): void {
  const seen = new Set<string>()
  for (const name of query.keys()) {
    if (seen.has(name)) throw new SsoCallbackInvalid(`The parameter ${name.slice(0, 40)} was given more than once.`)
    seen.add(name)
  }
}

/** RFC 6749 10.12: the `state` must be the one this browser's sign-in sent (compared in constant time). */
function checkState(query: URLSearchParams, expected: string): void {
  if (!isSameSecret(query.get('state') ?? '', expected)) throw new SsoStateMismatch()
}

/** Whether a value sent is the secret expected, compared in constant time. */
export function isSameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** RFC 6749 4.1.2.1: the provider said no; `access_denied` is the person (or the provider's policy) declining. */
function checkErrorResponse(query: URLSearchParams, label: string): void {
  const error = query.get('error')
  if (error !== null) throw providerError(error, label)
}

function checkCodePresent(query: URLSearchParams): void {
  if (!query.get('code')) throw new SsoCodeMissing()
}

function providerError(error: string, label: string): GatehouseError {
  if (error === 'access_denied') return new SsoAccessDenied(`${label} did not grant the sign-in.`)
  return new SsoProviderError(`${label} could not complete the sign-in (${safeErrorCode(error)}).`)
}

/** OAuth error codes are ASCII words (RFC 6749 A.7); anything else is not repeated to the person. */
function safeErrorCode(error: string): string {
  return /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(error) ? error : 'unknown error'
}
