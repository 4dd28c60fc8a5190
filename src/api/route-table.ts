import Fastify from 'fastify'
import type { ZodType } from 'zod'
import type { App } from '../app.ts'
import type { Access } from '../gateway/places.ts'
import { answersForApi } from './methods.ts'
import { registerGatewayApi } from './register.ts'

/** One gateway API route: its method, its path as declared (`/api/gateway/v1/users/:id/`), the access it declares. */
export interface ApiRoute {
  readonly method: string
  readonly url: string
  readonly access: Access
  /** Matches a request path (without query), each parameter in its named group. */
  readonly pattern: RegExp
  /** The parameters' schema: a path whose parameters it refuses (`users/abc/`) is 404 at the gateway, no route. */
  readonly params: ZodType | undefined
}

/**
 * The gateway API's routes as `serve` registers them, each with the access its `config` declares (`user` when it
 * declares none, as src/api/access.ts reads it), for tools that explain a decision (`access check`). They are
 * registered on a Fastify instance of their own, which never listens or runs a handler.
 */
export async function gatewayApiRoutes(app: App): Promise<ApiRoute[]> {
  const server = Fastify()
  const routes: ApiRoute[] = []
  server.addHook('onRoute', (route) => {
    if (answersForApi(route.config)) return
    const access = (route.config as { access?: Access } | undefined)?.access ?? 'user'
    const params = route.schema?.params as ZodType | undefined
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, access, pattern: pathPattern(route.url), params })
  })
  try {
    await registerGatewayApi(server, app)
  } finally {
    await server.close()
  }
  // As the router prefers them: fixed paths before those with parameters, and those before wildcards.
  const rank = (url: string) => (url.includes('*') ? 2 : url.includes(':') ? 1 : 0)
  return routes.sort((a, b) => rank(a.url) - rank(b.url))
}

/** The route a request for `method` and `path` reaches; undefined when none does. */
export function findApiRoute(routes: readonly ApiRoute[], method: string, path: string): ApiRoute | undefined {
  return routes.find((route) => {
    const match = route.method === method ? route.pattern.exec(path) : null
    return match !== null && (route.params?.safeParse(match.groups ?? {}).success ?? true)
  })
}

/** A route path as a regular expression: a `:parameter` matches one segment, a `*` the rest of the path. */
function pathPattern(url: string): RegExp {
  const source = url.split(/(:[A-Za-z0-9_]+|\*)/).map((part) => {
    if (part === '*') return '.*'
    if (part.startsWith(':')) return `(?<${part.slice(1)}>[^/]+)`
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  }).join('')
  return new RegExp(`^${source}$`)
}
