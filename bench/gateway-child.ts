import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** The bench scripts' gateway: a checkout's `bin/gatehouse serve` as a child, once it says where it listens. */
export async function startGateway(checkout: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const { child, match } = await startChild(join(checkout, 'bin/gatehouse'), ['serve', ...args], env, /Gatehouse listening on (\S+)/)
  return { child, url: match }
}

/** A child process, once its output matches `ready` (resolving with the first group); rejected if it exits first. */
export function startChild(command: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; match: string }> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill()
      reject(new Error(`did not start: ${output}`))
    }, 60_000)
    const onData = (data: Buffer) => {
      output += data
      const match = ready.exec(output)?.[1]
      if (match) {
        clearTimeout(timer)
        resolve({ child, match })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${output}`)))
  })
}

const TICKS_PER_SECOND = 100

/** User and system time in µs of a process (`/proc/<pid>/stat`) or of one of its threads. */
export function cpuMicros(path: string): number {
  const fields = readFileSync(path, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND
}

/** Nine rules that do not match an administrator's GET (a team, an organization, a network, paths, methods...), then one that does. */
export const TEN_RULES = [
  { deny: { users: ['mallory', 'trudy'] } },
  { deny: { paths: ['/api/ruled/admin/*', '/api/ruled/internal/*'] } },
  { allow: { teams: ['Automation', 'Operations'] } },
  { allow: { organizations: ['Research'], methods: ['GET', 'HEAD'] } },
  { allow: { roles: ['Platform Auditor'], methods: ['GET'] } },
  { deny: { networks: ['10.0.0.0/8', '192.168.0.0/16'] } },
  { allow: { auth_methods: ['oidc'], scopes: ['api:read'] } },
  { deny: { methods: ['DELETE'], superuser: false } },
  { allow: { users: ['alice', 'bob', 'carol'] } },
  { allow: { superuser: true } },
]
