import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { pushRevocationRecorded } from '../audit/realms.ts'
import { NotFound } from '../errors.ts'
import type { Realm } from '../oidc/realm.ts'
import type { GatewayApi } from './gateway-api.ts'

const realmParam = z.object({ realm: z.string() })

/**
 * Keycloak's realm list and its admin actions on every session of a realm, at its admin API's paths
 * (RealmsAdminResource, RealmAdminResource), for superusers: `logout-all` ends them all and tells the clients' admin URLs (keycloak-connect refuses every older
 * token), `push-revocation` tells those URLs the realm's not-before again. Both answer Keycloak's GlobalRequestResult.
 */
export function realmSessionRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  const realmOf = (name: string): Realm => {
    const realm = app.oidc.get(name)
    if (!realm) throw new NotFound('Realm not found.')
    return realm
  }

  // Keycloak's realm list (RealmsAdminResource), with the members of its RealmRepresentation Gatehouse has: what the web
  // interface offers `logout-all` for.
  api.get('/admin/realms', { config: superuser }, async () => Promise.all(app.oidc.all().map(async (realm) => ({
    id: realm.name, realm: realm.name, enabled: true, notBefore: await realm.notBefore(),
  }))))

  api.post('/admin/realms/:realm/logout-all', { config: superuser, schema: { params: realmParam } }, async (request) => {
    const realm = realmOf(request.params.realm)
    const { result, gatewaySessionsEnded } = await realm.logoutAll()
    app.audit.change(actorOf(request), 'delete', { type: 'session', name: `sessions of realm ${realm.name}` }, { ended: gatewaySessionsEnded }, { realm: realm.name, ...result })
    return result
  })

  api.post('/admin/realms/:realm/push-revocation', { config: superuser, schema: { params: realmParam } }, async (request) => pushRevocationRecorded(app.audit, actorOf(request), realmOf(request.params.realm)))
}
