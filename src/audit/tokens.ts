import type { TokenRecord } from '../store/tokens.ts'
import type { Actor } from './actor.ts'
import type { AuditTrail } from './trail.ts'

/** A personal token as the audit trail names it: by id and description (its value is a secret and never recorded). */
export function auditedToken(record: TokenRecord) {
  return { type: 'token', id: record.id, name: record.description || null }
}

/**
 * Records that every personal token of a user was revoked at once (`tokens/revoke/`, a new password with
 * `revoke_tokens`), and how many: `gatehouse_revocations_total` adds that many (`endedBy` in src/metrics/metrics.ts).
 */
export function recordTokensOfUserRevoked(audit: AuditTrail, actor: Actor, userId: number, revoked: number): void {
  audit.change(actor, 'delete', { type: 'token', name: `tokens of user ${userId}` }, { user: userId, revoked })
}

/** The token's fields the trail keeps for a creation, a change or a revocation. */
export function auditedTokenFields(record: TokenRecord) {
  return { user: record.userId, scope: record.scope, description: record.description, expires: new Date(record.expires).toISOString() }
}
