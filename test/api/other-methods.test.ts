import assert from 'node:assert/strict'
import { type IncomingMessage, request } from 'node:http'
import { createRequire } from 'node:module'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/** A request fetch will not send (TRACE) or whose answer it would change (HEAD keeps no body to read). */
function raw(gw: TestGateway, method: string, path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    request(`${gw.url}${path}`, { method, headers }, (response) => {
      response.resume()
      resolve(response)
    }).on('error', reject).end()
  })
}

/** A service whose prefix lies between the API's root /admin/realms and its paths below it, one above it, one beside. */
function servicesAround(upstream: string) {
  return [
    { name: 'realm-tools', prefix: '/admin/realms/', upstream, accepts: ['basic'] },
    { name: 'admin-site', prefix: '/admin/', upstream, accepts: ['basic'] },
    { name: 'controller', prefix: '/api/controller/', upstream, accepts: ['basic'] },
  ]
}

describe('the answers to the API paths\' other methods, routed without a route of their own', () => {
  let upstream: RecordingUpstream
  let gw: TestGateway
  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({ config: { services: servicesAround(upstream.url) } })
  })
  after(async () => {
    await gw?.close()
    await upstream?.close()
  })

  it('answers HEAD on a path without GET with 405, on a spelling without the slash with the redirect, and other methods there with where the path is', async () => {
    const head = await raw(gw, 'HEAD', '/api/gateway/v1/tokens/revoke/', adminAuth)
    assert.equal(head.statusCode, 405)
    assert.equal(head.headers.allow, 'POST, OPTIONS')
    const unslashed = await raw(gw, 'HEAD', '/api/gateway/v1/users?x=1', adminAuth)
    assert.equal(unslashed.statusCode, 301)
    assert.equal(unslashed.headers.location, '/api/gateway/v1/users/?x=1')
    // Any other method is told where the path is; an OPTIONS has no body a redirect would lose, and is told alike.
    for (const method of ['POST', 'OPTIONS']) {
      const other = await gw.fetch('/api/gateway/v1/users', { method, headers: adminAuth, redirect: 'manual' })
      assert.equal(other.status, 404, method)
      assert.equal((await json(other)).detail, 'This URL ends with a slash: /api/gateway/v1/users/ (only a GET or HEAD is redirected there: send other requests to that URL itself).', method)
    }
  })

  it('matches a path as the router does: escapes decoded, a fixed segment before a parameter', async () => {
    const escaped = await gw.fetch('/api/gateway/v1/%75sers/', { method: 'PUT', headers: adminAuth })
    assert.equal(escaped.status, 405)
    assert.equal(escaped.headers.get('allow'), 'GET, POST, HEAD, OPTIONS')
    const item = await gw.fetch('/api/gateway/v1/users/1/', { method: 'POST', headers: adminAuth })
    assert.equal(item.status, 405)
    assert.equal(item.headers.get('allow'), 'GET, PUT, PATCH, DELETE, HEAD, OPTIONS')
    const trace = await raw(gw, 'TRACE', '/api/gateway/v1/users/1/', adminAuth)
    assert.equal(trace.statusCode, 405)
    // Longer than the router's limit for a parameter: no path of the API, whatever the method.
    const long = 'x'.repeat(101)
    assert.equal((await gw.fetch(`/api/gateway/v1/users/${long}/`, { headers: adminAuth })).status, 404)
    assert.equal((await raw(gw, 'TRACE', `/api/gateway/v1/users/${long}/`, adminAuth)).statusCode, 404)
    const unknown = await gw.fetch('/api/gateway/v1/no-such-thing/', { method: 'PUT', headers: adminAuth })
    assert.equal(unknown.status, 404)
    assert.equal((await json(unknown)).code, 'not_found')
  })

  it('still answers the API\'s methods before a service whose prefix covers or lies below its root', async () => {
    const before = upstream.seen.length
    const events = await gw.fetch('/admin/realms/platform/events', { method: 'PUT', headers: adminAuth })
    assert.equal(events.status, 405)
    assert.equal(events.headers.get('allow'), 'GET, HEAD, OPTIONS')
    const realms = await gw.fetch('/admin/realms', { method: 'DELETE', headers: adminAuth })
    assert.equal(realms.status, 405)
    assert.equal(upstream.seen.length, before)
    // Paths the API does not have stay the services'.
    const tool = await gw.fetch('/admin/realms/platform/tools/', { method: 'PUT', headers: adminAuth })
    assert.equal(tool.status, 200)
    const site = await gw.fetch('/admin/site/', { method: 'PUT', headers: adminAuth })
    assert.equal(site.status, 200)
    const proxied = await gw.fetch('/api/controller/v2/hosts/', { method: 'PUT', headers: adminAuth })
    assert.equal(proxied.status, 200)
    assert.deepEqual(upstream.seen.slice(before).map((seen) => seen.url), ['/admin/realms/platform/tools/', '/admin/site/', '/api/controller/v2/hosts/'])
  })
})

describe('the router constraint of the answers', () => {
  it('is added before the API\'s routes, so that the router inserts each route once', async () => {
    // find-my-way inserts every route it holds again when a constraint strategy is added (Router#_rebuild): added
    // after the API's routes, that was a second insertion of each, some 10-25 ms of every start.
    type Router = { routes: unknown[] }
    const { prototype: router } = createRequire(import.meta.resolve('fastify/package.json'))('find-my-way') as { prototype: Record<string, (this: Router, ...args: unknown[]) => unknown> }
    const insert = router._on!
    const insertions = new Map<Router, number>()
    router._on = function (...args) {
      insertions.set(this, (insertions.get(this) ?? 0) + 1)
      return insert.apply(this, args)
    }
    let gw: TestGateway | undefined
    try {
      gw = await startGateway()
      const [held, inserted] = [...insertions].map(([instance, count]) => [instance.routes.length, count]).sort(([a], [b]) => b! - a!)[0] ?? [0, 0]
      assert.ok(held! > 300, `the router seen holding the API's routes (${held})`)
      // The few routes added before the API's scope (its document's) are inserted again, not the API's own.
      assert.ok(inserted! - held! < 20, `${inserted} insertions for ${held} routes`)
      assert.equal((await gw.fetch('/api/gateway/v1/users/1/', { method: 'POST', headers: adminAuth })).status, 405)
    } finally {
      router._on = insert
      await gw?.close()
    }
  })
})
