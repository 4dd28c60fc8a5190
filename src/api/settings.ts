import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'

/** Run-time settings (src/settings/definitions.ts): superusers read and change them; saved changes apply at once. */
export function settingsRoutes(api: FastifyInstance, app: App): void {
  api.get('/api/gateway/v1/settings/', { config: { access: 'superuser' } }, async () => app.settings.current)

  const save = async (request: FastifyRequest) => {
    const before = { ...app.settings.current }
    const after = await app.settings.update(request.body)
    app.audit.change(actorOf(request), 'update', { type: 'settings' }, before, after)
    return after
  }
  api.patch('/api/gateway/v1/settings/', { config: { access: 'superuser' } }, save)
  api.put('/api/gateway/v1/settings/', { config: { access: 'superuser' } }, save)
}
