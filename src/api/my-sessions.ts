import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { auditedSession, sessionFields } from '../audit/sessions.ts'
import { NotFound } from '../errors.ts'
import type { StoredSession } from '../store/sessions.ts'
import { principalOf } from './access.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { paged } from './pagination.ts'
import { listSessions, serializeSessions } from './sessions.ts'
import { idParam, optionalBody } from './validation.ts'

/** How many sessions one pass of end_others/ reads; it repeats until only the current one is left. */
const BATCH = 200

/**
 * Everyone's own login sessions, under me/: see where you are logged in, end one, or end all but the one
 * you are using (after a lost laptop, say). Superusers manage everybody's at /sessions/.
 */
export function mySessionRoutes(api: GatewayApi, app: App): void {
  api.get('/me/sessions/', { schema: { querystring: listSessions } }, async (request) => {
    const { page, filter } = request.query
    const { user } = principalOf(request)
    const { count, sessions } = await app.store.sessions.list({ offset: page.offset, limit: page.pageSize, now: Date.now(), userId: user.id, filter })
    return paged(request, page, count, await serializeSessions(app, request, sessions, OWN_SESSIONS))
  })

  api.get('/me/sessions/:id/', { schema: { params: idParam } }, async (request) => (await serializeSessions(app, request, [await ownLiveSession(app, request)], OWN_SESSIONS))[0])

  api.delete('/me/sessions/:id/', { schema: { params: idParam } }, async (request, reply) => {
    const session = await ownLiveSession(app, request)
    // Another request may have ended it since it was read: that one answered 204 and recorded it.
    if (!await app.sessions.endById(session.id)) throw new NotFound('No such session.')
    app.audit.change(actorOf(request), 'delete', auditedSession(session), sessionFields(session))
    return reply.code(204).send()
  })

  // It takes no fields: a body naming some is refused as every endpoint refuses fields it does not know.
  api.post('/me/sessions/end_others/', { schema: { body: optionalBody(z.object({}).strict()) } }, async (request) => ({ ended: await endOtherSessions(app, request) }))
}

const OWN_SESSIONS = `${GATEWAY_API}/me/sessions/`

/** The caller's own live session named in the path; someone else's is "not found", never "forbidden": ids say nothing about other people. */
async function ownLiveSession(app: App, request: FastifyRequest & { params: { id: number } }): Promise<StoredSession> {
  const session = await app.store.sessions.findById(request.params.id)
  if (!session || session.userId !== principalOf(request).user.id || session.expiresAt <= Date.now()) throw new NotFound('No such session.')
  return session
}

/** Ends every live session of the caller except the one this request came with (all of them for basic or token). */
async function endOtherSessions(app: App, request: FastifyRequest): Promise<number> {
  const { user, sessionId: current } = principalOf(request)
  let ended = 0
  for (;;) {
    const { sessions } = await app.store.sessions.list({ offset: 0, limit: BATCH, now: Date.now(), userId: user.id })
    const others = sessions.filter((s) => s.keyHash !== current)
    if (!others.length) return ended
    for (const session of others) {
      if (!(await app.sessions.endById(session.id))) continue
      app.audit.change(actorOf(request), 'delete', auditedSession(session), sessionFields(session))
      ended++
    }
    if (sessions.length < BATCH) return ended
  }
}
