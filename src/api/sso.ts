import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf, signingIn } from '../audit/actor.ts'
import { auditedSession, sessionFields } from '../audit/sessions.ts'
import { groupsClaim, syncSsoAccount } from '../directory/sso-sync.ts'
import { checkAnswerIsOurs, flowCookie, FLOW_KEY, flowKeyHash, flowSecrets, isSameSecret, logoutFlowCookie, newFlowKey, SSO_PATH, ssoCallbackPath, ssoLoggedOutPath, SsoRelyingParty } from '../directory/sso.ts'
import { GatehouseError, SsoLoginExpired, SsoLoginUnknown, SsoLogoutTokenInvalid, SsoProviderUnknown } from '../errors.ts'
import { splitTarget } from '../http/request-target.ts'
import { sameOriginTarget } from '../gateway/redirect-target.ts'
import type { StoredSession, UpstreamSession } from '../store/sessions.ts'
import type { PendingSsoLogin } from '../store/sso.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { defaultNext, keepRetryAfter, nextQuery, sendLoginPage } from './login.ts'
import { mediaType, wantsHtml } from '../http/negotiation.ts'
import { startSession } from '../auth/session-start.ts'
import { boundedText } from '../logging/error-serializer.ts'

/** Time from "Sign in with ..." to the provider's redirect back, the person's own login there included. */
const FLOW_SECONDS = 600
const CLEANUP_INTERVAL_MS = 60_000
/**
 * A back-channel logout request's body: a form with one logout token, a few KiB signed (a JWT of a few claims). What
 * is longer is no provider's, and is refused unread (413), or read and refused, before any key is fetched.
 */
const LOGOUT_BODY_LIMIT = 32 * 1024
const MAX_LOGOUT_TOKEN = 16 * 1024

/**
 * Sign-in through upstream OpenID Connect providers (docs/sso.md): the start endpoint sends the browser
 * to the provider, the callback endpoint checks the answer, finds or creates the account and starts a
 * normal session, as the password login does.
 *
 * Both are `open`, like the JWKS: they exist only for configured providers, take no credential, and lead
 * only to a login, so `gateway.public_paths` does not list them. They answer GET only: a HEAD (a link
 * checker, a prefetch) must neither start nor use up a sign-in.
 */
const providerParam = z.object({ provider: z.string() })
/** `prompt=login`: the provider is to have the person log in again (a realm login that asks for a fresh one). */
const startQuery = nextQuery.extend({ prompt: z.literal('login').optional() })

/**
 * Where a browser that just signed out of Gatehouse goes next to be signed out at the provider its session came from
 * (OpenID Connect RP-Initiated Logout 1.0), or undefined to end only here. The browser gets a one-time key the `state`
 * is derived from, so the provider's redirect back is known as the answer to this browser's sign-out.
 */
export type ProviderSignOut = (request: FastifyRequest, reply: FastifyReply, upstream: UpstreamSession) => Promise<string | undefined>

export function ssoRoutes(api: GatewayApi, app: App): ProviderSignOut {
  const parties = new Map(app.config.sso.map((config) => [config.name, new SsoRelyingParty(config)]))
  let lastCleanup = 0

  const partyOf = (name: string): SsoRelyingParty => {
    const party = parties.get(name)
    if (!party) throw new SsoProviderUnknown(`There is no single sign-on provider "${name.slice(0, 64)}".`)
    return party
  }
  const redirectUri = (party: SsoRelyingParty) => app.publicUrl + ssoCallbackPath(party.name)

  const ssoPath = SSO_PATH.slice(GATEWAY_API.length)
  api.get(`${ssoPath}:provider/`, {
    config: { access: 'open' },
    exposeHeadRoute: false,
    schema: { params: providerParam, querystring: startQuery },
  }, async (request, reply) => {
    const party = partyOf(request.params.provider)
    const next = sameOriginTarget(app.publicUrl, request.query.next)
    try {
      app.signInStarts.admit(request.ip)
      const key = newFlowKey()
      // Discovery comes first: when the provider is down, nothing is stored and the browser stays here.
      const promptLogin = request.query.prompt === 'login'
      const authorizationUrl = await party.authorizationUrl(redirectUri(party), flowSecrets(key), promptLogin)
      const now = Date.now()
      if (now - lastCleanup >= CLEANUP_INTERVAL_MS) {
        lastCleanup = now
        await app.store.sso.deleteExpiredLogins(now)
      }
      await app.store.sso.createLogin({ keyHash: flowKeyHash(key), provider: party.name, next: next ?? '', created: now, expiresAt: now + FLOW_SECONDS * 1000, promptLogin })
      const cookie = flowCookie(app.csrf.isSecure(request), app.publishedPath)
      reply.setCookie(cookie.name, key, { ...cookie.options, maxAge: FLOW_SECONDS })
      return reply.redirect(authorizationUrl.href, 302)
    } catch (error) {
      return refuse(app, request, reply, party, error, next)
    }
  })

  api.get(`${ssoPath}:provider/callback/`, { config: { access: 'open' }, exposeHeadRoute: false, schema: { params: providerParam } }, async (request, reply) => {
    const party = partyOf(request.params.provider)
    let key: string | undefined
    let pending: PendingSsoLogin | undefined
    try {
      const cookie = flowCookie(app.csrf.isSecure(request), app.publishedPath)
      key = readFlowKey(request, cookie.name)
      const secrets = flowSecrets(key)
      const query = new URLSearchParams(splitTarget(request.url).query)
      checkAnswerIsOurs(query, secrets)
      reply.clearCookie(cookie.name, cookie.options)
      pending = await takePendingLogin(app, key, party)
      const identity = await party.finish(redirectUri(party), query, secrets, pending.created, pending.promptLogin)
      const user = await syncSsoAccount(app.store, app.accounts, party.config, identity, app.directory)
      await app.memberships.apply('sso', user, party.config.memberships, groupsClaim(identity.claims[party.config.claims.groups]))
      app.audit.auth(signingIn(user, request.ip, 'sso'), { operation: 'login', object: { type: 'user', id: user.id, name: user.username } })
      await startSession(app, request, reply, user, undefined, { provider: party.name, subject: identity.subject, sid: identity.sid, idToken: identity.idToken, freshLogin: identity.freshLogin })
      request.log.info({ sso: party.name, user: user.username }, 'single sign-on succeeded')
      // Checked again: the stored target may predate a stricter check, and a redirect is where it matters.
      return reply.redirect(sameOriginTarget(app.publicUrl, pending.next) ?? defaultNext(app, request), 302)
    } catch (error) {
      const next = pending ? pending.next : await nextOfRefused(app, request, party, key, error)
      return refuse(app, request, reply, party, error, next || undefined)
    }
  })

  // OpenID Connect Back-Channel Logout 1.0: the provider posts a logout token when a person signs out there, and the
  // sessions it names end on every process. Open, as the callback: only a token the provider signed ends anything.
  let lastTokenCleanup = 0
  api.post(`${ssoPath}:provider/backchannel-logout/`, {
    config: { access: 'open' },
    bodyLimit: LOGOUT_BODY_LIMIT,
    schema: { params: providerParam },
  }, async (request, reply) => {
    // 2.8: the answer, a refusal too, is not to be cached.
    reply.header('cache-control', 'no-store')
    const party = partyOf(request.params.provider)
    const logout = await party.checkLogoutToken(logoutTokenOf(request))
    const now = Date.now()
    if (now - lastTokenCleanup >= CLEANUP_INTERVAL_MS) {
      lastTokenCleanup = now
      await app.store.sso.deleteExpiredLogoutTokens(now)
    }
    const { taking, ended } = await app.sessions.endUpstream({ provider: party.name, sid: logout.sid, subject: logout.subject }, logout)
    if (taking === 'jti_reused') throw new SsoLogoutTokenInvalid('Another logout token with this jti was taken already.')
    // The very token again: the provider lost our answer and retries. It gets the same answer, and ends nothing more,
    // so a resend cannot end the sessions of a later sign-in with the same sid.
    if (taking === 'resent') {
      request.log.info({ sso: party.name }, 'single sign-on logout token from the provider taken already')
      return reply.code(200).send()
    }
    await auditUpstreamLogout(app, request, ended)
    request.log.info({ sso: party.name, sessions: ended.length }, 'single sign-on logout from the provider')
    return reply.code(200).send()
  })

  // The provider's redirect back after it signed the person out (`post_logout_redirect_uri`): the login page, saying so
  // when the `state` is this browser's sign-out. Nothing is ended or started here, so another `state` only loses the notice.
  api.get(`${ssoPath}:provider/logged-out/`, {
    config: { access: 'open' },
    exposeHeadRoute: false,
    schema: { params: providerParam },
  }, async (request, reply) => {
    const party = partyOf(request.params.provider)
    const cookie = logoutFlowCookie(app.csrf.isSecure(request), app.publishedPath)
    const key = request.cookies?.[cookie.name]
    const state = (request.query as Record<string, unknown>).state
    const ours = key !== undefined && FLOW_KEY.test(key) && typeof state === 'string' && isSameSecret(state, flowSecrets(key).state)
    if (key !== undefined) reply.clearCookie(cookie.name, cookie.options)
    if (!ours) request.log.info({ sso: party.name }, 'single sign-on sign-out came back with another state')
    return sendLoginPage(app, reply, 200, {
      csrfToken: app.csrf.ensureToken(request, reply),
      notice: ours ? `You have signed out, and out of ${party.config.label} too.` : undefined,
    })
  })

  return async (request, reply, upstream) => {
    const party = parties.get(upstream.provider)
    if (!party?.config.sign_out_at_provider) return undefined
    const key = newFlowKey()
    try {
      const url = await party.endSessionUrl(app.publicUrl + ssoLoggedOutPath(party.name), flowSecrets(key).state, upstream.idToken)
      if (!url) return undefined
      const cookie = logoutFlowCookie(app.csrf.isSecure(request), app.publishedPath)
      reply.setCookie(cookie.name, key, { ...cookie.options, maxAge: FLOW_SECONDS })
      return url.href
    } catch (error) {
      // The session here has ended already: a provider that cannot be reached (or names an unusable endpoint) leaves
      // the person signed out of Gatehouse only, as without the setting, and an operator a warning.
      if (!(error instanceof GatehouseError)) throw error
      request.log.warn({ sso: party.name, code: error.code, reason: boundedText(error.message) }, 'single sign-on sign-out at the provider skipped')
      return undefined
    }
  }
}

/** The one `logout_token` of a form body (2.5); anything else is no logout request. */
function logoutTokenOf(request: FastifyRequest): string {
  const body = request.body as Record<string, unknown> | undefined
  const token = mediaType(request) === 'application/x-www-form-urlencoded' ? body?.logout_token : undefined
  if (typeof token !== 'string' || token.length === 0) throw new SsoLogoutTokenInvalid('The request has no logout_token form field (or more than one).')
  if (token.length > MAX_LOGOUT_TOKEN) throw new SsoLogoutTokenInvalid('The logout token is longer than 16 KiB.')
  return token
}

/**
 * Each session the provider's logout ended is a change, always kept, as a logout's; and each person whose sessions
 * ended, a logout. The provider is the actor: the request came from its address, in nobody's name.
 */
async function auditUpstreamLogout(app: App, request: FastifyRequest, ended: readonly StoredSession[]): Promise<void> {
  const actor = { ...actorOf(request), method: 'sso' }
  for (const session of ended) app.audit.change(actor, 'delete', auditedSession(session), sessionFields(session))
  for (const userId of new Set(ended.map((session) => session.userId))) {
    const user = await app.store.users.findById(userId)
    if (user) app.audit.auth(actor, { operation: 'logout', object: { type: 'user', id: user.id, name: user.username } })
  }
}

/**
 * Where a browser refused before its sign-in was taken (a wrong `state`, say) was going, for the login page it gets:
 * its own sign-in's, found by its own cookie and left in place, so its genuine answer still signs in. Read only for a
 * page; the target is checked again as the login page checks one.
 */
async function nextOfRefused(app: App, request: FastifyRequest, party: SsoRelyingParty, key: string | undefined, error: unknown): Promise<string | undefined> {
  if (key === undefined || !(error instanceof GatehouseError) || !wantsHtml(request)) return undefined
  const pending = await app.store.sso.findLogin(flowKeyHash(key)).catch(() => undefined)
  if (!pending || pending.provider !== party.name || pending.expiresAt <= Date.now()) return undefined
  return sameOriginTarget(app.publicUrl, pending.next)
}

/**
 * Logs why a sign-in failed (with the provider's own words, which the person does not see), then answers:
 * a browser lands on the login page with the reason, ready to try again; other clients get the error.
 */
function refuse(app: App, request: FastifyRequest, reply: FastifyReply, party: SsoRelyingParty, error: unknown, next: string | undefined): FastifyReply {
  if (!(error instanceof GatehouseError)) throw error
  const cause = error.cause as { message?: unknown; code?: unknown; error?: unknown; error_description?: unknown } | undefined
  // fetch's own failure says only `fetch failed`: why (the provider's certificate refused, the connection refused, its
  // name unknown) is the failure under it.
  const reason = innermostCause(cause)
  // A 5xx means the provider or its configuration needs an operator's look; the rest is the person's.
  request.log[error.status >= 500 ? 'warn' : 'info']({
    sso: party.name,
    code: error.code,
    ...(cause ? { cause: { message: cause.message, code: cause.code, error: cause.error, error_description: cause.error_description } } : {}),
    ...(reason ? { reason: { message: boundedText(reason.message), code: (reason as { code?: unknown }).code } } : {}),
  }, 'single sign-on refused')
  if (!wantsHtml(request)) throw error
  // The request's log line names the code the JSON answer would carry, as for every other refusal shown as a page.
  request.gatehouse.code = error.code
  keepRetryAfter(reply, error)
  return sendLoginPage(app, reply, error.status, { csrfToken: app.csrf.ensureToken(request, reply), next, error: error.message })
}

/** The error at the end of `cause`'s chain of causes, if it has one below it. */
function innermostCause(cause: unknown): Error | undefined {
  let found: Error | undefined
  // A few levels at most: a chain that loops back on itself ends here all the same.
  let next = (cause as { cause?: unknown } | undefined)?.cause
  for (let depth = 0; next instanceof Error && depth < 8; depth++, next = next.cause) found = next
  return found
}

/** The key of this browser's sign-in under way, from its cookie of this connection's name. */
function readFlowKey(request: FastifyRequest, cookieName: string): string {
  const key = request.cookies?.[cookieName]
  if (key === undefined || !FLOW_KEY.test(key)) {
    throw new SsoLoginUnknown('This browser has no sign-in under way (it may have expired, or cookies are blocked). Start again.')
  }
  return key
}

/** Removes the sign-in from the database before the code is used, so a replayed callback finds nothing. */
async function takePendingLogin(app: App, key: string, party: SsoRelyingParty): Promise<PendingSsoLogin> {
  const pending = await app.store.sso.takeLogin(flowKeyHash(key))
  if (!pending || pending.provider !== party.name) {
    throw new SsoLoginUnknown()
  }
  if (pending.expiresAt <= Date.now()) throw new SsoLoginExpired()
  return pending
}
