import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { auditedToken, auditedTokenFields } from '../audit/tokens.ts'
import type { Principal } from '../auth/principal.ts'
import { InvalidCredentials, NotFound, NotTokenOwner, PermissionDenied, pkDoesNotExist, ValidationFailed } from '../errors.ts'
import { ForeignKeyViolation } from '../store/errors.ts'
import { tokenFilterFields, type TokenRecord, type TokenScope } from '../store/tokens.ts'
import { principalOf } from './access.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { type ListQuery, listQuery } from './list-query.ts'
import { describeList, SERVER_FIELDS } from './metadata.ts'
import { paged } from './pagination.ts'
import { activityStreamUrl, ENCRYPTED, userSummary, userUrl } from './summaries.ts'
import { visibleUser } from './users.ts'
import { integer } from '../settings/definitions.ts'
import { TOKEN_DESCRIPTION_MAX } from '../limits.ts'
import { assertShownValues, bodyId, idParam, nullableBodyId, optionalBody, shownReadOnly } from './validation.ts'

/**
 * The platform's scope: `read`, `write` or both, space-separated, each once. Write includes read, so
 * `read write` is stored as `write`.
 */
const scopeMessage = "Must be a simple space-separated string with allowed scopes ['read', 'write']."
const scope = z.string({ error: (issue) => issue.input === null ? 'This field may not be null.' : scopeMessage }).refine((value) => {
  const words = value.split(/\s+/).filter(Boolean)
  return words.length > 0 && words.every((word) => word === 'read' || word === 'write') && new Set(words).size === words.length
}, scopeMessage).transform((value): TokenScope => value.split(/\s+/).includes('write') ? 'write' : 'read')
/** An OAuth2 application's id, or null for a personal token (as the platform's clients send it). */
const application = nullableBodyId
const description = z.string().trim().max(TOKEN_DESCRIPTION_MAX).nullable()
/**
 * A lifetime in seconds, read as Django REST framework's IntegerField reads a number (`600`, `"600"`, `"600.0"`); at
 * most what the setting `oauth2_access_token_expire_seconds` allows, which the token's issue checks, naming it.
 */
const seconds = integer(1, Number.MAX_SAFE_INTEGER)

const tokenFields = z.object({
  application: application.optional(),
  description: description.optional(),
  scope: scope.optional(),
  /** ISO 8601 with a time zone, as the platform's API writes `expires`. */
  expires: z.iso.datetime({ offset: true }).optional(),
  expires_in: seconds.optional(),
}).strict()
const createToken = optionalBody(tokenFields)
/** What a token shows but a change does not write: whose it is, its value (shown as `$encrypted$`) and its expiry. */
const SHOWN_READ_ONLY = ['user', 'application', 'token', 'refresh_token', 'expires'] as const
const updateToken = optionalBody(z.object({ description: description.optional(), scope: scope.optional() }).extend(shownReadOnly(SHOWN_READ_ONLY)).strict())
const revokeTokens = optionalBody(z.object({ user: bodyId.optional(), all: z.literal(true).optional() }).strict())
const listTokens = listQuery(tokenFilterFields)

/**
 * Personal OAuth 2 tokens (the platform's `/api/gateway/v1/tokens/`). A token's value appears once, in the
 * response that creates it; listings show `$encrypted$`. Everyone manages their own tokens, superusers all; a
 * Platform Auditor reads all.
 * A token may be created with a token, as the platform allows; Gatehouse caps the new one so it never outlives
 * or outranks the credential that created it (an OIDC access token's expiry and scope count the same way).
 */
export function tokenRoutes(api: GatewayApi, app: App): void {
  const serialize = async (record: TokenRecord, value?: string) => {
    const token = app.tokens.withFreshLastUsed(record)
    const owner = userSummary(await app.accounts.get(token.userId), token.userId)
    // A token is created by its owner (the API lets no one else), so its creator is its owner.
    return {
      id: token.id,
      type: 'token',
      url: `${GATEWAY_API}/tokens/${token.id}/`,
      related: { user: userUrl(token.userId), created_by: userUrl(token.userId), activity_stream: activityStreamUrl('token', token.id) },
      summary_fields: { user: owner, created_by: owner },
      user: token.userId,
      application: null,
      token: value ?? ENCRYPTED,
      refresh_token: null,
      created_by: token.userId,
      modified_by: null,
      scope: token.scope,
      description: token.description,
      expires: new Date(token.expires).toISOString(),
      created: new Date(token.created).toISOString(),
      modified: new Date(token.modified).toISOString(),
      last_used: token.lastUsed === null ? null : new Date(token.lastUsed).toISOString(),
    }
  }

  const create = async (request: FastifyRequest, reply: FastifyReply, input: z.output<typeof createToken>) => {
    const principal = principalOf(request)
    app.tokens.assertMayCreate(principal.user)
    if (input.application != null) {
      // The platform mints an application's token here too; Gatehouse issues those at /o/token/, where the
      // OpenID Connect provider can give them their refresh token and revoke them like every other.
      const known = await app.store.applications.findById(input.application)
      throw new ValidationFailed({ application: [known
        ? 'Tokens of an OAuth2 application are issued at /o/token/ (the password or authorization-code grant); give null for a personal token.'
        : pkDoesNotExist(input.application)] })
    }
    const { record, value } = await app.tokens.issue(principal.user, {
      scope: principal.scope === 'read' ? 'read' : input.scope,
      notAfter: principal.expiresAt,
      parentTokenId: principal.method === 'token' ? principal.tokenId : undefined,
      parentAccessToken: principal.method === 'oidc' ? principal.accessToken : undefined,
      description: input.description ?? undefined,
      expires: input.expires === undefined ? undefined : Date.parse(input.expires),
      expiresIn: input.expires_in,
    }).catch((error: unknown) => {
      // The account was deleted since its credential was checked: answered as its next request will be.
      throw error instanceof ForeignKeyViolation ? new InvalidCredentials() : error
    })
    app.audit.change(actorOf(request), 'create', auditedToken(record), undefined, auditedTokenFields(record))
    reply.code(201)
    return serialize(record, value)
  }

  const list = async (request: FastifyRequest, { page, filter }: ListQuery, userId: number | undefined) => {
    const { count, tokens } = await app.store.tokens.list({ offset: page.offset, limit: page.pageSize, userId, filter })
    return paged(request, page, count, await Promise.all(tokens.map((t) => serialize(t))))
  }

  /**
   * The token named in the path, if the caller may see it (`read`) or change it. Tokens the caller does not see are
   * "not found", not "forbidden"; one an auditor sees but may not change is forbidden, as the platform answers it
   * (and as a user's record the auditor reads is).
   */
  const visibleToken = async (request: FastifyRequest & { params: { id: number } }, read = false): Promise<TokenRecord> => {
    const record = await app.store.tokens.findById(request.params.id)
    const principal = principalOf(request)
    if (!record || !mayRead(principal, record.userId)) throw new NotFound('No such token.')
    if (!read && !mayManage(principal, record.userId)) throw new PermissionDenied('Platform Auditors read others\' tokens but do not change or revoke them.')
    return record
  }

  // Everyone lists their own tokens, superusers and auditors everybody's; `?user=` is a filter like any other.
  api.get('/tokens/', { schema: { querystring: listTokens } }, async (request) => {
    const principal = principalOf(request)
    return list(request, request.query, mayRead(principal, undefined) ? undefined : principal.user.id)
  })

  describeList(api, '/tokens/', {
    name: 'OAuth2 Token List',
    description: 'Personal tokens: everyone manages their own, superusers all.',
    create: { body: tokenFields, readOnly: { ...SERVER_FIELDS, user: 'field', token: 'string', refresh_token: 'string', last_used: 'datetime' }, allowed: (principal) => principal.scope !== 'read' },
  })

  api.post('/tokens/', { schema: { body: createToken } }, async (request, reply) => create(request, reply, request.body))

  api.post('/tokens/revoke/', { config: { access: 'superuser' }, schema: { body: revokeTokens } }, async (request) => {
    const input = request.body
    if ((input.user === undefined) === (input.all === undefined)) {
      throw new ValidationFailed({ non_field_errors: ['Give either "user": <id> or "all": true.'] })
    }
    if (!input.all && !(await app.accounts.get(input.user!))) throw new ValidationFailed({ user: ['No such user.'] })
    const revoked = input.all ? await app.tokens.revokeAll() : await app.tokens.revokeUser(input.user!)
    app.audit.change(actorOf(request), 'delete', { type: 'token', name: input.all ? 'all tokens' : `tokens of user ${input.user}` }, { user: input.user ?? null, revoked })
    return { revoked }
  })

  api.get('/tokens/:id/', { schema: { params: idParam } }, async (request) => serialize(await visibleToken(request, true)))

  // PUT as well as PATCH, as the platform's token view (a ModelViewSet) takes both; no field of a token is required
  // there (its scope has a default, the rest are read-only or optional), so a PUT changes what it names, as PATCH does.
  for (const method of ['PATCH', 'PUT'] as const) api.route({
    method,
    url: '/tokens/:id/',
    schema: { params: idParam, body: updateToken },
    handler: async (request) => {
      const record = await visibleToken(request)
      const input = request.body
      assertShownValues(input, await serialize(record), SHOWN_READ_ONLY)
      const updated = await app.tokens.update(record, { description: input.description === null ? '' : input.description, scope: input.scope })
      if (!updated) throw new NotFound('No such token.')
      app.audit.change(actorOf(request), 'update', auditedToken(updated), auditedTokenFields(record), auditedTokenFields(updated))
      return serialize(updated)
    },
  })

  api.delete('/tokens/:id/', { schema: { params: idParam } }, async (request, reply) => {
    const record = await visibleToken(request)
    // Another request may have revoked it since it was read: that one answered 204 and recorded it.
    if (!await app.tokens.revoke(record.id)) throw new NotFound('No such token.')
    app.audit.change(actorOf(request), 'delete', auditedToken(record), auditedTokenFields(record))
    return reply.code(204).send()
  })

  // A user's tokens under both of the platform's names: `tokens/` and `personal_tokens/` (which AWX and the scripts
  // written for it post to). Every token listed here is personal: an application's are the realm's (docs/api.md).
  for (const collection of ['tokens', 'personal_tokens']) {
    api.get(`/users/:id/${collection}/`, { schema: { params: idParam, querystring: listTokens } }, async (request) => {
      const owner = await visibleUser(app, request, request.params.id)
      if (!mayRead(principalOf(request), owner.id)) throw new PermissionDenied('Only the owner, superusers and auditors see a user\'s tokens.')
      return list(request, request.query, owner.id)
    })

    api.post(`/users/:id/${collection}/`, { schema: { params: idParam, body: createToken } }, async (request, reply) => {
      const owner = await visibleUser(app, request, request.params.id)
      if (owner.id !== principalOf(request).user.id) throw new NotTokenOwner()
      return create(request, reply, request.body)
    })
  }
}

/** A token in the audit trail: its id and description, never its value. */
function mayManage(principal: Principal, ownerId: number): boolean {
  return principal.user.isSuperuser || principal.user.id === ownerId
}

/** A Platform Auditor reads every token as a superuser does (docs/access.md), and changes none but their own. */
function mayRead(principal: Principal, ownerId: number | undefined): boolean {
  return principal.user.isSuperuser || principal.user.isSystemAuditor || principal.user.id === ownerId
}
