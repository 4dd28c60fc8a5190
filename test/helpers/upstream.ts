import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SeenRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  bytes: number
}

export interface RecordingUpstream {
  url: string
  seen: SeenRequest[]
  server: Server
  /** Requests being received or answered now, and the most there were at once. */
  active: { now: number; most: number }
  close(): Promise<void>
}

/**
 * A service behind the gateway that records every request it receives, body read to the end, and answers with
 * `respond` (by default 200 JSON saying how many body bytes arrived).
 */
export async function startRecordingUpstream(respond?: (request: IncomingMessage, response: ServerResponse, seen: SeenRequest) => void): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = []
  const active = { now: 0, most: 0 }
  const server = createServer(async (request, response) => {
    active.most = Math.max(active.most, ++active.now)
    response.once('close', () => active.now--)
    let bytes = 0
    try {
      for await (const chunk of request) bytes += (chunk as Buffer).length
    } catch {
      return
    }
    const entry = { method: request.method!, url: request.url!, headers: request.headers, rawHeaders: request.rawHeaders, bytes }
    seen.push(entry)
    if (respond) return respond(request, response, entry)
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ bytes }))
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    server,
    active,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
