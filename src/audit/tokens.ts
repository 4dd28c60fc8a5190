import type { TokenRecord } from '../store/tokens.ts'

/** A personal token as the audit trail names it: by id and description (its value is a secret and never recorded). */
export function auditedToken(record: TokenRecord) {
  return { type: 'token', id: record.id, name: record.description || null }
}

/** The token's fields the trail keeps for a creation, a change or a revocation. */
export function auditedTokenFields(record: TokenRecord) {
  return { user: record.userId, scope: record.scope, description: record.description, expires: new Date(record.expires).toISOString() }
}
