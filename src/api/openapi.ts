import type { SwaggerTransform } from '@fastify/swagger'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteOptions } from 'fastify'
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
  return url.startsWith('/api/gateway/') || url === '/api/' || url === '/admin/realms' || url.startsWith('/admin/realms/')
}

/**
 * The gateway API described: an OpenAPI 3.1 document made from the routes' zod schemas (@fastify/swagger with
 * fastify-type-provider-zod's transform) at /api/gateway/v1/openapi.json, and swagger-ui over it at
 * /api/gateway/v1/docs/, as the platform serves its API docs there. Both are open: they describe the API, not
 * anyone's data. Registered before the routes, whose options it collects as they are added; the document is made
 * at its first request, and swagger-ui waits for the reference's first visit.
 */
export async function registerOpenApi(server: FastifyInstance): Promise<void> {
  const routes = collectRoutes(server)
  let document: Promise<unknown> | undefined
  const described = () => (document ??= describeRoutes(routes).catch((error: unknown) => {
    document = undefined
    throw error
  }))
  server.get(OPENAPI_PATH, { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff')
    return described()
  })
  let reference: Promise<FastifyInstance> | undefined
  const referenceServed = () => (reference ??= described().then(referenceServer).catch((error: unknown) => {
    reference = undefined
    throw error
  }))
  const files = new ReferenceFiles(referenceServed)
  const serveReference = async (request: FastifyRequest, reply: FastifyReply) => {
    const file = await files.answer(request)
    // Always GET: for HEAD, the gateway's own HEAD handling drops the body and keeps its length.
    const answer = file ?? await (await referenceServed()).inject({ method: 'GET', url: request.url, headers: request.headers })
    if (answer.statusCode === 404) return reply.callNotFound()
    const { connection: _connection, 'keep-alive': _keepAlive, 'transfer-encoding': _encoding, date: _date, ...headers } = answer.headers
    // frame-ancestors says it to browsers that read CSP; X-Frame-Options to those that do not.
    reply.code(answer.statusCode).headers(headers).header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff').header('referrer-policy', 'same-origin')
    return answer.rawPayload.length ? reply.send(answer.rawPayload) : reply.send()
  }
  server.get(REFERENCE_PATH, { schema: { hide: true } }, serveReference)
  server.get(`${REFERENCE_PATH}/*`, { schema: { hide: true } }, serveReference)
}

interface ReferenceAnswer {
  statusCode: number
  headers: Record<string, string | string[] | number | undefined>
  rawPayload: Buffer
}

/** Where swagger-ui's own files (its 1.7 MB script among them) are served, the same for everyone. */
const REFERENCE_FILES = `${REFERENCE_PATH}/static/`

/**
 * swagger-ui's files, each answered once through the reference's server and from memory after that. Through it, every
 * request read the file and copied it twice (light-my-request's buffer and a string of it), which anyone may ask for:
 * a few hundred requests for the 1.7 MB script that read nothing held gigabytes and stalled the event loop for
 * seconds. Kept are the files that exist (swagger-ui's few), by path, whatever the query; a conditional request is
 * answered 304 from the file's ETag, and a range is not served (RFC 9110 lets a server send the whole file).
 */
class ReferenceFiles {
  readonly #server: () => Promise<FastifyInstance>
  readonly #files = new Map<string, Promise<ReferenceAnswer | undefined>>()

  constructor(server: () => Promise<FastifyInstance>) {
    this.#server = server
  }

  /** The answer to a request for one of the files; undefined for any other request, answered as before. */
  async answer(request: FastifyRequest): Promise<ReferenceAnswer | undefined> {
    const path = request.url.split('?', 1)[0]!
    if (!path.startsWith(REFERENCE_FILES)) return undefined
    let file = this.#files.get(path)
    if (!file) {
      file = this.#read(path)
      this.#files.set(path, file)
      // Only files that exist are kept: any other path would grow the map with every name asked for.
      void file.then((found) => found ?? this.#files.delete(path), () => this.#files.delete(path))
    }
    const found = await file
    if (!found) return undefined
    const etag = found.headers.etag
    const asked = request.headers['if-none-match']
    if (typeof etag === 'string' && typeof asked === 'string' && asked.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag.replace(/^W\//, '') || tag.trim() === '*')) {
      const { 'content-length': _length, 'content-type': _type, ...headers } = found.headers
      return { statusCode: 304, headers, rawPayload: Buffer.alloc(0) }
    }
    return found
  }

  async #read(path: string): Promise<ReferenceAnswer | undefined> {
    const answer = await (await this.#server()).inject({ method: 'GET', url: path })
    if (answer.statusCode !== 200) return undefined
    const { 'accept-ranges': _ranges, ...headers } = answer.headers
    return { statusCode: 200, headers, rawPayload: answer.rawPayload }
  }
}

/**
 * Every route added from now on, as @fastify/swagger collects them: the options each onRoute hook gets, kept as
 * they are (Fastify still changes them after the hook: the root of a prefixed scope gets its trailing slash), and
 * without the HEAD routes Fastify adds for GET routes, which it leaves out (its exposeHeadRoutes option is off).
 */
function collectRoutes(server: FastifyInstance): RouteOptions[] {
  const routes: RouteOptions[] = []
  server.addHook('onRoute', (route) => {
    if (route.method !== 'HEAD') routes.push(route)
  })
  return routes
}

/**
 * The document @fastify/swagger makes of the routes, made on a Fastify instance of its own that holds them: it and
 * fastify-type-provider-zod load at the document's first request instead of at every start. The routes are only
 * described there, never called, so their schemas are not compiled into validators either.
 */
async function describeRoutes(routes: readonly RouteOptions[]): Promise<unknown> {
  const [{ default: swagger }, { jsonSchemaTransform, jsonSchemaTransformObject }] = await Promise.all([import('@fastify/swagger'), import('fastify-type-provider-zod')])
  const documenter = Fastify({ exposeHeadRoutes: false })
  documenter.setValidatorCompiler(() => () => true)
  await documenter.register(swagger, {
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
    transform: describeGatewayApiOnly(jsonSchemaTransform as SwaggerTransform),
    transformObject: jsonSchemaTransformObject,
  })
  for (const { method, url, schema, config, ...rest } of routes) {
    // What @fastify/swagger reads of a route: its method, URL, schema, configuration and links.
    const links = (rest as { links?: unknown }).links
    documenter.route({ method, url, schema, config, ...(links === undefined ? {} : { links }), handler: notCalled } as RouteOptions)
  }
  await documenter.ready()
  const document = documenter.swagger()
  await documenter.close()
  return document
}

async function notCalled(): Promise<never> {
  throw new Error('a described route is never called')
}

/**
 * swagger-ui (with its static file server) in a Fastify instance of its own, built on the reference's first visit
 * rather than at every start; the gateway passes it those requests. It serves the gateway's document as it is then.
 */
async function referenceServer(document: unknown): Promise<FastifyInstance> {
  const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')])
  const reference = Fastify()
  await reference.register(swagger, { mode: 'static', specification: { document: document as never } })
  await reference.register(swaggerUi, {
    routePrefix: REFERENCE_PATH,
    staticCSP: REFERENCE_CSP,
    theme: {
      title: 'Gatehouse gateway API reference',
      css: [{ filename: 'gatehouse.css', content: readFileSync(new URL('./reference/theme.css', import.meta.url), 'utf8') }],
      js: [{ filename: 'gatehouse.js', content: readFileSync(new URL('./reference/reference.js', import.meta.url), 'utf8') }],
    },
    uiConfig: {
      // No badge from the public validator: the page fetches nothing from anywhere else.
      validatorUrl: null,
      deepLinking: true,
      // Without swagger-ui's top bar: its field for loading another document by URL (unlabelled, and of no use for
      // the one document the reference is for), its logo (an image without a text) and its colour scheme switch,
      // whose part, following the reader's scheme, the reference's own script does.
      layout: 'BaseLayout',
      plugins: [referencePlugin],
      requestInterceptor: referenceRequest,
    } as never,
  })
  await reference.ready()
  return reference
}

/**
 * Runs in the page: @fastify/swagger-ui writes swagger-ui's configuration, functions as their source, into the script
 * that starts swagger-ui, which runs after the reference's own script (src/api/reference/reference.js) has defined
 * the plugin this hands over.
 */
function referencePlugin(system: unknown): unknown {
  return (globalThis as unknown as { gatehouseReferencePlugin: (system: unknown) => unknown }).gatehouseReferencePlugin(system)
}

/** Runs in the page, as referencePlugin does: swagger-ui's requestInterceptor, defined by the reference's own script. */
function referenceRequest(request: unknown): unknown {
  return (globalThis as unknown as { gatehouseReferenceRequest: (request: unknown) => unknown }).gatehouseReferenceRequest(request)
}

/** Routes outside the gateway API are hidden; its open routes say they need no credentials. */
function describeGatewayApiOnly(jsonSchemaTransform: SwaggerTransform): SwaggerTransform {
  return (input) => {
    if (!isGatewayApiPath(input.url)) return { schema: { ...input.schema, hide: true }, url: input.url }
    const described = jsonSchemaTransform(input as never) as { schema: Record<string, unknown>; url: string }
    const access = (input.route.config as { access?: Access } | undefined)?.access
    if (access === 'open' || access === 'public') described.schema = { ...described.schema, security: [] }
    return described
  }
}
