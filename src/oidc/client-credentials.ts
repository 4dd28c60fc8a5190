import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import querystring from 'node:querystring'
import type Provider from 'oidc-provider'
import { ClientTokensThrottled, DatabaseUnavailable } from '../errors.ts'
import type { buildResourceServerInfo } from './password-grant.ts'

/**
 * The `client_credentials` grant without oidc-provider's HTTP stack (Koa, its router and a dozen middlewares), for
 * the plain request services send most: a configured confidential client, its id and secret in the form or in
 * HTTP basic, nothing else. The token is still made by oidc-provider's own ClientCredentials model, with the same resource server and
 * scope as its grant handler gives it, so its claims, its signature and its record come from the same code
 * (provider.ts `keycloakTokenClaims`, `keycloakJwt`, `recordIssuedToken`), and the answer has the members and
 * headers oidc-provider and keycloak-format.ts give it. Anything else, a wrong secret and every failure included,
 * is left to oidc-provider, which answers it as always (and takes the request again from the start); but for the
 * database failing, which oidc-provider would only meet again (`leftToProvider`).
 */

/** The form's only members: no scope, resource, assertion or anything else whose handling would have to be repeated. */
const PLAIN_MEMBERS = new Set(['grant_type', 'client_id', 'client_secret'])
/** Headers that ask for more than the plain grant: CORS, DPoP, client attestation. */
const SPECIAL_HEADERS = ['origin', 'dpop', 'oauth-client-attestation', 'oauth-client-attestation-pop']
const PLAIN_FORM_TYPE = /^application\/x-www-form-urlencoded(?:; *charset=utf-8)?$/i
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post'])

export interface ClientCredentialsOptions {
  provider: Provider
  /** Whether the client is one of the realm's configured ones (an OAuth2 application's is left to oidc-provider). */
  configured(clientId: string): boolean
  resource: string
  resourceServer(): ReturnType<typeof buildResourceServerInfo>
  /** Told of each token issued, as oidc-provider's `grant.success` tells it. */
  tokensIssued?: ((grantType: string) => void) | undefined
}

/** Keycloak's token answer, or undefined: oidc-provider is to answer the request. */
export type ClientCredentialsShortcut = (form: Buffer, headers: IncomingHttpHeaders, address: string) => Promise<Record<string, unknown> | undefined>

export function clientCredentialsShortcut(options: ClientCredentialsOptions): ClientCredentialsShortcut {
  return async (form, headers, address) => {
    const members = plainForm(form, headers, PLAIN_MEMBERS)
    const credentials = members && clientCredentialsOf(members, headers)
    if (members?.get('grant_type') !== 'client_credentials' || !credentials?.secret || !options.configured(credentials.clientId)) return undefined
    try {
      return await issue(options, credentials.clientId, credentials.secret, address)
    } catch (error) {
      return leftToProvider(error)
    }
  }
}

/**
 * A shortcut's step failed: undefined, for oidc-provider to answer the request, unless the database failed or the
 * client was issued too many tokens (thrown, for the token endpoint to answer at once: oidc-provider would wait for
 * the same database again, and be refused alike).
 */
export function leftToProvider(error: unknown): undefined {
  if (error instanceof DatabaseUnavailable || error instanceof ClientTokensThrottled) throw error
  return undefined
}

/**
 * The form's members when the request is plain: a form of `allowed` members, each once, and no header that asks
 * for more. Without `%` and `+` in the form, every parser (oidc-provider's querystring, URLSearchParams) reads the
 * same members from it. With them, the form is taken only when `encoded`, and then read by oidc-provider's own
 * parser (lib/shared/selective_body.js: `querystring.parse`), so that its members are the ones oidc-provider would
 * read; a form whose bytes were not UTF-8 reaches here already in UTF-8 (routes.ts `formInUtf8`).
 */
export function plainForm(form: Buffer, headers: IncomingHttpHeaders, allowed: ReadonlySet<string>, encoded = false): Map<string, string> | undefined {
  if (SPECIAL_HEADERS.some((name) => headers[name] !== undefined) || !PLAIN_FORM_TYPE.test(headers['content-type'] ?? '')) return undefined
  const text = form.toString('utf8')
  const escaped = /[%+]/.test(text)
  if (escaped && !encoded) return undefined
  const pairs = text.split('&')
  if (pairs.length > allowed.size || pairs.some((pair) => pair.indexOf('=') < 1)) return undefined
  const entries = escaped ? Object.entries(querystring.parse(text)) : pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as [string, string])
  return distinctMembers(entries, pairs.length, allowed)
}

/** The members as a map when they are `count` of the `allowed` names, each once with a single value (and a name). */
function distinctMembers(entries: [string, string | string[] | undefined][], count: number, allowed: ReadonlySet<string>): Map<string, string> | undefined {
  const members = new Map<string, string>()
  for (const [name, value] of entries) {
    if (!name || typeof value !== 'string' || !allowed.has(name) || members.has(name)) return undefined
    members.set(name, value)
  }
  return members.size === count ? members : undefined
}

/**
 * The client's id, and its secret from the form (`client_secret_post`) or from HTTP basic (`client_secret_basic`,
 * RFC 6749 §2.3.1); undefined when oidc-provider is to read them. HTTP basic is taken only when its id and secret
 * are made of characters that form-urlencoding leaves as they are (all that generated secrets use), so that
 * oidc-provider's decoding could not read them differently, and when the form has no secret of its own and names
 * the same client or none (oidc-provider refuses two mechanisms, or two client ids; routes.ts has already dropped
 * a form secret equal to HTTP basic's).
 */
export function clientCredentialsOf(members: Map<string, string>, headers: IncomingHttpHeaders): { clientId: string; secret: string | undefined } | undefined {
  const formClientId = members.get('client_id')
  if (headers.authorization === undefined) return formClientId ? { clientId: formClientId, secret: members.get('client_secret') } : undefined
  const basic = PLAIN_BASIC.exec(headers.authorization)?.[1]
  if (!basic || members.has('client_secret') || Buffer.from(basic, 'base64').toString('base64') !== basic) return undefined
  const [clientId, secret, ...rest] = Buffer.from(basic, 'base64').toString('utf8').split(':')
  if (rest.length || !clientId || !secret || !UNRESERVED.test(clientId) || !UNRESERVED.test(secret)) return undefined
  if (formClientId !== undefined && formClientId !== clientId) return undefined
  return { clientId, secret }
}
/** `Basic` and one space before base64, as oidc-provider splits the header. */
const PLAIN_BASIC = /^basic ([A-Za-z0-9+/]+={0,2})$/i
/** RFC 3986 unreserved characters, which form-urlencoding and its decoding leave unchanged. */
const UNRESERVED = /^[A-Za-z0-9._~-]+$/

/**
 * oidc-provider's client authentication (lib/shared/client_auth.js) for a client that sends its secret in the
 * form or in HTTP basic, or, for a public client, nothing but its id; then its check that the client may use the grant. Undefined
 * when oidc-provider is to judge (and answer) the request.
 */
export async function authenticatedClient(provider: Provider, clientId: string, secret: string | undefined, grantType: string): Promise<InstanceType<Provider['Client']> | undefined> {
  const client = await provider.Client.find(clientId)
  if (!client || !client.grantTypeAllowed(grantType)) return undefined
  if (secret === undefined) return client.clientAuthMethod === 'none' ? client : undefined
  if (!SECRET_METHODS.has(client.clientAuthMethod ?? '')) return undefined
  const secretClient = client as unknown as { checkClientSecretExpiration(message: string): void; compareClientSecret(actual: string): boolean | Promise<boolean> }
  secretClient.checkClientSecretExpiration('could not authenticate the client - its client secret is expired')
  return (await secretClient.compareClientSecret(secret)) ? client : undefined
}

/** oidc-provider's client_credentials handler, for a request without scope. */
async function issue(options: ClientCredentialsOptions, clientId: string, secret: string, address: string): Promise<Record<string, unknown> | undefined> {
  const { provider } = options
  const client = await authenticatedClient(provider, clientId, secret, 'client_credentials')
  if (!client) return undefined
  const token = new provider.ClientCredentials({ client, scope: undefined })
  // Its claims name the address it was asked from (provider.ts `keycloakTokenClaims`); the model keeps no such member.
  Object.assign(token, { requestAddress: address })
  token.resourceServer = new provider.ResourceServer(options.resource, options.resourceServer())
  token.scope = undefined
  const value = await token.save()
  options.tokensIssued?.('client_credentials')
  // keycloak-format.ts `tokenResponse` for a grant without refresh token or session.
  return { access_token: value, expires_in: token.expiration, refresh_expires_in: 0, token_type: 'Bearer', 'not-before-policy': 0, scope: token.scope || '' }
}

/**
 * The headers the token endpoint gives an answer to a request without an Origin (no CORS fields, as Keycloak's
 * DefaultCors; keycloak-format.ts `keycloakCors`; no-cache) and Koa's JSON type, in its order: the same for every
 * answer, so named once rather than set one by one (each `setHeader` checks and stores its header again).
 */
const TOKEN_ANSWER_HEADERS = [
  'Vary', 'Origin',
  'cache-control', 'no-store',
  'Content-Type', 'application/json; charset=utf-8',
  'pragma', 'no-cache',
]

/** The answer with the headers oidc-provider's token endpoint gives it. */
export function writeTokenAnswer(response: ServerResponse, answer: Record<string, unknown>): void {
  const body = JSON.stringify(answer)
  response.writeHead(200, [...TOKEN_ANSWER_HEADERS, 'Content-Length', String(Buffer.byteLength(body))])
  response.end(body)
}
