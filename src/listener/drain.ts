import type { Server } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { markCuttingAll } from '../http/answer-outcome.ts'

/**
 * Graceful shutdown: stop accepting connections, let the requests in flight finish within a grace period,
 * then cut whatever is left. Fastify's close stops the listener and answers requests that arrive on open
 * keep-alive connections with 503 and `Connection: close`; a connection whose request finishes during the
 * drain would stay open until the client's keep-alive ends, so idle connections are closed as they appear.
 */
export interface DrainResult {
  /** Connections still busy when the grace period ended (or a second signal came), and cut. */
  cut: number
}

const SWEEP_MS = 50

export async function drain(server: FastifyInstance, graceMs: number, cutNow: AbortSignal): Promise<DrainResult> {
  const raw = server.server as Server
  const sweep = setInterval(() => raw.closeIdleConnections(), SWEEP_MS)
  let timer: NodeJS.Timeout | undefined
  const closed = server.close().then(() => 'drained' as const)
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), graceMs)
    cutNow.addEventListener('abort', () => resolve('expired'), { once: true })
  })
  try {
    if ((await Promise.race([closed, expired])) === 'drained') return { cut: 0 }
    const cut = await new Promise<number>((resolve) => raw.getConnections((_error, count) => resolve(count ?? 0)))
    // The answers still under way are logged as cut by the gateway, not as left by their clients.
    markCuttingAll(raw)
    raw.closeAllConnections()
    await closed
    return { cut }
  } finally {
    clearInterval(sweep)
    clearTimeout(timer)
  }
}

/** The same for a plain node server (the HTTP-to-HTTPS redirect), whose requests never wait on anything. */
export function closeNow(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
