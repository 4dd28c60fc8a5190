import { createServer } from 'node:net'
import { join } from 'node:path'
import { repoRoot, spawnGateway, type GatewayProcess } from './gateway.ts'

/** For gateway processes on "hosts" whose clocks disagree (test/fixtures/skewed-clock.mjs), each at an address known beforehand. */

/** The environment of a gateway or CLI process whose Date.now() runs `skewMs` off the machine's clock (negative: behind). */
export function skewedClock(skewMs: number): Record<string, string> {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(repoRoot, 'test/fixtures/skewed-clock.mjs')}`, CLOCK_SKEW_MS: String(skewMs) }
}

/** A port nothing listens on now, for a process whose public URL must be written into its configuration first. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/**
 * A demo gateway on `port` with `config` and the database at `databaseUrl`, asked at its own address (it reports the
 * public URL as the one it listens on), its clock skewed as `env` says.
 */
export async function spawnAtPort(config: string, databaseUrl: string, port: number, env?: Record<string, string>): Promise<GatewayProcess & { url: string }> {
  return { ...await spawnGateway(['--demo', '--config', config, '--database', databaseUrl, '--port', String(port)], env), url: `http://127.0.0.1:${port}` }
}
