import { createHash, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import { readBody } from './upstream-idp.ts'

/**
 * A compromised upstream OpenID Connect provider: it speaks the protocol (discovery, an authorization endpoint
 * that redirects straight back with a code, token, JWKS and UserInfo endpoints) but signs whatever ID token a
 * test asks for, so the gateway's checks of the provider's answers can be tried one by one.
 */

export interface ForgedSignIn {
  /** The claims an honest provider would put in this sign-in's ID token. */
  claims: JWTPayload & { sub: string; nonce: string }
  /** The access token the token endpoint answers with the ID token, once it issued one. */
  accessToken?: string
  /** Signs claims with the provider's real key (RS256, its published `kid` unless another is given). */
  sign(claims: JWTPayload, kid?: string): Promise<string>
}

export interface ForgingIdp {
  issuer: string
  /** Its published public key, as a JWK. */
  publicJwk: Record<string, unknown>
  /** The ID token the token endpoint answers; by default the honest one. */
  idToken: (signIn: ForgedSignIn) => Promise<string>
  /** The UserInfo response for the access token of a sign-in; by default the ID token's subject and username. */
  userinfo: (signIn: ForgedSignIn) => Record<string, unknown>
  /** Requests received, by path. */
  requests: Map<string, number>
  /** Paths answered with a redirect to another URL instead. */
  detours: Map<string, string>
  /** Paths answered with headers and then nothing, ever. */
  stalls: Set<string>
  /** Signs any claims with the provider's real key, as it would sign a logout token (header: RS256 and its `kid`, unless given). */
  signJwt(claims: JWTPayload, header?: { alg?: string; kid?: string; typ?: string }): Promise<string>
  /** The sign-out endpoint its discovery document names (`end_session_endpoint`), when a test sets one. */
  endSessionEndpoint?: string
  /** A gateway `sso` entry for this provider. */
  ssoConfig(entry: { name: string; label: string; client_id: string } & Record<string, unknown>): Record<string, unknown>
  close(): Promise<void>
}

export const honestIdToken = (signIn: ForgedSignIn): Promise<string> => signIn.sign(signIn.claims)
export const honestUserinfo = (signIn: ForgedSignIn): Record<string, unknown> => ({ sub: signIn.claims.sub, preferred_username: signIn.claims.preferred_username })

export async function startForgingIdp(person: { sub: string; username: string }): Promise<ForgingIdp> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const kid = 'forging-idp'
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
  /** Code or access token -> the sign-in it belongs to. */
  const signIns = new Map<string, ForgedSignIn>()
  /** Code -> what the token request must prove: the PKCE challenge (S256 only) and the redirect URI. */
  const bindings = new Map<string, { challenge: string; redirectUri: string }>()

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', idp.issuer)
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    idp.requests.set(url.pathname, (idp.requests.get(url.pathname) ?? 0) + 1)
    const detour = idp.detours.get(url.pathname)
    if (detour) return void res.writeHead(307, { location: detour }).end()
    if (idp.stalls.has(url.pathname)) return void res.writeHead(200, { 'content-type': 'application/json' }).write('{')
    const answer = async () => {
      switch (url.pathname) {
        case '/.well-known/openid-configuration':
          return send(200, {
            issuer: idp.issuer,
            authorization_endpoint: `${idp.issuer}/authorize`,
            token_endpoint: `${idp.issuer}/token`,
            jwks_uri: `${idp.issuer}/jwks`,
            userinfo_endpoint: `${idp.issuer}/userinfo`,
            response_types_supported: ['code'],
            subject_types_supported: ['public'],
            // A compromised provider advertises whatever it means to send.
            id_token_signing_alg_values_supported: ['RS256', 'HS256', 'none'],
            code_challenge_methods_supported: ['S256'],
            ...(idp.endSessionEndpoint ? { end_session_endpoint: idp.endSessionEndpoint } : {}),
          })
        case '/authorize': {
          const code = randomBytes(16).toString('hex')
          // Like a careful honest provider: no sign-in without a PKCE S256 challenge.
          if (url.searchParams.get('code_challenge_method') !== 'S256' || !url.searchParams.get('code_challenge')) return send(400, { error: 'invalid_request' })
          bindings.set(code, { challenge: url.searchParams.get('code_challenge')!, redirectUri: url.searchParams.get('redirect_uri')! })
          const now = Math.floor(Date.now() / 1000)
          signIns.set(code, {
            claims: { iss: idp.issuer, aud: url.searchParams.get('client_id')!, sub: person.sub, preferred_username: person.username, nonce: url.searchParams.get('nonce')!, iat: now, exp: now + 300 },
            sign: (claims, keyId = kid) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: keyId }).sign(privateKey),
          })
          const back = new URL(url.searchParams.get('redirect_uri')!)
          back.searchParams.set('code', code)
          back.searchParams.set('state', url.searchParams.get('state')!)
          return res.writeHead(302, { location: back.href }).end()
        }
        case '/token': {
          const form = new URLSearchParams(await readBody(req))
          const code = form.get('code') ?? ''
          const signIn = signIns.get(code)
          const binding = bindings.get(code)
          const verified = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url') === binding?.challenge
          if (!signIn || !verified || form.get('redirect_uri') !== binding.redirectUri) return send(400, { error: 'invalid_grant' })
          const accessToken = randomBytes(16).toString('hex')
          signIns.set(accessToken, signIn)
          signIn.accessToken = accessToken
          return send(200, { access_token: accessToken, token_type: 'Bearer', expires_in: 300, id_token: await idp.idToken(signIn) })
        }
        case '/jwks':
          return send(200, { keys: [publicJwk] })
        case '/userinfo': {
          const signIn = signIns.get((req.headers.authorization ?? '').replace(/^Bearer /, ''))
          return signIn ? send(200, idp.userinfo(signIn)) : send(401, { error: 'invalid_token' })
        }
        case '/logout': {
          // RP-Initiated Logout 1.0: an honest provider signs the person out and sends the browser back with the state.
          const back = URL.parse(url.searchParams.get('post_logout_redirect_uri') ?? '')
          if (!back) return send(400, { error: 'invalid_request' })
          back.searchParams.set('state', url.searchParams.get('state') ?? '')
          return res.writeHead(302, { location: back.href }).end()
        }
        default:
          return send(404, { error: 'not_found' })
      }
    }
    answer().catch((error: Error) => send(500, { error: 'server_error', error_description: error.message }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

  const idp: ForgingIdp = {
    issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    publicJwk,
    idToken: honestIdToken,
    userinfo: honestUserinfo,
    requests: new Map(),
    detours: new Map(),
    stalls: new Set(),
    signJwt: (claims, header = {}) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, ...header }).sign(privateKey),
    ssoConfig: (entry) => ({ issuer: idp.issuer, allow_insecure_http: true, timeout_seconds: 5, client_secret: 'forging-secret', ...entry }),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
  return idp
}
