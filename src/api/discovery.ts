import type { App } from '../app.ts'
import { ssoStartPath } from '../directory/sso.ts'
import { LOGIN_PATH } from '../gateway/policy.ts'
import { version } from '../version.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'

/** The roots a client starts from: the list of APIs and the gateway API's versions, above the versioned API. */
export function apiRootRoutes(api: GatewayApi, app: App): void {
  // Made again only when a reload of the configuration replaced the services.
  let listed = { services: app.config.services, apis: apiList(app.config.services) }

  // The roots set the `csrftoken` cookie, as Django's ensure_csrf_cookie does: clients (awxkit) GET a root
  // before they log in with a session.
  api.get('/api/', { config: { access: 'public' } }, async (request, reply) => {
    app.csrf.ensureToken(request, reply)
    if (listed.services !== app.config.services) listed = { services: app.config.services, apis: apiList(app.config.services) }
    return { apis: listed.apis }
  })

  api.get('/api/gateway/', { config: { access: 'public' } }, async (request, reply) => {
    app.csrf.ensureToken(request, reply)
    return { current_version: `${GATEWAY_API}/`, available_versions: { v1: `${GATEWAY_API}/` } }
  })
}

function apiList(services: App['config']['services']): Readonly<Record<string, string>> {
  return Object.freeze({ gateway: '/api/gateway/', ...Object.fromEntries(services.map((s) => [s.name, s.prefix])) })
}

/**
 * The rest of the platform's ui_auth (django-ansible-base's `generate_ui_auth_data`), at its defaults: Gatehouse has no
 * page to send the login to instead (`LOGIN_REDIRECT_OVERRIDE`), no text or logo for the login page (`custom_login_info`,
 * `custom_logo`), and is no managed cloud installation. The platform's web interface reads every one of them.
 */
const PLATFORM_UI_AUTH_DEFAULTS = Object.freeze({ login_redirect_override: '', custom_login_info: '', custom_logo: '', managed_cloud_install: false })

/** The versioned API's public endpoints: its index, health, which login methods exist, and the JWKS. */
export function discoveryRoutes(api: GatewayApi, app: App): void {
  const index = Object.freeze(Object.fromEntries(
    ['me', 'users', 'settings', 'tokens', 'applications', 'organizations', 'teams', 'role_definitions', 'role_user_assignments', 'role_team_assignments', 'ping', 'ui_auth', 'login', 'logout', 'session', 'sessions', 'jwks', 'activitystream'].map((name) => [name, `${GATEWAY_API}/${name}/`]),
  ))
  api.get('/', { config: { access: 'public' } }, async (request, reply) => {
    app.csrf.ensureToken(request, reply)
    return index
  })

  // Anonymous and polled by load balancers: probes that arrive while a query is in flight share its answer, so they
  // cost one query at a time however many come. Nothing is kept once it settles: the next probe asks again.
  let pinging: Promise<boolean> | undefined
  api.get('/ping/', { config: { access: 'public' } }, async () => {
    pinging ??= app.store.database.ping().finally(() => {
      pinging = undefined
    })
    return { status: 'good', version, pong: new Date().toISOString(), db_connected: await pinging }
  })

  // The login addresses as a client reaches them, under the path a proxy publishes the gateway at (docs/edge.md).
  api.get('/ui_auth/', { config: { access: 'public' } }, async () => ({
    show_login_form: true,
    login_url: app.publishedPath + LOGIN_PATH,
    basic_auth_enabled: app.settings.current.gateway_basic_auth_enabled,
    passwords: [{ name: 'Local', type: 'local' }, ...(app.config.ldap ? [{ name: 'LDAP', type: 'ldap' }] : [])],
    ssos: app.config.sso.map((provider) => ({ name: provider.name, label: provider.label, type: 'oidc', login_url: app.publishedPath + ssoStartPath(provider.name) })),
    ...PLATFORM_UI_AUTH_DEFAULTS,
  }))

  // Public on purpose: services fetch it to verify X-Gatehouse-Identity.
  api.get('/jwks/', { config: { access: 'open' } }, async (_request, reply) => {
    reply.header('cache-control', `public, max-age=${app.config.auth.identity_jwks_max_age_seconds}`)
    return app.identity.jwks()
  })
}
