import type { FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { type Settings, settingCategories, settingNames } from '../settings/definitions.ts'
import { changesSchema, withPlatformNames } from '../settings/platform-names.ts'
import type { SettingsChange } from '../settings/runtime.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'

/**
 * Run-time settings (src/settings/definitions.ts) in the platform's shape: `settings/` lists the categories,
 * `all` first; `settings/<category>/` reads and writes a flat object of the category's settings (by
 * Gatehouse's names and the platform's), and `DELETE` reverts them to their defaults. Superusers only; saved
 * changes apply on every process at once. `PATCH`/`PUT settings/` are `settings/all/`, as Gatehouse had them.
 */
export function settingsRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  const categories: [string, { name: string; settings: readonly (keyof Settings)[] }][] = [
    ['all', { name: 'All', settings: settingNames }],
    ...Object.entries(settingCategories),
  ]
  const index = Object.freeze({
    count: categories.length,
    next: null,
    previous: null,
    results: categories.map(([slug, { name }]) => ({ url: `${GATEWAY_API}/settings/${slug}/`, slug, name })),
  })
  api.get('/settings/', { config: superuser }, async () => index)

  /**
   * Every saved change goes to the audit trail with the settings before and after, as its own transaction read and
   * wrote them (never what this process holds, which other changes move too); one that changes nothing is not saved
   * and not recorded. The answer is the settings after the change.
   */
  const audited = async (request: FastifyRequest, change: Promise<SettingsChange>): Promise<Settings> => {
    const { before, after, changed } = await change
    if (changed.length) app.audit.change(actorOf(request), 'update', { type: 'settings' }, before, after)
    return after
  }

  for (const [slug, { settings }] of categories) {
    const shown = (values: Settings) => withPlatformNames(Object.fromEntries(settings.map((name) => [name, values[name]])))
    const save = { config: superuser, schema: { body: changesSchema(settings) } }
    const paths = slug === 'all' ? ['/settings/all/', '/settings/'] : [`/settings/${slug}/`]
    for (const path of paths) {
      api.patch(path, save, async (request) => shown(await audited(request, app.settings.update(request.body))))
      api.put(path, save, async (request) => shown(await audited(request, app.settings.update(request.body))))
    }
    api.get(`/settings/${slug}/`, { config: superuser }, async () => shown(app.settings.current))
    api.delete(`/settings/${slug}/`, { config: superuser }, async (request, reply) => {
      await audited(request, app.settings.reset(settings))
      return reply.code(204).send()
    })
  }
}
