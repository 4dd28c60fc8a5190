import type { FastifyInstance } from 'fastify'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { App } from '../app.ts'
import { answerClientError, errorBody, normalizeError } from '../errors.ts'
import { createServer } from '../http/node-http.ts'
import { boundUnreadAnswer } from '../http/unread-answers.ts'
import { millisecondsOf } from '../config/durations.ts'
import { underSameCaps } from '../listener/address-shares.ts'
import { explainListenError } from '../listener/listen-errors.ts'
import { serverTimeouts } from '../listener/timeouts.ts'
import { metricsAccess, namesUnjudgedClient } from './access.ts'

/**
 * Serves /metrics in Prometheus's text format: on the main port by default, or, with `metrics.port`, only on a
 * listener of its own that opens and closes with the server, under the gateway port's connection caps and time
 * limits (`server.timeouts`: a scraper has no claim on more connections, or on longer, than any other client). Either way the access rules of src/metrics/access.ts
 * apply; on the main port the client address is the trusted one (`request.ip`, which honours `server.trusted_proxies`), so a
 * reverse proxy in front cannot make every client look local, and on both a scrape that names a client other than the
 * one judged is refused.
 */
export function registerMetrics(server: FastifyInstance, app: App): void {
  const options = app.config.metrics
  if (!options.enabled) return
  const check = metricsAccess(options)
  if (options.port === undefined) {
    server.get('/metrics', async (request, reply) => {
      check(request.ip, request.headers.authorization, namesUnjudgedClient(request.headers, request.socket.remoteAddress, app.trustsProxy, true))
      const { contentType, text } = await app.metrics.scrape()
      reply.headers(SCRAPE_HEADERS).type(contentType)
      return text
    })
    return
  }
  let listener: Server | undefined
  // onReady, not onListen: listen() waits for it, so the URL is known when serve prints where it listens.
  server.addHook('onReady', async () => {
    // Node's own limits (60 s for the headers, checked every 30 s) let a client that never finishes its request hold
    // one of the connections the two ports share for up to 90 s.
    listener = createServer(serverTimeouts(app.config.server, undefined).http!, (request, response) => {
      boundUnreadAnswer(response, millisecondsOf(app.config.server.timeouts.send_seconds))
      const answer = (status: number, type: string, body: string, headers: Record<string, string | string[]> = {}) => {
        response.writeHead(status, { 'content-type': type, ...SCRAPE_HEADERS, ...headers }).end(body)
      }
      const path = (request.url ?? '').split('?', 1)[0]
      if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
        return answer(404, 'application/json; charset=utf-8', JSON.stringify({ code: 'not_found', detail: 'Only GET /metrics is served here.' }))
      }
      try {
        check(request.socket.remoteAddress, request.headers.authorization, namesUnjudgedClient(request.headers, request.socket.remoteAddress, app.trustsProxy, false))
      } catch (error) {
        const refused = normalizeError(error)
        return answer(refused.status, 'application/json; charset=utf-8', JSON.stringify(errorBody(refused)), refused.headers)
      }
      app.metrics.scrape().then(({ contentType, text }) => answer(200, contentType, text), () => answer(500, 'application/json; charset=utf-8', '{"code":"internal_error","detail":"Internal server error."}'))
    })
    // A request that times out or is not valid HTTP gets the gateway's JSON answer, as on its port: Node's own has no body.
    listener.on('clientError', answerClientError)
    underSameCaps(listener, server.server)
    await new Promise<void>((resolve, reject) => {
      listener!.once('error', (error) => reject(explainListenError(error, { host: 'metrics.host', port: 'metrics.port' }, options.host, options.port!)))
      listener!.listen(options.port, options.host, resolve)
    })
    const address = listener.address() as AddressInfo
    app.metrics.listenerUrl = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/metrics`
  })
  server.addHook('onClose', async () => {
    if (!listener) return
    listener.closeAllConnections()
    await new Promise((resolve) => listener!.close(resolve))
  })
}

/**
 * Every answer about /metrics, on either port, refusals included: never kept, and `nosniff` as every answer the
 * gateway writes itself says (src/errors.ts), so that no browser takes the text for a script or a page.
 */
const SCRAPE_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }
