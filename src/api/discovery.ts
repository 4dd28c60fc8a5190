import type { FastifyInstance } from 'fastify'
import type { App } from '../app.ts'
import { ssoStartPath } from '../directory/sso.ts'
import { version } from '../version.ts'

/** The public endpoints a client starts from: the API list, health, which login methods exist, and the JWKS. */
export function discoveryRoutes(api: FastifyInstance, app: App): void {
  const apis = Object.freeze({
    gateway: '/api/gateway/',
    ...Object.fromEntries(app.config.services.map((s) => [s.name, s.prefix])),
  })

  api.get('/api/', { config: { access: 'public' } }, async () => ({ apis }))

  api.get('/api/gateway/', async () => ({ current_version: '/api/gateway/v1/', available_versions: { v1: '/api/gateway/v1/' } }))

  api.get('/api/gateway/v1/', async () => ({
    me: '/api/gateway/v1/me/',
    users: '/api/gateway/v1/users/',
    settings: '/api/gateway/v1/settings/',
    tokens: '/api/gateway/v1/tokens/',
    ping: '/api/gateway/v1/ping/',
    ui_auth: '/api/gateway/v1/ui_auth/',
    login: '/api/gateway/v1/login/',
    logout: '/api/gateway/v1/logout/',
    session: '/api/gateway/v1/session/',
    sessions: '/api/gateway/v1/sessions/',
    jwks: '/api/gateway/v1/jwks/',
  }))

  api.get('/api/gateway/v1/ping/', { config: { access: 'public' } }, async () => ({
    status: 'good',
    version,
    pong: new Date().toISOString(),
    db_connected: await app.store.database.ping(),
  }))

  api.get('/api/gateway/v1/ui_auth/', { config: { access: 'public' } }, async () => ({
    show_login_form: true,
    login_url: '/api/gateway/v1/login/',
    basic_auth_enabled: app.settings.current.gateway_basic_auth_enabled,
    passwords: [{ name: 'Local', type: 'local' }, ...(app.config.ldap ? [{ name: 'LDAP', type: 'ldap' }] : [])],
    ssos: app.config.sso.map((provider) => ({ name: provider.name, label: provider.label, type: 'oidc', login_url: ssoStartPath(provider.name) })),
  }))

  // Public on purpose: services fetch it to verify X-Gatehouse-Identity.
  api.get('/api/gateway/v1/jwks/', { config: { access: 'open' } }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return app.identity.jwks()
  })
}
