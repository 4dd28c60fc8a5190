import type { FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { settingsChanges } from '../settings/definitions.ts'
import type { GatewayApi } from './gateway-api.ts'

/** Run-time settings (src/settings/definitions.ts): superusers read and change them; saved changes apply at once. */
export function settingsRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  api.get('/settings/', { config: superuser }, async () => app.settings.current)

  const save = { config: superuser, schema: { body: settingsChanges } }
  const update = async (request: FastifyRequest, changes: Parameters<App['settings']['update']>[0]) => {
    const before = { ...app.settings.current }
    const after = await app.settings.update(changes)
    app.audit.change(actorOf(request), 'update', { type: 'settings' }, before, after)
    return after
  }
  api.patch('/settings/', save, async (request) => update(request, request.body))
  api.put('/settings/', save, async (request) => update(request, request.body))
}
