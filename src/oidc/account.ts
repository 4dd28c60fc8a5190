import type { FastifyReply, FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import type { Realm } from './realm.ts'
import { errorPage } from './keycloak-format.ts'
import { webOriginAllowed } from './redirects.ts'
import { wantsHtml } from '../http/negotiation.ts'
import { issuedBefore, lastMillisecondOf } from '../store/users.ts'

/** Where a browser asking for the account console goes: the web interface's own account page. */
const ACCOUNT_PAGE = '/ui/account'
const BEARER = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*) *$/i

/**
 * Keycloak's account endpoint, `/realms/<realm>/account`: with a bearer token and `Accept: application/json`,
 * the user's profile (AccountRestService, what keycloak-js's `loadUserProfile()` reads); a browser asking for
 * a page is sent to Gatehouse's own account page, Keycloak's account console being out of scope. As in
 * Keycloak, the token must be a live access token of the realm for the `account` audience, of an active user.
 * Scripts on the client's web origins may call it (CORS, preflight included).
 */
export async function accountEndpoint(app: App, realm: Realm, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const origin = request.headers.origin
  reply.header('cache-control', 'no-store').header('vary', 'Origin')
  if (request.method === 'OPTIONS') {
    if (origin && realm.config.clients.some((client) => webOriginAllowed(client, origin))) {
      reply.header('access-control-allow-origin', origin).header('access-control-allow-methods', 'GET, HEAD, OPTIONS')
        .header('access-control-allow-headers', 'Authorization, Accept, Content-Type').header('access-control-max-age', '3600')
    }
    return reply.code(204).send()
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    reply.header('allow', 'GET, HEAD, OPTIONS')
    return wantsHtml(request) ? errorPage(reply, 405, 'Method not allowed') : reply.code(405).send({ error: 'HTTP 405 Method Not Allowed' })
  }
  const jwt = BEARER.exec(request.headers.authorization ?? '')?.[1]
  if (!jwt && wantsHtml(request)) return reply.redirect(app.publishedPath + ACCOUNT_PAGE, 302)
  const token = jwt ? await realm.accessToken(jwt) : undefined
  const user = token?.audiences.includes('account') ? await app.accounts.get(token.userId) : undefined
  if (!token || !user?.isActive || issuedBefore(user, lastMillisecondOf(token.issuedAt))) {
    return reply.code(401).header('www-authenticate', `Bearer realm="${realm.name}", error="invalid_token"`).send({ error: 'HTTP 401 Unauthorized' })
  }
  if (origin && webOriginAllowed(realm.client(token.clientId), origin)) reply.header('access-control-allow-origin', origin)
  // Keycloak's profile leaves out what is not set (its JSON has no nulls); Gatehouse stores that as empty text.
  return reply.send({
    id: String(user.id),
    username: user.username,
    firstName: user.firstName || undefined,
    lastName: user.lastName || undefined,
    email: user.email || undefined,
    emailVerified: false,
    attributes: {},
  })
}
