import type { FastifyReply } from 'fastify'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { type AccountDisabled, InvalidSession, Unauthenticated } from '../errors.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { CsrfPolicy } from './csrf.ts'
import type { Credential } from './principal.ts'
import type { SessionManager } from './session-manager.ts'
import { isSafeMethod } from '../http/negotiation.ts'

export const SESSION_COOKIE = 'gateway_sessionid'

/**
 * The `gateway_sessionid` cookie set by the login endpoint (src/api/login.ts). Cookies are sent by browsers
 * on their own, so an unsafe method (POST, PUT, PATCH, DELETE) must also pass the CSRF check here; the
 * credentials a client adds deliberately (basic, token, OIDC) need none.
 */
export class SessionAuthenticator implements Authenticator {
  readonly id = 'session' as const
  readonly reads = 'cookie' as const
  readonly #sessions: SessionManager
  readonly #csrf: CsrfPolicy

  constructor(sessions: SessionManager, csrf: CsrfPolicy) {
    this.#sessions = sessions
    this.#csrf = csrf
  }

  async authenticate(request: GatewayRequest): Promise<Credential | NotMine> {
    const sessionId = request.cookies?.[SESSION_COOKIE]
    if (!sessionId) return NOT_MINE
    let session
    try {
      session = await this.#sessions.resolve(sessionId)
    } catch (error) {
      throw withClearedSessionCookie(error)
    }
    if (!isSafeMethod(request.method)) this.#csrf.check(request)
    return { userId: session.userId, method: 'session', sessionId: session.keyHash, issuedAt: session.created, freshSignIn: session.freshSignIn }
  }

  async accountRefused(credential: Credential, refusal: AccountDisabled): Promise<void> {
    await this.#sessions.end(credential.sessionId!)
    withClearedSessionCookie(refusal)
  }

  async issuedBeforeAccount(credential: Credential): Promise<Unauthenticated> {
    await this.#sessions.end(credential.sessionId!)
    return withClearedSessionCookie(new InvalidSession())
  }
}

/** `Set-Cookie` for a new or extended session: the cookie lives exactly as long as the session. */
export function setSessionCookie(reply: FastifyReply, sessionId: string, maxAgeSeconds: number, secure: boolean): void {
  reply.setCookie(SESSION_COOKIE, sessionId, { path: '/', httpOnly: true, sameSite: 'lax', secure, maxAge: maxAgeSeconds })
}

export function clearSessionCookie(reply: FastifyReply, secure: boolean): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure })
}

/** A refused session cookie is also deleted from the browser, so it is not sent again. */
function withClearedSessionCookie<T>(error: T): T {
  if (error instanceof Unauthenticated) {
    error.headers['set-cookie'] = `${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax`
  }
  return error
}
