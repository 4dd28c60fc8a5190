import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import type { Principal } from '../auth/principal.ts'
import { NotFound, PermissionDenied, ValidationFailed } from '../errors.ts'
import type { TokenRecord } from '../store/tokens.ts'
import { principalOf } from './access.ts'
import { paged, readPage } from './pagination.ts'
import { userIdParam } from './users.ts'
import { parseInput } from './validation.ts'

const scope = z.enum(['read', 'write'])
const description = z.string().max(1000).nullable()
const idValue = z.union([z.number().int().min(1).max(2 ** 31 - 1), z.string().regex(/^[1-9][0-9]{0,9}$/, 'Enter a user id.').transform(Number)])
const seconds = z.union([z.number().int().min(1), z.string().regex(/^[1-9][0-9]{0,11}$/, 'Enter a whole number of seconds.').transform(Number)])

const createToken = z.object({
  description: description.optional(),
  scope: scope.optional(),
  /** ISO 8601 with a time zone, as the platform's API writes `expires`. */
  expires: z.iso.datetime({ offset: true }).optional(),
  expires_in: seconds.optional(),
}).strict()
const updateToken = z.object({ description: description.optional(), scope: scope.optional() }).strict()
const revokeTokens = z.object({ user: idValue.optional(), all: z.literal(true).optional() }).strict()
const listQuery = z.object({ user: z.string().regex(/^[1-9][0-9]{0,9}$/, 'Enter a user id.').transform(Number).optional() })

/** Only basic and session logins prove the password; a token must not mint tokens that outlive it. */
const METHODS_THAT_CREATE_TOKENS = new Set(['basic', 'session'])

/**
 * Personal OAuth 2 tokens (the platform's `/api/gateway/v1/tokens/`). A token's value appears once, in the
 * response that creates it; listings show `************`. Everyone manages their own tokens, superusers all.
 */
export function tokenRoutes(api: FastifyInstance, app: App): void {
  const serialize = async (record: TokenRecord, value?: string) => {
    const token = app.tokens.withFreshLastUsed(record)
    const owner = await app.accounts.get(token.userId)
    return {
      id: token.id,
      type: 'token',
      url: `/api/gateway/v1/tokens/${token.id}/`,
      related: { user: `/api/gateway/v1/users/${token.userId}/` },
      summary_fields: { user: { id: token.userId, username: owner?.username ?? null } },
      user: token.userId,
      token: value ?? '************',
      scope: token.scope,
      description: token.description,
      expires: new Date(token.expires).toISOString(),
      created: new Date(token.created).toISOString(),
      modified: new Date(token.modified).toISOString(),
      last_used: token.lastUsed === null ? null : new Date(token.lastUsed).toISOString(),
    }
  }

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = principalOf(request)
    if (!METHODS_THAT_CREATE_TOKENS.has(principal.method)) {
      throw new PermissionDenied('Tokens are created with a username and password (basic) or a login session, not with a bearer token.', 'password_login_required')
    }
    app.tokens.assertMayCreate(principal.user)
    const input = parseInput(createToken, request.body ?? {})
    const { record, value } = await app.tokens.issue(principal.user, {
      scope: input.scope,
      description: input.description ?? undefined,
      expires: input.expires === undefined ? undefined : Date.parse(input.expires),
      expiresIn: input.expires_in,
    })
    app.audit.change(actorOf(request), 'create', auditedToken(record), undefined, tokenFields(record))
    reply.code(201)
    return serialize(record, value)
  }

  const list = async (request: FastifyRequest, userId: number | undefined) => {
    const page = readPage(request)
    const { count, tokens } = await app.store.tokens.list({ offset: page.offset, limit: page.pageSize, userId })
    return paged(request, page, count, await Promise.all(tokens.map((t) => serialize(t))))
  }

  /** The token named in the path, if the caller may see it; others' tokens are "not found", not "forbidden". */
  const visibleToken = async (request: FastifyRequest): Promise<TokenRecord> => {
    const raw = (request.params as { id: string }).id
    const record = /^[1-9][0-9]{0,9}$/.test(raw) ? await app.store.tokens.findById(Number(raw)) : undefined
    if (!record || !mayManage(principalOf(request), record.userId)) throw new NotFound('No such token.')
    return record
  }

  api.get('/api/gateway/v1/tokens/', async (request) => {
    const principal = principalOf(request)
    const query = request.query as Record<string, unknown>
    const { user } = parseInput(listQuery, { user: query.user })
    if (principal.user.isSuperuser) return list(request, user)
    if (user !== undefined && user !== principal.user.id) return paged(request, readPage(request), 0, [])
    return list(request, principal.user.id)
  })

  api.post('/api/gateway/v1/tokens/', create)

  api.post('/api/gateway/v1/tokens/revoke/', { config: { access: 'superuser' } }, async (request) => {
    const input = parseInput(revokeTokens, request.body ?? {})
    if ((input.user === undefined) === (input.all === undefined)) {
      throw new ValidationFailed({ non_field_errors: ['Give either "user": <id> or "all": true.'] })
    }
    if (!input.all && !(await app.accounts.get(input.user!))) throw new ValidationFailed({ user: ['No such user.'] })
    const revoked = input.all ? await app.tokens.revokeAll() : await app.tokens.revokeUser(input.user!)
    app.audit.change(actorOf(request), 'delete', { type: 'token', name: input.all ? 'all tokens' : `tokens of user ${input.user}` }, { user: input.user ?? null, revoked })
    return { revoked }
  })

  api.get('/api/gateway/v1/tokens/:id/', async (request) => serialize(await visibleToken(request)))

  api.patch('/api/gateway/v1/tokens/:id/', async (request) => {
    const record = await visibleToken(request)
    const input = parseInput(updateToken, request.body ?? {})
    const updated = await app.tokens.update(record, { description: input.description === null ? '' : input.description, scope: input.scope })
    if (!updated) throw new NotFound('No such token.')
    app.audit.change(actorOf(request), 'update', auditedToken(updated), tokenFields(record), tokenFields(updated))
    return serialize(updated)
  })

  api.delete('/api/gateway/v1/tokens/:id/', async (request, reply) => {
    const record = await visibleToken(request)
    await app.tokens.revoke(record.id)
    app.audit.change(actorOf(request), 'delete', auditedToken(record), tokenFields(record))
    return reply.code(204).send()
  })

  api.get('/api/gateway/v1/users/:id/tokens/', async (request) => {
    const owner = await app.accounts.require(userIdParam(request))
    if (!mayManage(principalOf(request), owner.id)) throw new PermissionDenied('Only the owner and superusers see a user\'s tokens.')
    return list(request, owner.id)
  })

  api.post('/api/gateway/v1/users/:id/tokens/', async (request, reply) => {
    const owner = await app.accounts.require(userIdParam(request))
    if (owner.id !== principalOf(request).user.id) throw new PermissionDenied('A token is created by its owner.', 'not_token_owner')
    return create(request, reply)
  })
}

/** A token in the audit trail: its id and description, never its value. */
export function auditedToken(record: TokenRecord) {
  return { type: 'token', id: record.id, name: record.description || null }
}

export function tokenFields(record: TokenRecord) {
  return { user: record.userId, scope: record.scope, description: record.description, expires: new Date(record.expires).toISOString() }
}

function mayManage(principal: Principal, ownerId: number): boolean {
  return principal.user.isSuperuser || principal.user.id === ownerId
}
