import swagger, { type SwaggerTransform } from '@fastify/swagger'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import type { Access } from '../gateway/places.ts'
import { version } from '../version.ts'
import { GATEWAY_API } from './gateway-api.ts'

export const OPENAPI_PATH = `${GATEWAY_API}/openapi.json`
export const REFERENCE_PATH = `${GATEWAY_API}/docs`

/**
 * The interactive reference's pages load only their own scripts and styles (swagger-ui from its npm package,
 * served here), fetch only from this origin (the document, and the calls "Try it out" makes), and are never framed.
 * swagger-ui's bundle adds one <style> element of its own when it starts: that one is allowed by its hash (CSP Level
 * 2), not inline styles in general; the reference test fails if a new swagger-ui adds another.
 */
const REFERENCE_CSP = {
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'form-action': ["'self'"],
  'base-uri': ["'none'"],
  'frame-ancestors': ["'none'"],
}

/** The gateway API's own paths: everything the document describes. Services, realms and pages are not in it. */
export function isGatewayApiPath(url: string): boolean {
  return url.startsWith('/api/gateway/') || url === '/api/' || url.startsWith('/admin/realms/')
}

/**
 * The gateway API described: an OpenAPI 3.1 document made from the routes' zod schemas (@fastify/swagger with
 * fastify-type-provider-zod's transform) at /api/gateway/v1/openapi.json, and swagger-ui over it at
 * /api/gateway/v1/docs/, as the platform serves its API docs there. Both are open: they describe the API, not
 * anyone's data. Registered before the routes, whose schemas it collects as they are added; swagger-ui itself waits
 * for the reference's first visit.
 */
export async function registerOpenApi(server: FastifyInstance): Promise<void> {
  await server.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Gatehouse gateway API',
        version,
        description: 'The gateway\'s own REST API, in the automation platform\'s shapes. Lists take the platform\'s filters on their fields (`field__lookup=`, `or__`, `not__`, `search`, `order_by`); see docs/api.md.',
      },
      components: {
        securitySchemes: {
          basic: { type: 'http', scheme: 'basic', description: 'Username and password (local or LDAP accounts).' },
          bearer: { type: 'http', scheme: 'bearer', description: 'A personal token (gatehouse_pat_...) or an OpenID Connect access token meant for the gateway.' },
          session: { type: 'apiKey', in: 'cookie', name: 'gateway_sessionid', description: 'The login session; unsafe methods also need the X-CSRFToken header.' },
        },
      },
      security: [{ basic: [] }, { bearer: [] }, { session: [] }],
    },
    transform: describeGatewayApiOnly,
    transformObject: jsonSchemaTransformObject,
  })
  server.get(OPENAPI_PATH, { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff')
    return server.swagger()
  })
  let reference: Promise<FastifyInstance> | undefined
  const serveReference = async (request: FastifyRequest, reply: FastifyReply) => {
    reference ??= referenceServer(server).catch((error: unknown) => {
      reference = undefined
      throw error
    })
    // Always GET: for HEAD, the gateway's own HEAD handling drops the body and keeps its length.
    const answer = await (await reference).inject({ method: 'GET', url: request.url, headers: request.headers })
    if (answer.statusCode === 404) return reply.callNotFound()
    const { connection: _connection, 'keep-alive': _keepAlive, 'transfer-encoding': _encoding, date: _date, ...headers } = answer.headers
    reply.code(answer.statusCode).headers(headers)
    return answer.rawPayload.length ? reply.send(answer.rawPayload) : reply.send()
  }
  server.get(REFERENCE_PATH, { schema: { hide: true } }, serveReference)
  server.get(`${REFERENCE_PATH}/*`, { schema: { hide: true } }, serveReference)
}

/**
 * swagger-ui (with its static file server) in a Fastify instance of its own, built on the reference's first visit
 * rather than at every start; the gateway passes it those requests. It serves the gateway's document as it is then.
 */
async function referenceServer(gateway: FastifyInstance): Promise<FastifyInstance> {
  const { default: swaggerUi } = await import('@fastify/swagger-ui')
  const reference = Fastify()
  await reference.register(swagger, { mode: 'static', specification: { document: gateway.swagger() as never } })
  await reference.register(swaggerUi, {
    routePrefix: REFERENCE_PATH,
    staticCSP: REFERENCE_CSP,
    // No badge from the public validator: the page fetches nothing from anywhere else.
    uiConfig: { validatorUrl: null, deepLinking: true } as never,
  })
  await reference.ready()
  return reference
}

/** Routes outside the gateway API are hidden; its open routes say they need no credentials. */
const describeGatewayApiOnly: SwaggerTransform = (input) => {
  if (!isGatewayApiPath(input.url)) return { schema: { ...input.schema, hide: true }, url: input.url }
  const described = jsonSchemaTransform(input as never) as { schema: Record<string, unknown>; url: string }
  const access = (input.route.config as { access?: Access } | undefined)?.access
  if (access === 'open' || access === 'public') described.schema = { ...described.schema, security: [] }
  return described
}
