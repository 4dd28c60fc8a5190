import type Provider from 'oidc-provider'
import epochTime from './provider-clock.ts'

/**
 * The claims of an ID token as oidc-provider's `IdToken#issue({ use: 'idtoken' })` would sign them
 * (lib/models/id_token.js, with the members lib/helpers/jwt.js `sign` adds), not signed. Every ID token of a token
 * response is Keycloak's, signed from the claims of oidc-provider's (keycloak-format.ts `tokenResponse`), so
 * oidc-provider's own signature would be made for nobody, and a signature is the costliest step of a grant (about
 * 0.3 ms of CPU for RSA-2048). Undefined for a client that wants its ID tokens encrypted: that is oidc-provider's to do.
 */
export async function idTokenClaims(provider: Provider, token: any, ctx: unknown): Promise<Record<string, unknown> | undefined> {
  const client = token.client as { clientId: string; idTokenEncryptedResponseEnc?: string }
  if (client.idTokenEncryptedResponseEnc) return undefined
  const payload = await token.payload() as Record<string, unknown>
  const now = epochTime()
  Object.assign(payload, {
    aud: client.clientId,
    exp: now + (provider.IdToken as any).expiresIn(ctx, token, client),
    iat: payload.iat ?? now,
    iss: provider.issuer,
    sub: payload.sub,
  })
  // As the token would decode: members left undefined are not in it.
  return JSON.parse(JSON.stringify(payload)) as Record<string, unknown>
}
