import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { PassThrough } from 'node:stream'
import { compactVerify } from 'jose'
import type { App } from '../app.ts'
import { NUL_MESSAGE } from '../errors.ts'
import { nulFields } from '../gateway/input-safety.ts'
import { splitTarget } from '../gateway/path-safety.ts'
import { gatewayCallback, loginStep } from './interactions.ts'
import { PROVIDER_REQUEST, type ProviderRequest } from './keycloak-format.ts'
import { GATEWAY_CALLBACK, KEYCLOAK_ROUTES, LOGIN_ACTIONS } from './provider.ts'
import type { Realm } from './realm.ts'

const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'PATCH', 'DELETE']
/** oidc-provider reads at most 56 KiB of form; larger bodies are refused before they are read. */
const BODY_LIMIT = 56 * 1024
const REALM_PATH = /^\/realms\/([A-Za-z0-9._-]+)(\/[^?]*)?$/
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/**
 * Mounts each realm at Keycloak's `/realms/<realm>/`. oidc-provider is a Koa application: its request handler gets
 * the request after Fastify has done nothing but route it (no body parser runs; `reply.hijack()` hands over the
 * response). The body is read here as raw bytes, within oidc-provider's own 56 KiB limit, because three Keycloak
 * behaviours need the request adjusted first, all in `adjustForKeycloak`; oidc-provider then parses it as usual.
 */
export async function registerOidcRoutes(server: FastifyInstance, app: App): Promise<void> {
  if (!app.oidc.configured) return
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
    scope.route({ method: METHODS, url: '/realms/*', handler: (request, reply) => handle(app, request, reply) })
  })
}

async function handle(app: App, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { path, query } = splitTarget(request.url)
  const match = REALM_PATH.exec(path)
  const realm = match ? app.oidc.get(match[1]!) : undefined
  if (!match || !realm) return keycloakError(reply, 404, 'Realm does not exist')
  request.gatehouse.service = `realms/${realm.name}`
  const rest = match[2] ?? '/'
  if (nulFields(request.query).length) return nulRefused(reply)

  if (rest.startsWith(LOGIN_ACTIONS) && (request.method === 'GET' || request.method === 'POST')) {
    return loginStep(app, realm, rest.slice(LOGIN_ACTIONS.length), request, reply)
  }
  if (rest === GATEWAY_CALLBACK && request.method === 'GET') return gatewayCallback(realm, request, reply)
  if (rest === '/' && (request.method === 'GET' || request.method === 'HEAD')) return reply.header('cache-control', 'no-store').send(await realmInfo(realm))

  let body: Buffer | undefined
  if (hasBody(request.raw)) {
    body = await readBody(request.raw)
    if (!body) return keycloakError(reply.header('connection', 'close'), 400, 'Request body too large', 'invalid_request')
    if (body.includes(0) || (isForm(request.raw) && nulFields([...new URLSearchParams(body.toString('utf8'))]).length)) return nulRefused(reply)
  }
  const target = await adjustForKeycloak(realm, request.method, rest, request.raw, body)
  const { handler } = await realm.provider()
  app.oidc.maintain()
  reply.hijack()
  handler(replayRequest(request.raw, target, query, `/realms/${realm.name}`, { log: request.log, logout: target.logout === true }), reply.raw)
  return reply
}

interface Target {
  path: string
  body: Buffer | undefined
  /** Answer a successful revocation 204, as Keycloak's logout does. */
  logout?: boolean
  /** Replaces the Authorization header. */
  authorization?: string
}

/**
 * - Keycloak's logout with a refresh token (`POST .../logout` with `client_id` and `refresh_token`, as scripts
 *   log out) ends the session: it becomes a revocation of that refresh token, which revokes its grant.
 * - Access tokens are JWTs, which oidc-provider's introspection and revocation refuse to look up by design;
 *   Keycloak accepts them. A JWT whose signature verifies is handed over as its `jti`, under which Gatehouse
 *   recorded it; one that does not verify is handed over as an unknown token.
 * - Userinfo gets the same treatment for its bearer token.
 */
async function adjustForKeycloak(realm: Realm, method: string, path: string, raw: IncomingMessage, body: Buffer | undefined): Promise<Target> {
  if (method === 'POST' && body && isForm(raw)) {
    const form = new URLSearchParams(body.toString('utf8'))
    if (path === KEYCLOAK_ROUTES.end_session && form.has('refresh_token')) {
      const revocation = new URLSearchParams()
      for (const [name, value] of form) {
        if (name === 'refresh_token') revocation.append('token', value)
        else if (name === 'client_id' || name === 'client_secret') revocation.append(name, value)
      }
      revocation.append('token_type_hint', 'refresh_token')
      return { path: KEYCLOAK_ROUTES.revocation, body: Buffer.from(revocation.toString()), logout: true }
    }
    if ((path === KEYCLOAK_ROUTES.introspection || path === KEYCLOAK_ROUTES.revocation) && form.getAll('token').length === 1) {
      const token = form.get('token')!
      if (JWT_SHAPE.test(token)) {
        form.set('token', (await accessTokenId(realm, token)) ?? 'unknown')
        return { path, body: Buffer.from(form.toString()) }
      }
    }
  }
  if (path === KEYCLOAK_ROUTES.userinfo) {
    const bearer = /^bearer +(\S+)$/i.exec(raw.headers.authorization ?? '')?.[1]
    if (bearer && JWT_SHAPE.test(bearer)) return { path, body, authorization: `Bearer ${(await accessTokenId(realm, bearer)) ?? 'unknown'}` }
  }
  return { path, body }
}

/**
 * Keycloak's realm description at `/realms/<realm>`: older Keycloak adapters read the realm's public key here
 * instead of from the JWKS.
 */
async function realmInfo(realm: Realm): Promise<Record<string, unknown>> {
  const keys = await realm.keySet()
  const active = keys.publicJwks.find((k) => k.kid === keys.activeKid)!
  const spki = createPublicKey({ key: active as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' })
  return {
    realm: realm.name,
    public_key: spki.toString('base64'),
    'token-service': `${realm.issuer}/protocol/openid-connect`,
    'account-service': `${realm.issuer}/account`,
    'tokens-not-before': 0,
  }
}

/** The `jti` of an access token this realm signed; undefined when the signature does not verify. Expiry is oidc-provider's to judge. */
async function accessTokenId(realm: Realm, jwt: string): Promise<string | undefined> {
  try {
    const { payload } = await compactVerify(jwt, await realm.verificationKey(), { algorithms: ['RS256'] })
    const claims = JSON.parse(new TextDecoder().decode(payload)) as { jti?: unknown; typ?: unknown }
    return typeof claims.jti === 'string' && claims.typ === 'Bearer' ? claims.jti : undefined
  } catch {
    return undefined
  }
}

function hasBody(raw: IncomingMessage): boolean {
  return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0
}

function isForm(raw: IncomingMessage): boolean {
  return /^application\/x-www-form-urlencoded\b/i.test(raw.headers['content-type'] ?? '')
}

/** The whole body, or undefined when it is larger than oidc-provider would read. */
async function readBody(raw: IncomingMessage): Promise<Buffer | undefined> {
  if (Number(raw.headers['content-length'] ?? 0) > BODY_LIMIT) return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of raw) {
    size += (chunk as Buffer).length
    if (size > BODY_LIMIT) return undefined
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size)
}

/**
 * The request as oidc-provider sees it: the same connection and headers, the path relative to the realm (with
 * the full path as `originalUrl`, from which oidc-provider builds its URLs), and the body already read.
 */
function replayRequest(raw: IncomingMessage, target: Target, query: string, mountPath: string, info: ProviderRequest): IncomingMessage {
  const stream = new PassThrough()
  const { body } = target
  const headers = { ...raw.headers }
  if (body) {
    delete headers['transfer-encoding']
    headers['content-length'] = String(body.length)
  }
  if (target.authorization) headers.authorization = target.authorization
  const replay = Object.assign(stream, {
    headers,
    method: raw.method,
    url: target.path + query,
    originalUrl: mountPath + target.path + query,
    httpVersion: raw.httpVersion,
    httpVersionMajor: raw.httpVersionMajor,
    httpVersionMinor: raw.httpVersionMinor,
    socket: raw.socket,
    connection: raw.socket,
    [PROVIDER_REQUEST]: info,
  })
  stream.end(body)
  return replay as unknown as IncomingMessage
}

/** Text with a NUL character, which no parameter has a use for (src/gateway/input-safety.ts), in Keycloak's error shape. */
function nulRefused(reply: FastifyReply): FastifyReply {
  return keycloakError(reply, 400, NUL_MESSAGE, 'invalid_request')
}

function keycloakError(reply: FastifyReply, status: number, description: string, error?: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type('application/json')
    .send(error ? { error, error_description: description } : { error: description })
}
