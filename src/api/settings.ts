import type { App } from '../app.ts'
import { settingsChanges } from '../settings/definitions.ts'
import type { GatewayApi } from './gateway-api.ts'

/** Run-time settings (src/settings/definitions.ts): superusers read and change them; saved changes apply at once. */
export function settingsRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  api.get('/settings/', { config: superuser }, async () => app.settings.current)

  const save = { config: superuser, schema: { body: settingsChanges } }
  api.patch('/settings/', save, async (request) => app.settings.update(request.body))
  api.put('/settings/', save, async (request) => app.settings.update(request.body))
}
