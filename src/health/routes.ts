import type { FastifyInstance } from 'fastify'
import type { App } from '../app.ts'
import { MethodNotAllowed } from '../errors.ts'
import { Readiness } from './readiness.ts'

/**
 * Probes for load balancers and Kubernetes, open to anyone like the platform's `ping/` (which stays as it is):
 * `/healthz` says the process is alive and answers from memory; `/readyz` says whether it should get traffic
 * (src/health/readiness.ts), 200 or 503, and 503 from the moment shutdown starts draining (a probe on a
 * kept-alive connection still reaches it then). Neither reveals an address, a version or an error message.
 * Their other methods are answered as the API answers its paths' (src/api/methods.ts): `OPTIONS` with `Allow`, the
 * rest 405 naming the methods they have, rather than 404 as if there were no such path.
 */
export function registerHealthRoutes(server: FastifyInstance, app: App): void {
  const readiness = new Readiness(app, app.config.server.readiness_timeout_ms)
  let draining = false
  server.addHook('preClose', async () => {
    draining = true
  })

  server.get('/healthz', async (_request, reply) => {
    reply.headers(PROBE_HEADERS)
    return { status: 'UP', checks: [] }
  })

  server.get('/readyz', async (_request, reply) => {
    reply.headers(PROBE_HEADERS)
    if (draining) {
      reply.code(503)
      return { code: 'not_ready', detail: 'Not ready: shutting down.', status: 'DOWN', checks: [], upstreams: [] }
    }
    const report = await readiness.check()
    const body = { status: report.ready ? 'UP' : 'DOWN', checks: report.checks, upstreams: report.upstreams }
    if (report.ready) return body
    const failing = report.checks.filter((check) => check.status === 'DOWN').map((check) => `${check.name} (${String(check.data.reason)})`)
    reply.code(503)
    return { code: 'not_ready', detail: `Not ready: ${failing.join(', ')}.`, ...body }
  })

  for (const url of ['/healthz', '/readyz']) {
    server.options(url, async (_request, reply) => {
      reply.headers(PROBE_HEADERS).header('allow', PROBE_METHODS.join(', '))
      // They read no request body.
      return { renders: ['application/json'], parses: [] }
    })
    server.route({
      method: ['POST', 'PUT', 'PATCH', 'DELETE'],
      url,
      handler: async (request) => {
        throw new MethodNotAllowed(request.method, PROBE_METHODS)
      },
    })
  }
}

const PROBE_METHODS = ['GET', 'HEAD', 'OPTIONS']

/** A probe's answer is never kept, and says `nosniff` as every answer the gateway writes itself does (src/errors.ts). */
const PROBE_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }
