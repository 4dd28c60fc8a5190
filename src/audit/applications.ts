import type { Application } from '../store/applications.ts'
import type { Actor } from './actor.ts'
import type { AuditObject, AuditTrail } from './trail.ts'

/** An OAuth2 application as the audit trail names it: by id and name (its secret is never recorded, and masked by name besides). */
export function auditedApplication(application: Application): AuditObject {
  return { type: 'application', id: application.id, name: application.name }
}

/**
 * Records a confidential application's new secret, from the API or the command line alike: an update of
 * `client_secret` (its stored hash, masked by name) with until when the previous one still authenticates.
 */
export function recordSecretRotated(audit: AuditTrail, actor: Actor, before: Application, after: Application, previousUntil: number | null): void {
  audit.change(actor, 'update', auditedApplication(after), { client_secret: before.clientSecretHash }, {
    client_secret: after.clientSecretHash, previous_secret_expires: previousUntil === null ? null : new Date(previousUntil).toISOString(),
  })
}
