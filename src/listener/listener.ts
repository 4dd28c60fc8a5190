import type { Server as HttpServer, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Config, TlsConfig } from '../config/schema.ts'
import { closeNow, drain, type DrainResult } from './drain.ts'
import { underSameCaps } from './address-shares.ts'
import { createHttpsRedirect } from './https-redirect.ts'
import { explainListenError } from './listen-errors.ts'
import { TlsReloader, type TlsCredentials } from './tls.ts'

/**
 * Where connections come in: the gateway's port (plain HTTP, or HTTPS with certificates that reload in
 * place), the optional HTTP port that only redirects to HTTPS, and the way out again (a drain on shutdown).
 * `serve` uses this; the request handling itself is src/server.ts.
 */
export interface Listening {
  /** The gateway's URL from the address it is bound to (https when it serves TLS). */
  readonly url: string
  /** The plain-HTTP port that redirects to HTTPS, when configured. */
  readonly redirectUrl: string | undefined
  /** Re-reads the TLS files now (SIGHUP); false when there is no TLS or the new files are unusable. */
  reloadTls(why: string): boolean
  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number, cutNow: AbortSignal): Promise<DrainResult>
}

export interface ListenAddress {
  host: string
  port: number
}

export async function listen(server: FastifyInstance, config: Config, address: ListenAddress, tls?: TlsCredentials): Promise<Listening> {
  const tlsConfig = tls ? config.server.tls : undefined
  if (tlsConfig) addHsts(server, tlsConfig)
  await listenQuietly(server, address)
  const url = urlOf(tls ? 'https' : 'http', server.server.address() as AddressInfo)
  const reloader = tlsConfig ? new TlsReloader(server.server as unknown as TlsServer, tlsConfig, server.log, tls, config.server.public_url) : undefined
  if (tlsConfig?.watch) reloader!.watch()

  let redirect: HttpServer | undefined
  if (tlsConfig?.redirect_http_port !== undefined) {
    const publicUrl = config.server.public_url
    redirect = createHttpsRedirect({
      origin: publicUrl ? new URL(publicUrl).origin : undefined,
      httpsPort: (server.server.address() as AddressInfo).port,
    })
    underSameCaps(redirect, server.server)
    await new Promise<void>((resolve, reject) => {
      redirect!.once('error', (error) => reject(explainListenError(error, { host: 'server.host', port: 'server.tls.redirect_http_port' }, address.host, tlsConfig.redirect_http_port!)))
      redirect!.listen({ host: address.host, port: tlsConfig.redirect_http_port }, resolve)
    })
  }

  return {
    url,
    redirectUrl: redirect ? urlOf('http', redirect.address() as AddressInfo) : undefined,
    reloadTls: (why) => reloader?.reload(why) ?? false,
    async close(graceMs, cutNow) {
      reloader?.close()
      const [result] = await Promise.all([drain(server, graceMs, cutNow), redirect ? closeNow(redirect) : undefined])
      return result
    },
  }
}

/**
 * Fastify announces each address it binds ("Server listening at ...") at info. `serve` prints its own first line
 * (`Gatehouse listening on URL`, which scripts wait for) and the addresses in its summary, so that announcement is
 * left out: the hooks that run when the server gets ready log as usual, and only the binding runs below info.
 */
async function listenQuietly(server: FastifyInstance, address: ListenAddress): Promise<void> {
  await server.ready()
  const level = server.log.level
  if (level === 'trace' || level === 'debug' || level === 'info') server.log.level = 'warn'
  try {
    await server.listen(address)
  } catch (error) {
    throw explainListenError(error, { host: 'server.host', port: 'server.port' }, address.host, address.port)
  } finally {
    server.log.level = level
  }
}

/**
 * RFC 6797: every HTTPS response carries Strict-Transport-Security. Set on the raw response before Fastify
 * handles the request, so proxied responses, errors and the UI all get it, for one header write per request.
 */
function addHsts(server: FastifyInstance, tls: TlsConfig): void {
  const value = strictTransportSecurity(tls)
  const setHsts = (_request: unknown, response: ServerResponse) => response.setHeader('strict-transport-security', value)
  // Node hands a request with `Expect` to its own events instead of 'request': their answers carry it too.
  for (const event of ['request', 'checkContinue', 'checkExpectation'] as const) server.server.prependListener(event, setHsts)
}

/** The Strict-Transport-Security value `server.tls` asks for. */
export function strictTransportSecurity(tls: TlsConfig): string {
  return `max-age=${tls.hsts_max_age_seconds}${tls.hsts_include_subdomains ? '; includeSubDomains' : ''}`
}

function urlOf(scheme: 'http' | 'https', address: AddressInfo): string {
  return `${scheme}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
}
