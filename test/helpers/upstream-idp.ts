import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'
import Provider, { type Adapter, type AdapterPayload, type ClientMetadata } from 'oidc-provider'

/**
 * A real, standalone OpenID Connect provider for the single sign-on tests, built with the certified
 * `oidc-provider` library: authorization code flow with PKCE required, discovery, JWKS, token and
 * UserInfo endpoints, on a loopback port. Its login and consent steps are two plain HTML forms that a test
 * fills in through a real HTTP client, as a person would in a browser.
 */

export interface IdpUser {
  /** The stable subject identifier the provider issues. */
  sub: string
  password: string
  /** Claims beyond `sub`, e.g. preferred_username, email, given_name, family_name, groups. */
  claims: Record<string, unknown>
}

export interface IdpClient {
  client_id: string
  client_secret: string
  redirect_uris: string[]
}

export interface UpstreamIdp {
  issuer: string
  /** Login name at the provider -> person. Changes apply to the next sign-in. */
  users: Map<string, IdpUser>
  /** Registers a client; every client must be added before the provider's first request. */
  addClient(client: IdpClient): void
  /** A gateway `sso` entry for a client of this provider; `entry` adds the client and any other option. */
  ssoConfig(entry: { name: string; label: string; client_id: string } & Record<string, unknown>): Record<string, unknown>
  close(): Promise<void>
}

const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['preferred_username', 'given_name', 'family_name', 'name'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
}

export async function startUpstreamIdp(users: Record<string, IdpUser>): Promise<UpstreamIdp> {
  const people = new Map(Object.entries(users))
  const clients: ClientMetadata[] = []
  let provider: Provider | undefined
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-idp', alg: 'RS256', use: 'sig' }

  const server = createServer((req, res) => {
    provider ??= createProvider()
    const path = new URL(req.url ?? '/', issuer).pathname
    const interaction = /^\/interaction\/([\w-]+)(?:\/(login|consent))?$/.exec(path)
    if (!interaction) return provider.callback()(req, res)
    handleInteraction(provider, req, res, interaction[2]).catch((error: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(error.message)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  function createProvider(): Provider {
    return new Provider(issuer, {
      clients,
      jwks: { keys: [signingKey] },
      cookies: { keys: [randomBytes(32).toString('hex')] },
      adapter: memoryAdapter(new Map()),
      ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
      scopes: Object.keys(SCOPE_CLAIMS),
      claims: SCOPE_CLAIMS,
      pkce: { required: () => true },
      responseTypes: ['code'],
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      async findAccount(_ctx, sub) {
        const person = [...people.values()].find((p) => p.sub === sub)
        if (!person) return undefined
        return { accountId: sub, claims: () => ({ ...person.claims, sub }) }
      },
    })
  }

  async function handleInteraction(oidc: Provider, req: IncomingMessage, res: ServerResponse, step: string | undefined): Promise<void> {
    const details = await oidc.interactionDetails(req, res)
    if (req.method === 'GET') return sendForm(res, 200, details.uid, details.prompt.name)
    const form = new URLSearchParams(await readBody(req))
    if (step === 'login') {
      const person = people.get(form.get('username') ?? '')
      if (!person || person.password !== form.get('password')) return sendForm(res, 401, details.uid, 'login', 'Wrong username or password.')
      return oidc.interactionFinished(req, res, { login: { accountId: person.sub } }, { mergeWithLastSubmission: false })
    }
    if (form.get('decision') !== 'allow') {
      return oidc.interactionFinished(req, res, { error: 'access_denied', error_description: 'The person declined.' }, { mergeWithLastSubmission: false })
    }
    const grant = details.grantId ? (await oidc.Grant.find(details.grantId))! : new oidc.Grant({ accountId: details.session!.accountId, clientId: details.params.client_id as string })
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] }
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
    await oidc.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true })
  }

  return {
    issuer,
    users: people,
    addClient(client) {
      if (provider) throw new Error('add every client before the first request')
      clients.push({ ...client, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' })
    },
    ssoConfig(entry) {
      return { issuer, scopes: ['openid', 'profile', 'email', 'groups'], allow_insecure_http: true, timeout_seconds: 5, ...entry }
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

function sendForm(res: ServerResponse, status: number, uid: string, prompt: string, error = ''): void {
  const fields = prompt === 'login'
    ? '<input name="username" type="text"><input name="password" type="password"><button type="submit">Sign in</button>'
    : '<p>Allow the application to know who you are?</p><button name="decision" value="allow">Allow</button><button name="decision" value="deny">Deny</button>'
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(
    `<!doctype html><title>Upstream ${prompt}</title>${error ? `<p class="error">${error}</p>` : ''}<form method="post" action="/interaction/${uid}/${prompt}">${fields}</form>`,
  )
}

export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => resolve(body))
    req.on('error', reject)
  })
}

/** The provider's records (interactions, sessions, grants, codes, tokens) for one test run, in memory. */
function memoryAdapter(records: Map<string, AdapterPayload>) {
  return class TestAdapter implements Adapter {
    readonly #model: string
    constructor(model: string) {
      this.#model = model
    }
    #key(id: string) {
      return `${this.#model}:${id}`
    }
    async upsert(id: string, payload: AdapterPayload) {
      records.set(this.#key(id), payload)
    }
    async find(id: string) {
      return records.get(this.#key(id))
    }
    async findByUid(uid: string) {
      return [...records].find(([key, p]) => key.startsWith(`${this.#model}:`) && p.uid === uid)?.[1]
    }
    async findByUserCode(userCode: string) {
      return [...records].find(([key, p]) => key.startsWith(`${this.#model}:`) && p.userCode === userCode)?.[1]
    }
    async consume(id: string) {
      const payload = records.get(this.#key(id))
      if (payload) payload.consumed = Math.floor(Date.now() / 1000)
    }
    async destroy(id: string) {
      records.delete(this.#key(id))
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, payload] of records) if (payload.grantId === grantId) records.delete(key)
    }
  }
}
