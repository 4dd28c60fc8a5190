import type { FastifyReply, FastifyRequest } from 'fastify'
import { signingIn } from '../audit/actor.ts'
import { auditedSession, sessionFields } from '../audit/sessions.ts'
import type { AuditTrail } from '../audit/trail.ts'
import type { Accounts } from '../directory/accounts.ts'
import type { RuntimeSettings } from '../settings/runtime.ts'
import type { UpstreamSession } from '../store/sessions.ts'
import type { User } from '../store/users.ts'
import type { CsrfPolicy } from './csrf.ts'
import { setSessionCookie } from './session.ts'
import { storedOrigin, type ReplacedSession, type SessionManager } from './session-manager.ts'

/** What starting a session takes (the app has them all). */
export interface SessionParts {
  readonly sessions: SessionManager
  readonly accounts: Accounts
  readonly settings: RuntimeSettings
  readonly csrf: CsrfPolicy
  readonly audit: AuditTrail
}

/**
 * Starts a fresh session for a user who just proved who they are (password login, single sign-on): ends
 * the session the browser already had (by default the one the request came with), sets `gateway_sessionid` and a
 * new `csrftoken`. A single sign-on's session keeps what its provider's sign-out names it by (`upstream`).
 */
export async function startSession(app: SessionParts, request: FastifyRequest, reply: FastifyReply, user: User, previous = replacing(request.gatehouse.principal?.sessionId), upstream?: UpstreamSession): Promise<{ csrfToken: string; expiresAt: number; now: number; keyHash: string }> {
  const now = Date.now()
  const issuedAt = app.sessions.issueTime()
  const origin = { ip: request.ip, userAgent: request.headers['user-agent'] ?? '', upstream }
  // First: it refuses the login when the password it verified was changed meanwhile (Accounts.recordLogin).
  await app.accounts.recordLogin(user)
  // A session the browser already had is replaced, never kept next to the new one; the browser's realm sessions
  // stay signed in with the new one when it is the same person's (SessionManager.start).
  const { sessionId, session } = await app.sessions.start(user.id, origin, now, previous, issuedAt)
  // The audit entry says what was stored, within its bounds: a client's User-Agent may be 16 KB, and every login's entry is kept.
  app.audit.signInSession(signingIn(user, request.ip, 'session'), 'create', auditedSession(session), sessionFields({ ...session, ...storedOrigin(origin) }))
  setSessionCookie(reply, sessionId, app.settings.current.session_cookie_age, app.csrf.isSecure(request))
  return { csrfToken: app.csrf.rotate(request, reply), expiresAt: session.expiresAt, now, keyHash: session.keyHash }
}

function replacing(keyHash: string | undefined): ReplacedSession | undefined {
  return keyHash === undefined ? undefined : { keyHash }
}
