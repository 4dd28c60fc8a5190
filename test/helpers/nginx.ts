import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { codeBlocks, replaced } from './docs.ts'

/**
 * A throwaway nginx (Debian package `nginx`) with one worker, its own prefix directory and the given `http { }`
 * body, in the foreground so it ends with whoever started it (the tests, the benchmark).
 */
export async function startNginx(dir: string, name: string, http: string): Promise<ChildProcess> {
  const prefix = join(dir, name)
  mkdirSync(join(prefix, 'logs'), { recursive: true })
  const config = join(prefix, 'nginx.conf')
  writeFileSync(config, [
    'daemon off;',
    // As root, nginx runs its worker as nobody, which cannot enter a private temporary directory (its caches live there).
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    'pid nginx.pid;',
    'error_log logs/error.log warn;',
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
  // nginx prints nothing when it starts: wait a moment, then make sure it is still running.
  await new Promise((resolve) => setTimeout(resolve, 300))
  if (child.exitCode !== null) throw new Error(`nginx ${name} did not start: ${errors}`)
  return child
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

/** A port free right now on 127.0.0.1, for servers (nginx, Caddy) whose configuration must name theirs. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
}

/** Where the documented nginx configuration (docs/forward-auth.md) is to listen and find Gatehouse and the service. */
export interface ForwardAuthSite {
  port: number
  /** host:port of each. */
  gateway: string
  service: string
  /** The decision cache's directory, for the configuration with the 1 s decision cache; without it, no cache. */
  cacheDir?: string
}

/**
 * The nginx `auth_request` configuration docs/forward-auth.md documents, as an `http { }` body at these addresses:
 * the suite and the benchmark run it as written there.
 */
export function forwardAuthNginx({ port, gateway, service, cacheDir }: ForwardAuthSite): string {
  const [site, cacheInHttp, cacheInLocation] = codeBlocks('docs/forward-auth.md', 'nginx').map((block) => block.code)
  const addresses = replaced(site!, [['listen 80;', `listen 127.0.0.1:${port};`], ['127.0.0.1:8080', gateway], ['127.0.0.1:9000', service]])
  if (cacheDir === undefined) return addresses
  const location = 'location = /_gatehouse {\n'
  return `${replaced(cacheInHttp!, [['/var/cache/nginx/gatehouse', cacheDir]])}\n${replaced(addresses, [[location, `${location}${cacheInLocation}\n`]])}`
}
