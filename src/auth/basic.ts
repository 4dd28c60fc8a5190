import type { GatewayRequest } from '../http/gateway-request.ts'
import { connectionGone } from '../http/client-gone.ts'
import { utf8OrLatin1 } from '../http/legacy-text.ts'
import { BasicAuthDisabled, MalformedCredentials } from '../errors.ts'
import type { Accounts } from '../directory/accounts.ts'
import type { RuntimeSettings } from '../settings/runtime.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { CredentialCache } from './credential-cache.ts'
import type { Credential } from './principal.ts'

const BASIC = /^basic +([A-Za-z0-9+/]*={0,2}) *$/i
const MAX_HEADER = 4096

/** HTTP basic authorization (RFC 7617), for local and directory accounts alike. */
export class BasicAuthenticator implements Authenticator {
  readonly id = 'basic' as const
  readonly reads = 'authorization' as const
  readonly #accounts: Accounts
  readonly #settings: RuntimeSettings
  readonly #cache: CredentialCache

  constructor(accounts: Accounts, settings: RuntimeSettings, cache: CredentialCache) {
    this.#accounts = accounts
    this.#settings = settings
    this.#cache = cache
  }

  async authenticate(request: GatewayRequest): Promise<Credential | NotMine> {
    const header = request.headers.authorization
    if (!header || !/^basic(\s|$)/i.test(header)) return NOT_MINE
    if (!this.#settings.current.gateway_basic_auth_enabled) {
      throw new BasicAuthDisabled()
    }
    // Remembered by the header exactly as sent, so that a request of a pair in use is answered without decoding it:
    // only a header that decoded and verified is ever stored, and any other spelling of the pair is verified on its
    // own. Per client address: a pair verified for one client never answers another's guess, which the lockout would
    // have refused (while a username is locked, a right guess must not come back 200 from memory).
    const key = this.#cache.keyOf('basic', request.ip, header)
    // A check still waiting for its turn is dropped once its client has gone (the lockout's and the cores' queues);
    // the connection is watched only when the pair is verified, not on a request answered from memory.
    let gone: ReturnType<typeof connectionGone> | undefined
    try {
      const userId = await this.#cache.resolve(key, async (signal) => {
        const { username, password } = parseBasic(header)
        return (await this.#accounts.checkPassword(username, password, request.ip, { method: 'basic' }, undefined, signal)).id
      }, () => (gone = connectionGone(request.raw.socket)).signal)
      return { userId, method: 'basic' }
    } finally {
      gone?.release()
    }
  }

  async accountRefused(credential: Credential): Promise<void> {
    this.#cache.forgetUser(credential.userId)
  }
}

export function parseBasic(header: string): { username: string; password: string } {
  const match = header.length <= MAX_HEADER ? BASIC.exec(header) : null
  // Padded, as RFC 4648 writes it and Django REST framework requires (Python's b64decode refuses it otherwise).
  if (!match || match[1]!.length % 4 !== 0) {
    throw new MalformedCredentials('Invalid basic header. Credentials not correctly base64 encoded.')
  }
  const decoded = utf8OrLatin1(Buffer.from(match[1]!, 'base64'))
  const colon = decoded.indexOf(':')
  if (colon < 0) throw new MalformedCredentials('Invalid basic header. No credentials provided.')
  // No username or password holds one, and the database refuses text with it wherever it would be written (the
  // audit trail's record of a failed login among them): refused here, as the realms refuse it in a form.
  if (decoded.includes('\0')) throw new MalformedCredentials('Invalid basic header. Credentials contain a NUL character.')
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}
