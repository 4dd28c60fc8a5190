import type { FastifyInstance } from 'fastify'
import { createApp, type App } from '../app.ts'
import type { Config } from '../config/schema.ts'
import { ensureAdmin } from '../directory/bootstrap.ts'
import { buildServer, type ServerOptions } from '../server.ts'
import type { Store } from '../store/store.ts'
import { openConfiguredStore } from './actions.ts'

export interface StartOptions {
  /** How clients reach the gateway until it listens (then `app.publicUrl` may be set to the bound address). */
  publicUrl: string
  /** Where the first superuser's password comes from (GATEHOUSE_ADMIN_PASSWORD). */
  env?: NodeJS.ProcessEnv
  /** How often the event bus reads the log besides what it is told. */
  pollMs?: number
  server?: ServerOptions
  /** How many processes `serve --workers` runs, this one among them. */
  processes?: number
  /** Create the organizations and teams the demo configuration's rules name (serve --demo without --config). */
  seedDemo?: boolean
}

export interface Started {
  readonly store: Store
  readonly app: App
  readonly server: FastifyInstance
  /** The first superuser, when this start created it. */
  readonly admin: Awaited<ReturnType<typeof ensureAdmin>>
  /** Closes what was started besides the server: the demo upstreams, the app, the store. */
  close(): Promise<void>
}

/**
 * Everything `serve` starts before it listens, in its order: the store (migrated), the built-in demo upstreams,
 * the app, the first superuser, the demo's organizations and teams, the event bus, the HTTP server. Tests start
 * gateways through this too, so they run what `serve` runs. Whatever fails part way closes what was already started.
 */
export async function startGatehouse(config: Config, options: StartOptions): Promise<Started> {
  const store = await openConfiguredStore(config)
  let app: App | undefined
  const demos = await startDemoUpstreams(config, () => app?.publicUrl ?? options.publicUrl)
  const close = async () => {
    await Promise.all(demos.map((d) => d.close()))
    await app?.close()
    await store.close()
  }
  try {
    app = await createApp(config, store, { upstreams: new Map(demos.map((d) => [d.name, d.url])), publicUrl: options.publicUrl, processes: options.processes })
    // Refused (GATEHOUSE_ADMIN_PASSWORD breaks the password policy): the caller exits with the reason instead of hanging on open handles.
    const admin = await ensureAdmin(store, app.accounts, options.env)
    if (options.seedDemo) await (await import('../demo/seed.ts')).seedDemoAccess(app)
    await app.bus.start(options.pollMs)
    // An identity key another process created while this one started, before it heard news, is read now.
    await app.identity.reload()
    const server = await buildServer(app, options.server)
    const { unknown } = await store.database.migrationStatus()
    // Right during a rolling upgrade or a rollback; forgotten, this version would go on serving a schema it does not know.
    if (unknown.length) server.log.warn({ newer: unknown }, 'the database has migrations of a newer version; this one serves beside it')
    return { store, app, server, admin, close }
  } catch (error) {
    await close()
    throw error
  }
}

/** The built-in demo upstreams; their code (and its WebSocket library) loads only for a configuration that has them. */
async function startDemoUpstreams(config: Config, publicUrl: () => string) {
  const services = config.services.filter((s) => s.upstream === 'builtin:demo')
  if (!services.length) return []
  const { startDemoUpstream } = await import('../demo/upstream.ts')
  return Promise.all(services.map((s) => startDemoUpstream(s.name, publicUrl)))
}
