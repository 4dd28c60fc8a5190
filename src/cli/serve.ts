import type { AddressInfo } from 'node:net'
import { Command, Option } from 'commander'
import { createApp } from '../app.ts'
import { startDemoUpstream, type DemoUpstream } from '../demo/upstream.ts'
import { ensureAdmin } from '../directory/bootstrap.ts'
import { buildServer } from '../server.ts'
import { addStorageOptions, openConfiguredStore, resolveConfig, UsageError, type StorageOptions } from './common.ts'

interface ServeOptions extends StorageOptions {
  host?: string
  port?: string
}

export function serveCommand(): Command {
  return addStorageOptions(new Command('serve')
    .description('run the gateway')
    .option('--demo', 'use the demo configuration (unless --config is given) and start the built-in demo upstreams')
    .option('--host <address>', 'address to listen on (default: from the config, 127.0.0.1)')
    .addOption(new Option('--port <port>', 'port to listen on (default: from the config, 8080)').argParser(parsePort)))
    .action(serve)
}

function parsePort(value: string): string {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got "${value}"`)
  return value
}

async function serve(options: ServeOptions): Promise<void> {
  const config = resolveConfig(options)
  const host = options.host ?? config.server.host
  const port = options.port === undefined ? config.server.port : Number(options.port)
  const demoServices = config.services.filter((s) => s.upstream === 'builtin:demo')
  if (demoServices.length && !options.demo) {
    throw new UsageError(`services ${demoServices.map((s) => s.name).join(', ')} use builtin:demo upstreams, which run only with --demo`)
  }

  const store = await openConfiguredStore(config)
  let publicUrl = config.server.public_url ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  const demos: DemoUpstream[] = await Promise.all(demoServices.map((s) => startDemoUpstream(s.name, () => publicUrl)))
  const app = await createApp(config, store, { upstreams: new Map(demos.map((d) => [d.name, d.url])), publicUrl })
  let admin: Awaited<ReturnType<typeof ensureAdmin>>
  try {
    admin = await ensureAdmin(store, app.accounts)
  } catch (error) {
    // Refused (GATEHOUSE_ADMIN_PASSWORD breaks the password policy): exit with the reason instead of hanging on open handles.
    await Promise.all(demos.map((d) => d.close()))
    await app.close()
    await store.close()
    throw error
  }
  await app.bus.start()
  const server = await buildServer(app)
  await server.listen({ host, port })
  const address = server.server.address() as AddressInfo
  if (!config.server.public_url) {
    publicUrl = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
    app.publicUrl = publicUrl
  }
  if (admin?.generatedPassword) {
    process.stderr.write(`Created superuser "admin" with password: ${admin.generatedPassword}\n(shown once; set GATEHOUSE_ADMIN_PASSWORD to choose it)\n`)
  }
  process.stdout.write(`Gatehouse listening on ${publicUrl} (${store.database.dialect})\n`)

  const stop = async () => {
    await server.close()
    await Promise.all(demos.map((d) => d.close()))
    await app.close()
    await store.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
