import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * A throwaway Caddy (Debian package `caddy`) serving the given site blocks over plain HTTP, without its admin
 * endpoint and with its storage in `dir`, so several can run side by side. Resolves once it listens on `port`.
 */
export async function startCaddy(dir: string, port: number, sites: string): Promise<ChildProcess> {
  const home = join(dir, 'caddy')
  mkdirSync(home, { recursive: true })
  const caddyfile = join(home, 'Caddyfile')
  writeFileSync(caddyfile, `{\n  admin off\n  auto_https off\n  storage file_system ${home}/storage\n}\n${sites}\n`)
  const child = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    env: { ...process.env, HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (data: Buffer) => { output += data })
  child.stderr!.on('data', (data: Buffer) => { output += data })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`caddy did not start: ${output}`)
    const up = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) }).then(() => true, () => false)
    if (up) return child
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  child.kill('SIGKILL')
  throw new Error(`caddy did not listen on ${port}: ${output}`)
}
