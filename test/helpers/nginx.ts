import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { codeBlocks, replaced } from './docs.ts'
import { freePort } from './free-port.ts'

/** Where the configurations this module writes are to listen (bench/ imports it from here). */
export { freePort }

/**
 * A throwaway nginx (Debian package `nginx`) with one worker (or `workers`), its own prefix directory and the given
 * `http { }` body (and `main` lines before it, such as `load_module`), in the foreground so it ends with whoever
 * started it (the tests, the benchmark).
 */
export async function startNginx(dir: string, name: string, http: string, main = '', workers = 1): Promise<ChildProcess> {
  const prefix = join(dir, name)
  mkdirSync(join(prefix, 'logs'), { recursive: true })
  const config = join(prefix, 'nginx.conf')
  writeFileSync(config, [
    'daemon off;',
    // As root, nginx runs its worker as nobody, which cannot enter a private temporary directory (its caches live there).
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `worker_processes ${workers};`,
    'pid nginx.pid;',
    'error_log logs/error.log warn;',
    main,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy;`,
    `  fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;`,
    http,
    '}',
  ].join('\n'))
  const child = spawn('nginx', ['-p', prefix, '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let errors = ''
  child.stderr!.on('data', (data: Buffer) => { errors += data })
  // nginx prints nothing when it starts: it has started once every address it listens on takes a connection.
  const addresses = [...http.matchAll(/\blisten\s+(?:([\d.]+):)?(\d+)/g)].map(([, host, port]) => ({ host: host ?? '127.0.0.1', port: Number(port) }))
  const deadline = Date.now() + 10_000
  for (const address of addresses) {
    while (!(await accepts(address))) {
      if (child.exitCode !== null) throw new Error(`nginx ${name} did not start: ${errors}`)
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`nginx ${name} did not listen on ${address.host}:${address.port}: ${errors}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  if (child.exitCode !== null) throw new Error(`nginx ${name} did not start: ${errors}`)
  return child
}

function accepts(address: { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(address, () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** The upstream every row ends at: nginx answering a tiny JSON body from memory. */
export const tinyJsonServer = (port: number): string => `
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }`

/** nginx as the proxy in front of that upstream, with keep-alive connections to it. */
export const proxyServer = (port: number, upstreamPort: number): string => `
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`

/** Where the documented nginx configuration (docs/forward-auth.md) is to listen and find Gatehouse and the service. */
export interface ForwardAuthSite {
  port: number
  /** host:port of each. */
  gateway: string
  service: string
  /** The decision cache's directory, for the configuration with the 1 s decision cache; without it, no cache. */
  cacheDir?: string
}

/** The nginx configuration docs/forward-auth.md documents, and the blocks it adds, at these addresses. */
function documentedNginx({ port, gateway, service }: ForwardAuthSite): { site: string; additions: string[] } {
  const [site, ...additions] = codeBlocks('docs/forward-auth.md', 'nginx').map((block) => block.code)
  return { site: replaced(site!, [['listen 80;', `listen 127.0.0.1:${port};`], ['127.0.0.1:8080', gateway], ['127.0.0.1:9000', service]]), additions }
}

/**
 * The nginx `auth_request` configuration docs/forward-auth.md documents, as an `http { }` body at these addresses:
 * the suite and the benchmark run it as written there.
 */
export function forwardAuthNginx(where: ForwardAuthSite): string {
  const { site, additions: [cacheInHttp, cacheInLocation] } = documentedNginx(where)
  if (where.cacheDir === undefined) return site
  const location = 'location = /_gatehouse {\n'
  return `${replaced(cacheInHttp!, [['/var/cache/nginx/gatehouse', where.cacheDir]])}\n${replaced(site, [[location, `${location}${cacheInLocation}\n`]])}`
}

/**
 * The same configuration with the Lua module's decisions in memory, as docs/forward-auth.md has it made: its
 * `http { }` lines added, and in `location /` its block in place of `auth_request` and its companions, whose
 * `@gatehouse_refused` location goes too. Needs `luaModules()` loaded.
 */
export function forwardAuthNginxLua(where: Omit<ForwardAuthSite, 'cacheDir'>): string {
  const { site, additions: [, , luaInHttp, luaInLocation] } = documentedNginx(where)
  const asking = replacedLines(site, ['    auth_request /_gatehouse;', '    error_page 401 = @gatehouse_refused;'], luaInLocation!)
  return `${luaInHttp}\n${replacedLines(asking, ['  # nginx acts only on 2xx, 401 and 403 from auth_request', '  }'], '')}`
}

/** `text` with the lines from the one starting with `first` to the next one starting with `last`, both included, replaced by `by`. */
function replacedLines(text: string, [first, last]: [string, string], by: string): string {
  const lines = text.split('\n')
  const start = lines.findIndex((line) => line.startsWith(first))
  const end = lines.findIndex((line, i) => i >= start && line.startsWith(last))
  if (start < 0 || end < 0) throw new Error(`the documented text no longer has the lines from ${JSON.stringify(first)} to ${JSON.stringify(last)}`)
  return [...lines.slice(0, start), ...(by ? [by] : []), ...lines.slice(end + 1)].join('\n')
}

/** Where the documented nginx configuration keeps allowed decisions: nowhere, in nginx's file cache, or in memory (Lua). */
export type Decisions = 'asked' | 'file cache' | 'memory'

/**
 * The documented nginx configuration keeping its decisions as told (the file cache in `dir`): its `http { }` body,
 * and the lines before it that load the Lua module where it needs them.
 */
export function forwardAuthConfiguration(where: Omit<ForwardAuthSite, 'cacheDir'>, decisions: Decisions, dir: string): { http: string; main: string } {
  if (decisions !== 'memory') return { http: forwardAuthNginx({ ...where, cacheDir: decisions === 'file cache' ? dir : undefined }), main: '' }
  const main = luaModules()
  if (main === undefined) throw new Error('the Lua module is not installed (apt-get install libnginx-mod-http-lua)')
  return { http: forwardAuthNginxLua(where), main }
}

/**
 * The `load_module` lines of Debian's `libnginx-mod-http-lua` (and the NDK it needs), which its package puts in the
 * `modules-enabled` directory the system's nginx.conf includes: this nginx.conf is the caller's own. Undefined when
 * the package is not installed.
 */
export function luaModules(): string | undefined {
  // `nginx -V` prints how it was built, the directory of its modules among it, on standard error.
  const modules = /--modules-path=(\S+)/.exec(spawnSync('nginx', ['-V'], { encoding: 'utf8' }).stderr ?? '')?.[1]
  if (modules === undefined) return undefined
  const files = ['ndk_http_module.so', 'ngx_http_lua_module.so'].map((file) => join(modules, file))
  return files.every((file) => existsSync(file)) ? files.map((file) => `load_module ${file};`).join('\n') : undefined
}
