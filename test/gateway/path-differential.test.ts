import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { posix } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { adminAuth, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { startNginx } from '../helpers/nginx.ts'
import { exchange } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/**
 * Spellings of a path under `<prefix>public/` (open to anyone) or beside it that some server might read as one under
 * `<prefix>admin/` (denied by the rules): escapes of every kind, separators, dot segments, parameters, fragments,
 * controls, Unicode look-alikes and overlong UTF-8, absolute-form targets, runs of slashes.
 */
function spellings(prefix: string): string[] {
  const p = prefix
  return [
    `${p}public/x`, `${p}admin/x`, `${p}%61dmin/x`, `${p}%2561dmin/x`, `${p}ADMIN/x`, `${p}admin./x`, `${p}admin%2e/x`, `${p}admin%20/x`,
    `${p}public/../admin/x`, `${p}public/..%2fadmin/x`, `${p}public/..%2Fadmin/x`, `${p}public/%2e%2e/admin/x`, `${p}public/%2E%2E/admin/x`,
    `${p}public/.%2e/admin/x`, `${p}public/%2e./admin/x`, `${p}public/%2e%2e%2fadmin/x`, `${p}public/%252e%252e/admin/x`, `${p}public/%252e%252e%252fadmin/x`,
    `${p}public/..;/admin/x`, `${p}public/..%3b/admin/x`, `${p}public;x/../admin/x`, `${p}admin;x/x`, `${p}admin%3bx/x`,
    `${p}public/..\\admin/x`, `${p}public/..%5cadmin/x`, `${p}public/%5c..%5cadmin/x`, `${p}public\\..\\admin/x`,
    `${p}public/%c0%ae%c0%ae/admin/x`, `${p}public/..%c0%afadmin/x`, `${p}public/%e0%80%ae%e0%80%ae/admin/x`, `${p}public/%ef%bc%8e%ef%bc%8e/admin/x`,
    `${p}public/%u002e%u002e/admin/x`, `${p}public/x%00/../../admin/x`, `${p}public/%00/x`, `${p}public/%09/x`, `${p}public/%0a/x`, `${p}public/%0d%0a/x`,
    `${p}public/x#/../../admin/x`, `${p}public/x%23/../../admin/x`, `${p}public/x?/../../admin/x`, `${p}public/x%3f/../../admin/x`,
    `${p}public/x/../../admin/x`, `${p}public/x/./../../admin/x`, `${p}public//../admin/x`, `${p}public/.../admin/x`,
    `/${p}admin/x`, `${p.slice(0, -1)}//admin//x`, `//${p.slice(1)}public/x`, `${p}public/x/..`, `${p}public/x/%2e%2e`,
    `http://gw${p}admin/x`, `http://gw${p}public/../admin/x`, `HTTP://gw${p}public/x`, `http://gw/${p.slice(1)}public/%2e%2e/admin/x`,
    `*`, `${p}public/*`, `${p}admin/%2A`,
  ]
}

interface Outcome {
  status: number
  /** The service's reading of the path it received, when the request reached it. */
  read?: string
}

/**
 * What the rules judge must be what the service reads: every spelling a client may send is either refused by the
 * gateway, or reaches the service as a path the rules judged the same way (no anonymous request outside the public
 * paths, no admin request under the denied path), whatever the service makes of it. nginx as the service decodes
 * escapes, resolves dot segments and merges slashes before it routes (`$uri`); node:http takes the path as sent.
 */
describe('the path the rules judge is the path the service reads', () => {
  const dir = tempDir()
  let gw: TestGateway
  let nginx: ChildProcess
  let node: RecordingUpstream

  before(async () => {
    const port = await freePort()
    // The path as nginx routes it ($uri), and the target it received, in the body.
    nginx = await startNginx(dir, 'service', `server { listen 127.0.0.1:${port}; location / { default_type text/plain; return 200 "$uri\\n$request_uri"; } }`)
    node = await startRecordingUpstream((request, response) => {
      const body = `${request.url}\n${request.url}`
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
      response.end(body)
    })
    const rules = (prefix: string) => ({ public_paths: [`${prefix}public/*`], accepts: ['basic'], access: [{ deny: { paths: [`${prefix}admin/*`] } }, { allow: { users: ['admin'] } }] })
    gw = await startGateway({
      config: {
        services: [
          { name: 'ng', prefix: '/ng/', upstream: `http://127.0.0.1:${port}`, ...rules('/ng/') },
          { name: 'ngs', prefix: '/ngs/', upstream: `http://127.0.0.1:${port}/base`, strip_prefix: true, ...rules('/ngs/') },
          { name: 'nd', prefix: '/nd/', upstream: node.url, ...rules('/nd/') },
          // The general path (percent escapes, CORS) as well as the lean one.
          { name: 'cors', prefix: '/cors/', upstream: `http://127.0.0.1:${port}`, cors: { allowed_origins: ['https://app.example'] }, ...rules('/cors/') },
        ],
      },
    })
  })
  after(async () => {
    nginx.kill('SIGTERM')
    await gw.close()
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function send(target: string, authorization?: string): Promise<Outcome> {
    const raw = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}Connection: close\r\n\r\n`)
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1])
    const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
    if (status !== 200) {
      assert.ok(status >= 400 && status < 500, `${target}: ${status}`)
      assert.match(body, /"code":"[a-z_]+"/, `${target}: a JSON refusal`)
      return { status }
    }
    return { status, read: body.split('\n')[0] }
  }

  /**
   * The path a service reads of what it received: decoded, its dot segments resolved and slashes merged, as nginx's
   * `$uri` is and as a framework behind node:http may make it.
   */
  function readAs(received: string): string {
    return posix.normalize(decodeURIComponent(received.split('?')[0]!))
  }

  for (const [service, prefix, served] of [['nginx', '/ng/', '/ng/'], ['nginx, prefix stripped', '/ngs/', '/base/'], ['node:http', '/nd/', '/nd/'], ['nginx, the general path', '/cors/', '/cors/']] as const) {
    it(`${service}: lets no anonymous spelling out of the public paths, and no admin's into the denied one`, async () => {
      const reached: string[] = []
      for (const target of spellings(prefix)) {
        const anonymous = await send(target)
        if (anonymous.read !== undefined) {
          const read = readAs(anonymous.read)
          assert.ok(read.startsWith(`${served}public/`), `${target}: anonymous, the service read ${read}`)
          reached.push(target)
        }
        const admin = await send(target, adminAuth.authorization)
        if (admin.read !== undefined) {
          const read = readAs(admin.read)
          // Case is the path's own, as nginx's locations and the rules read it (docs/access.md).
          assert.ok(!read.startsWith(`${served}admin/`), `${target}: admin, the service read ${read}`)
        } else {
          assert.notEqual(admin.status, 401, `${target}: the admin's credentials were taken`)
        }
      }
      assert.ok(reached.includes(`${prefix}public/x`), 'a plain public path is served')
    })
  }
})
