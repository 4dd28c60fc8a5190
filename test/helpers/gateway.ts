import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { App } from '../../src/app.ts'
import { startGatehouse } from '../../src/cli/start.ts'
import { demoConfigFile, loadConfigFile, validateConfig } from '../../src/config/load.ts'
import { listen } from '../../src/listener/listener.ts'
import { readTlsFiles } from '../../src/listener/tls.ts'
import type { Store } from '../../src/store/store.ts'

export const ADMIN_PASSWORD = 'admin-test-password'
export const repoRoot = new URL('../../', import.meta.url).pathname

export interface TestGateway {
  url: string
  app: App
  store: Store
  server: FastifyInstance
  dataDir: string
  /** fetch against the gateway; redirects are not followed, so tests see them. */
  fetch(path: string, init?: RequestInit): Promise<Response>
  close(): Promise<void>
}

export interface GatewayOptions {
  /** Overrides merged onto the demo configuration (top-level keys replace). */
  config?: Record<string, unknown>
  dataDir?: string
  databaseUrl?: string
  /** How often the event bus re-reads the log besides what it is told (default 200 ms). */
  pollMs?: number
  /** Collects the server's log lines, parsed, at level info (otherwise the log is silent unless TEST_LOG_LEVEL). */
  logLines?: Record<string, unknown>[]
  /** Collects the server's log lines as written, unparsed (instead of `logLines`). */
  rawLogLines?: string[]
  /** The level `logLines` are collected at (default info). */
  logLevel?: string
  /** Serve HTTPS with this certificate (test/helpers/certificates.ts) instead of plain HTTP. */
  tls?: { cert: string; key: string }
}

export function tempDir(prefix = 'gatehouse-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** The real server on a free loopback port, started as `serve` starts it, with the demo upstreams and an `admin` superuser. */
export async function startGateway(options: GatewayOptions = {}): Promise<TestGateway> {
  const ownDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? tempDir()
  const demo = loadConfigFile(demoConfigFile)
  const config = validateConfig({
    ...structuredClone(demo),
    server: { ...demo.server, port: 0, ...(options.tls ? { tls: { cert_file: options.tls.cert, key_file: options.tls.key } } : {}) },
    storage: { data_dir: dataDir, ...(options.databaseUrl ? { database: options.databaseUrl } : {}) },
    ...options.config,
  })
  const { logLines, rawLogLines } = options
  const tls = config.server.tls ? readTlsFiles(config.server.tls) : undefined
  const started = await startGatehouse(config, {
    publicUrl: config.server.public_url ?? 'http://127.0.0.1:0',
    env: { GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD },
    pollMs: options.pollMs ?? 200,
    server: {
      https: tls?.options,
      ...(rawLogLines
        ? { logLevel: options.logLevel ?? 'info', logStream: { write: (line: string) => void rawLogLines.push(line) } }
        : logLines
        ? { logLevel: options.logLevel ?? 'info', logStream: { write: (line: string) => void logLines.push(JSON.parse(line)) } }
        : { logLevel: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    },
  })
  const { app, store, server } = started
  const { url } = await listen(server, config, { host: '127.0.0.1', port: 0 }, tls)
  // As `serve` does: the listening address is the public URL only when none is configured.
  if (!config.server.public_url) app.publicUrl = url
  return {
    url,
    app,
    store,
    server,
    dataDir,
    fetch: (path, init) => fetch(url + path, { redirect: 'manual', ...init }),
    async close() {
      await server.close()
      await started.close()
      if (ownDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export function basic(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64')
}

export const adminAuth = { authorization: basic('admin', ADMIN_PASSWORD) }

export async function json(response: Response): Promise<any> {
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch {
    throw new Error(`expected JSON, got ${response.status}: ${text.slice(0, 200)}`)
  }
}

/** An error's JSON body without its `request_id`, which differs from one request to the next: two refusals compared. */
export async function refusalBody(response: Response): Promise<Record<string, unknown>> {
  const { request_id: id, ...body } = await json(response)
  assert.match(String(id), /^[\w.:=+-]{1,128}$/)
  return body
}

export interface GatewayProcess {
  url: string
  process: ChildProcess
  output: () => string
  stop(): Promise<void>
}

/** `bin/gatehouse serve` as a separate process, for behaviour that must hold across processes. */
export async function spawnGateway(args: string[], env: Record<string, string> = {}, { startMs = 20_000 }: { startMs?: number } = {}): Promise<GatewayProcess> {
  const child = spawn(join(repoRoot, 'bin/gatehouse'), ['serve', '--port', '0', ...args], {
    env: { ...process.env, GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD, GATEHOUSE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // A gateway that comes up after the test gave up on it would keep the test file running for good.
      child.kill('SIGKILL')
      reject(new Error(`gateway did not start:\n${output}`))
    }, startMs)
    child.stdout!.on('data', () => {
      const match = /Gatehouse listening on (\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited with ${code}:\n${output}`))
    })
  })
  return {
    url,
    process: child,
    output: () => output,
    // A process that a failed test left draining (or stuck) is killed after a while, so the test file can end.
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000)
      child.once('exit', () => {
        clearTimeout(kill)
        resolve()
      })
      child.kill('SIGTERM')
    }),
  }
}

export interface GatewayPair {
  dir: string
  first: GatewayProcess
  second: GatewayProcess
  stop(): Promise<void>
}

/**
 * Two demo `serve` processes sharing one database: by default an SQLite data directory of their own (removed
 * again by `stop`), or what `storageArgs` names (`--database postgres://...`); `env` is added to their environment.
 */
export async function spawnGatewayPair(storageArgs?: string[], env: Record<string, string> = {}): Promise<GatewayPair> {
  const dir = tempDir()
  const storage = storageArgs ?? ['--data-dir', dir]
  const started = await Promise.allSettled([spawnGateway(['--demo', ...storage], env), spawnGateway(['--demo', ...storage], env)])
  const failed = started.find((s) => s.status === 'rejected')
  if (failed) {
    // The one that did start must not outlive the test file (it would keep the runner waiting forever).
    await Promise.all(started.map((s) => s.status === 'fulfilled' && s.value.stop()))
    rmSync(dir, { recursive: true, force: true })
    throw failed.reason
  }
  const [first, second] = started.map((s) => (s as PromiseFulfilledResult<GatewayProcess>).value) as [GatewayProcess, GatewayProcess]
  return {
    dir,
    first,
    second,
    async stop() {
      await Promise.all([first.stop(), second.stop()])
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * runCli's options for a command run as another account than the tests' when they run as root, whom file permissions
 * do not bind (nobody); none otherwise.
 */
export const AS_ANOTHER_USER: { uid?: number; gid?: number } = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}

/** `dir`/data holding a migrated SQLite database, for a command to act on. */
export async function migratedDataDir(dir: string): Promise<string> {
  const data = join(dir, 'data')
  const migrated = await runCli(['migrate', '--data-dir', data])
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`)
  return data
}

/**
 * Runs bin/gatehouse to completion (as another user with `uid` and `gid`). Its standard output is read, or `stdout`:
 * a file descriptor it writes to instead, or `closed`, a pipe whose reader has gone before anything was written.
 */
export function runCli(args: string[], options: { input?: string | Buffer; env?: Record<string, string>; uid?: number; gid?: number; stdout?: number | 'closed' } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const stdio = ['pipe', typeof options.stdout === 'number' ? options.stdout : 'pipe', 'pipe'] as const
    const child = spawn(join(repoRoot, 'bin/gatehouse'), args, { env: { ...process.env, ...options.env }, stdio: [...stdio], uid: options.uid, gid: options.gid })
    let stdout = ''
    let stderr = ''
    if (options.stdout === 'closed') child.stdout!.destroy()
    else child.stdout?.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    child.stdin!.end(options.input ?? '')
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}
