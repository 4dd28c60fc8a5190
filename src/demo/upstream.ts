import type { IncomingMessage, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { WebSocketServer } from 'ws'
import { createServer } from '../http/node-http.ts'

export interface DemoUpstream {
  readonly name: string
  readonly url: URL
  close(): Promise<void>
}

/**
 * A stand-in service for the demo and the tests: answers every request with what it received, including the
 * identity Gatehouse vouched for and whether X-Gatehouse-Identity verified against the gateway's JWKS.
 * It is what a real service behind Gatehouse does to trust the caller. It takes WebSockets too.
 */
interface VerifiedClaims {
  sub: string
  username: unknown
  exp: number
  memberships: Record<string, unknown>
}

function membershipClaims(payload: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(['teams', 'organizations', 'roles'].filter((name) => payload[name] !== undefined).map((name) => [name, payload[name]]))
}

export async function startDemoUpstream(name: string, gatewayUrl: () => string, issuer: () => string = gatewayUrl): Promise<DemoUpstream> {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined
  // Like any service should, verify each identity token once and remember it until it expires.
  const verifiedTokens = new Map<string, VerifiedClaims>()
  const claimsOf = (token: unknown) => verifiedTokens.get(token as string)!
  /** What a request carried, as the demo answers it: including the identity and whether its signature verified. */
  async function describe(req: IncomingMessage, bodyBytes: number): Promise<Record<string, unknown>> {
    const url = new URL(req.url ?? '/', 'http://upstream.invalid')
    let identity: Record<string, unknown> | null = null
    const username = req.headers['x-gatehouse-user']
    if (typeof username === 'string') {
      jwks ??= createRemoteJWKSet(new URL('/api/gateway/v1/jwks/', gatewayUrl()))
      let verified = false
      const token = req.headers['x-gatehouse-identity']
      if (typeof token === 'string') {
        let claims = verifiedTokens.get(token)
        if (!claims || claims.exp * 1000 <= Date.now()) {
          claims = undefined
          try {
            const { payload } = await jwtVerify(token, jwks, { audience: name, issuer: issuer(), algorithms: ['ES256'] })
            claims = { sub: String(payload.sub), username: payload.preferred_username, exp: payload.exp ?? 0, memberships: membershipClaims(payload) }
            if (verifiedTokens.size > 10_000) verifiedTokens.clear()
            verifiedTokens.set(token, claims)
          } catch {
            claims = undefined
          }
        }
        verified = claims !== undefined && claims.username === username && claims.sub === req.headers['x-gatehouse-user-id']
      }
      identity = {
        username,
        user_id: Number(req.headers['x-gatehouse-user-id']),
        auth_method: req.headers['x-gatehouse-auth-method'] ?? null,
        verified,
        // What the verified token says of the caller's teams, organizations and roles, when it says any (docs/access.md).
        ...(verified ? claimsOf(token).memberships : {}),
      }
    }
    return {
      service: name,
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body_bytes: bodyBytes,
      identity,
      headers: {
        authorization: req.headers.authorization ?? null,
        cookie: req.headers.cookie ?? null,
        'x-forwarded-for': req.headers['x-forwarded-for'] ?? null,
        'x-forwarded-proto': req.headers['x-forwarded-proto'] ?? null,
        'x-forwarded-host': req.headers['x-forwarded-host'] ?? null,
        'x-gatehouse-teams': req.headers['x-gatehouse-teams'] ?? null,
      },
    }
  }

  const server: Server = createServer(async (req, res) => {
    let bodyBytes = 0
    try {
      for await (const chunk of req) bodyBytes += (chunk as Buffer).length
      const body = JSON.stringify(await describe(req, bodyBytes))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    } catch {
      if (!res.headersSent) res.writeHead(400).end()
    }
  })
  // A WebSocket's first message describes the upgrade request, as the HTTP answer does; then it echoes what it gets,
  // as the platform's event streams would carry job events.
  const sockets = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, binary) => ws.send(data, { binary }))
      describe(req, 0).then((description) => ws.send(JSON.stringify(description)), () => ws.close(1011))
    })
  })
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    name,
    url: new URL(`http://127.0.0.1:${port}/`),
    close: () => new Promise<void>((resolve) => {
      for (const ws of sockets.clients) ws.terminate()
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
