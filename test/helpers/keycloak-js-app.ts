import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser } from 'playwright-core'
import { launchChromium } from './chromium.ts'
import { repoRoot, startGateway, type TestGateway } from './gateway.ts'
import { REALM, realmWith } from './oidc.ts'

const KEYCLOAK_JS = readFileSync(`${repoRoot}node_modules/keycloak-js/lib/keycloak.js`, 'utf8')

/** The page Keycloak's documentation gives for `silentCheckSsoRedirectUri`: it hands its URL to the app. */
const SILENT_CHECK_SSO = '<!doctype html><html><body><script>parent.postMessage(location.href, location.origin)</script></body></html>'

export interface KeycloakJsApp {
  url: string
  server: Server
  close(): Promise<void>
}

function appPage(gatewayUrl: string, initOptions: Record<string, unknown>): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>App</title></head><body><h1>App</h1>
<script type="module">
import Keycloak from '/keycloak.js'
const keycloak = new Keycloak({ url: ${JSON.stringify(gatewayUrl)}, realm: ${JSON.stringify(REALM)}, clientId: 'spa' })
window.keycloak = keycloak
window.events = []
keycloak.onAuthLogout = () => window.events.push('logout')
keycloak.onAuthError = () => window.events.push('error')
keycloak.onActionUpdate = (status, action) => window.events.push(\`action:\${status}:\${action}\`)
keycloak.init(${JSON.stringify(initOptions)}).then((authenticated) => { window.initResult = { authenticated } }, (error) => { window.initResult = { error: error instanceof Error ? error.message : error } })
</script></body></html>`
}

/**
 * A single-page application on its own origin that uses keycloak-js (npm, version 26) as Keycloak's documentation
 * writes it: `new Keycloak({url, realm, clientId})` and `init(options)`. Each path `/<name>` is an app page whose
 * `init` takes `apps[name]` (`/` takes `apps['']`); `apps` may be a function of the app's own URL, for options that
 * name it (`silentCheckSsoRedirectUri`). The outcome of `init` is in `window.initResult`, and the `onAuthLogout`,
 * `onAuthError` and `onActionUpdate` events are listed in `window.events`. `/silent-check-sso.html` is the page for
 * `silentCheckSsoRedirectUri`.
 */
export async function startKeycloakJsApp(gatewayUrl: () => string, appsOf: Record<string, Record<string, unknown>> | ((appUrl: string) => Record<string, Record<string, unknown>>)): Promise<KeycloakJsApp> {
  let apps: Record<string, Record<string, unknown>> = {}
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://app').pathname
    const name = path.slice(1)
    if (path === '/keycloak.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(KEYCLOAK_JS)
    } else if (path === '/silent-check-sso.html') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(SILENT_CHECK_SSO)
    } else if (Object.hasOwn(apps, name)) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(appPage(gatewayUrl(), apps[name]!))
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  apps = typeof appsOf === 'function' ? appsOf(url) : appsOf
  return {
    url,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

export interface KeycloakJsSetup {
  gw: TestGateway
  app: KeycloakJsApp
  browser: Browser
  close(): Promise<void>
}

/**
 * The gateway whose realm has the public client `spa` for the app's origin (`redirect_uris`, `post_logout_redirect_uris`
 * and `web_origins` as docs/oidc.md gives them, plus `client`), the app, the user alice, and Chromium. `config` adds to
 * the gateway's configuration.
 */
export async function startKeycloakJsSetup(apps: Parameters<typeof startKeycloakJsApp>[1], client: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<KeycloakJsSetup> {
  let gatewayUrl = ''
  const app = await startKeycloakJsApp(() => gatewayUrl, apps)
  const gw = await startGateway({
    config: {
      realms: realmWith([{ client_id: 'spa', public_client: true, redirect_uris: [`${app.url}/*`], post_logout_redirect_uris: ['+'], web_origins: ['+'], ...client }]),
      ...config,
    },
  })
  gatewayUrl = gw.url
  await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell' })
  const browser = await launchChromium()
  return {
    gw, app, browser,
    async close() {
      await browser.close()
      await gw.close()
      await app.close()
    },
  }
}
