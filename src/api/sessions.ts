import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { auditedSession, sessionFields } from '../audit/sessions.ts'
import { NotFound } from '../errors.ts'
import { sessionFilterFields, type StoredSession } from '../store/sessions.ts'
import { principalOf } from './access.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { type ListQuery, listQuery } from './list-query.ts'
import { describeList } from './metadata.ts'
import { paged } from './pagination.ts'
import { idParam } from './validation.ts'

export const listSessions = listQuery(sessionFilterFields)

/** Superusers see every live login session and can end one, or all of a user's, at once on every process. */
export function sessionRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  const list = async (request: FastifyRequest, { page, filter }: ListQuery, userId: number | undefined) => {
    const { count, sessions } = await app.store.sessions.list({ offset: page.offset, limit: page.pageSize, now: Date.now(), userId, filter })
    return paged(request, page, count, await serializeSessions(app, request, sessions))
  }

  api.get('/sessions/', { config: superuser, schema: { querystring: listSessions } }, async (request) => list(request, request.query, undefined))

  describeList(api, '/sessions/', { access: 'superuser', name: 'Session List', description: 'Live login sessions of every user.' })

  api.get('/sessions/:id/', { config: superuser, schema: { params: idParam } }, async (request) => {
    const session = await app.store.sessions.findById(request.params.id)
    if (!session || session.expiresAt <= Date.now()) throw new NotFound('No such session.')
    return (await serializeSessions(app, request, [session]))[0]
  })

  api.delete('/sessions/:id/', { config: superuser, schema: { params: idParam } }, async (request, reply) => {
    const ended = await app.sessions.endById(request.params.id)
    if (!ended) throw new NotFound('No such session.')
    app.audit.change(actorOf(request), 'delete', auditedSession(ended), sessionFields(ended))
    return reply.code(204).send()
  })

  api.get('/users/:id/sessions/', { config: superuser, schema: { params: idParam, querystring: listSessions } }, async (request) => {
    const user = await app.accounts.require(request.params.id)
    return list(request, request.query, user.id)
  })

  api.delete('/users/:id/sessions/', { config: superuser, schema: { params: idParam } }, async (request, reply) => {
    const user = await app.accounts.require(request.params.id)
    const ended = await app.sessions.endForUser(user.id)
    app.audit.change(actorOf(request), 'delete', { type: 'session', name: `sessions of ${user.username}` }, { user: user.id, ended })
    return reply.code(204).send()
  })
}

/**
 * Sessions as the API shows them; `current` marks the one the request came with. The identifier is never shown. `url`
 * is under `base`: a user's own are theirs to read at `me/sessions/{id}/`, where `sessions/{id}/` is superusers'.
 */
export function serializeSessions(app: App, request: FastifyRequest, sessions: StoredSession[], base = `${GATEWAY_API}/sessions/`) {
  const current = principalOf(request).sessionId
  const now = Date.now()
  return Promise.all(sessions.map(async (s) => ({
    id: s.id,
    url: `${base}${s.id}/`,
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
