import { join } from 'node:path'
import { repoRoot, spawnGateway, type GatewayProcess } from './gateway.ts'
import { freePort } from './free-port.ts'

/** For gateway processes on "hosts" whose clocks disagree (test/fixtures/skewed-clock.mjs), each at an address known beforehand. */

/** The environment of a gateway or CLI process whose Date.now() runs `skewMs` off the machine's clock (negative: behind). */
export function skewedClock(skewMs: number): Record<string, string> {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(repoRoot, 'test/fixtures/skewed-clock.mjs')}`, CLOCK_SKEW_MS: String(skewMs) }
}

/**
 * A demo gateway on `port` with `config` and the database at `databaseUrl`, asked at its own address (it reports the
 * public URL as the one it listens on), its clock skewed as `env` says.
 */
export async function spawnAtPort(config: string, databaseUrl: string, port: number, env?: Record<string, string>): Promise<GatewayProcess & { url: string }> {
  return { ...await spawnGateway(['--demo', '--config', config, '--database', databaseUrl, '--port', String(port)], env), url: `http://127.0.0.1:${port}` }
}
