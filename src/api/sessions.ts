import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { NotFound } from '../errors.ts'
import type { StoredSession } from '../store/sessions.ts'
import { principalOf } from './access.ts'
import { paged, readPage } from './pagination.ts'
import { userIdParam } from './users.ts'
import { parseInput } from './validation.ts'

const listQuery = z.object({ user: z.string().regex(/^[1-9][0-9]{0,9}$/, 'Expected a user id.').transform(Number).optional() })

/** Superusers see every live login session and can end one, or all of a user's, at once on every process. */
export function sessionRoutes(api: FastifyInstance, app: App): void {
  const serialize = (request: FastifyRequest, sessions: StoredSession[]) => serializeSessions(app, request, sessions)
  const list = async (request: FastifyRequest, userId: number | undefined) => {
    const page = readPage(request)
    const { count, sessions } = await app.store.sessions.list({ offset: page.offset, limit: page.pageSize, now: Date.now(), userId })
    return paged(request, page, count, await serialize(request, sessions))
  }
  const sessionIdParam = (request: FastifyRequest) => {
    const raw = (request.params as { id: string }).id
    if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new NotFound('No such session.')
    return Number(raw)
  }

  api.get('/api/gateway/v1/sessions/', { config: { access: 'superuser' } }, async (request) => {
    const query = request.query as Record<string, unknown>
    return list(request, parseInput(listQuery, { user: query.user }).user)
  })

  api.get('/api/gateway/v1/sessions/:id/', { config: { access: 'superuser' } }, async (request) => {
    const session = await app.store.sessions.findById(sessionIdParam(request))
    if (!session || session.expiresAt <= Date.now()) throw new NotFound('No such session.')
    return (await serialize(request, [session]))[0]
  })

  api.delete('/api/gateway/v1/sessions/:id/', { config: { access: 'superuser' } }, async (request, reply) => {
    const ended = await app.sessions.endById(sessionIdParam(request))
    if (!ended) throw new NotFound('No such session.')
    app.audit.change(actorOf(request), 'delete', auditedSession(ended), sessionFields(ended))
    return reply.code(204).send()
  })

  api.get('/api/gateway/v1/users/:id/sessions/', { config: { access: 'superuser' } }, async (request) => {
    const user = await app.accounts.require(userIdParam(request))
    return list(request, user.id)
  })

  api.delete('/api/gateway/v1/users/:id/sessions/', { config: { access: 'superuser' } }, async (request, reply) => {
    const user = await app.accounts.require(userIdParam(request))
    const ended = await app.sessions.endForUser(user.id)
    app.audit.change(actorOf(request), 'delete', { type: 'session', name: `sessions of ${user.username}` }, { user: user.id, ended })
    return reply.code(204).send()
  })
}

/** A session in the audit trail: its id (the identifier itself is a secret and never recorded). */
export function auditedSession(session: { id: number }) {
  return { type: 'session', id: session.id }
}

export function sessionFields(session: { userId: number; expiresAt: number; ip?: string; userAgent?: string }) {
  return { user: session.userId, expires_on: new Date(session.expiresAt).toISOString(), ip: session.ip ?? null, user_agent: session.userAgent ?? null }
}

/** Sessions as the API shows them; `current` marks the one the request came with. The identifier is never shown. */
export function serializeSessions(app: App, request: FastifyRequest, sessions: StoredSession[]) {
  const current = principalOf(request).sessionId
  const now = Date.now()
  return Promise.all(sessions.map(async (s) => ({
    id: s.id,
    url: `/api/gateway/v1/sessions/${s.id}/`,
    user: s.userId,
    username: (await app.accounts.get(s.userId))?.username ?? null,
    created: new Date(s.created).toISOString(),
    expires_on: new Date(s.expiresAt).toISOString(),
    expires_in_seconds: Math.max(0, Math.floor((s.expiresAt - now) / 1000)),
    ip: s.ip,
    user_agent: s.userAgent,
    current: s.keyHash === current,
  })))
}
