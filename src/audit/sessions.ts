/** A login session as the audit trail names it: by id (the identifier itself is a secret and never recorded). */
export function auditedSession(session: { id: number }) {
  return { type: 'session', id: session.id }
}

/** The session's fields the trail keeps for a start or an end. */
export function sessionFields(session: { userId: number; expiresAt: number; ip?: string; userAgent?: string }) {
  return { user: session.userId, expires_on: new Date(session.expiresAt).toISOString(), ip: session.ip ?? null, user_agent: session.userAgent ?? null }
}
