import type { Actor } from './actor.ts'
import type { AuditTrail } from './trail.ts'

/** What `push-revocation` needs of a realm (src/oidc/realm.ts), so that the trail depends on no realm code. */
interface RevocationPusher {
  readonly name: string
  notBefore(): Promise<number>
  pushRevocation(): Promise<{ successRequests?: string[]; failedRequests?: string[] }>
}

/**
 * Keycloak's `push-revocation`, recorded as Keycloak records it (RealmAdminResource `pushRevocation`: an admin event
 * with the GlobalRequestResult) and with the not-before pushed: the API and the CLI both push through here. The
 * not-before is read just before the push reads it again; a `logout-all` between the two would be recorded apart.
 */
export async function pushRevocationRecorded(trail: AuditTrail, actor: Actor, realm: RevocationPusher) {
  const notBefore = await realm.notBefore()
  const result = await realm.pushRevocation()
  trail.realmAction(actor, realm.name, { action: 'push-revocation', not_before: notBefore, ...result })
  return result
}
