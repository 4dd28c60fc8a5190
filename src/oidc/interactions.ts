import type { FastifyReply, FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import { escapeHtml, GatehouseError } from '../errors.ts'
import { renderLoginPage } from '../ui/login-page.ts'
import { simplePage } from './keycloak-format.ts'
import { resolveLoginName } from './login-name.ts'
import type { Realm } from './realm.ts'

/** A login form is a few short fields; anything longer is not one. */
const FORM_LIMIT = 16 * 1024

/**
 * The login step of the authorization code flow, on Gatehouse's one login page. oidc-provider sends the browser
 * here with an interaction cookie (SameSite=Lax, scoped to this path); the form posts back here, the password is
 * checked like every other Gatehouse login, and oidc-provider continues the authorization. A cross-site form
 * post carries no interaction cookie, so it cannot log someone in (login CSRF).
 */
export async function loginStep(app: App, realm: Realm, uid: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { instance: provider } = await realm.provider()
  let details: Awaited<ReturnType<typeof provider.interactionDetails>>
  try {
    details = await provider.interactionDetails(request.raw, reply.raw)
  } catch {
    return expired(reply)
  }
  if (details.uid !== uid || details.prompt.name !== 'login') return expired(reply)
  const clientId = String(details.params.client_id ?? '')
  const page = { action: `/realms/${realm.name}/login-actions/${uid}`, subtitle: `Log in to ${clientId} (realm ${realm.name})` }

  if (request.method !== 'POST') return html(reply, 200, renderLoginPage(page))

  const form = await readForm(request)
  const username = form.get('username') ?? ''
  const password = form.get('password') ?? ''
  let accountId: string
  try {
    const user = await app.accounts.checkPassword(await resolveLoginName(app.store, realm.config, username), password)
    await app.accounts.recordLogin(user)
    accountId = String(user.id)
  } catch (error) {
    if (!(error instanceof GatehouseError) || error.status >= 500) throw error
    const message = error.code === 'account_disabled' ? 'Your account is disabled.'
      : error.code === 'account_locked' ? error.message : 'Invalid username or password.'
    return html(reply, 200, renderLoginPage({ ...page, username: username.slice(0, 150), error: message }))
  }
  const returnTo = await provider.interactionResult(request.raw, reply.raw, { login: { accountId } }, { mergeWithLastSubmission: false })
  return reply.header('cache-control', 'no-store').redirect(returnTo, 303)
}

/** Where a browser that the gateway sent to log in comes back: the service it asked for takes API clients only. */
export function gatewayCallback(realm: Realm, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const query = request.query as Record<string, string | undefined>
  const next = typeof query.state === 'string' ? Buffer.from(query.state, 'base64url').toString('utf8') : ''
  const path = /^\/(?!\/)[^\s]*$/.test(next) ? next : ''
  if (typeof query.error === 'string') {
    return html(reply, 400, simplePage('Login failed', `<p>${escapeHtml(query.error_description ?? query.error)}</p>`))
  }
  return html(reply, 200, simplePage('Logged in', `<p>You are logged in to realm ${escapeHtml(realm.name)}.</p>` +
    (path ? `<p><code>${escapeHtml(path)}</code> is for API clients: send <code>Authorization: Bearer &lt;access token&gt;</code> ` +
      `with a token from <code>${escapeHtml(realm.issuer)}/protocol/openid-connect/token</code>.</p>` : '')))
}

function expired(reply: FastifyReply): FastifyReply {
  return html(reply, 400, simplePage('Login expired', '<p>Your login attempt timed out or was already used. Go back to the application and start again.</p>'))
}

function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body)
}

async function readForm(request: FastifyRequest): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(request.headers['content-type'] ?? '')) return new URLSearchParams()
  let text = ''
  for await (const chunk of request.raw) {
    text += chunk
    if (text.length > FORM_LIMIT) return new URLSearchParams()
  }
  return new URLSearchParams(text)
}
