import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { assertTokensThrottled, postToken as post, retryAfterOf, SERVICE_SECRET, testRealms, watchProviderGrants, type TokenAnswer } from '../helpers/oidc.ts'

const LIMIT = 3
const ACCESS_TOKEN_SECONDS = 10
const form = (clientId: string) => `client_id=${clientId}&client_secret=${SERVICE_SECRET}&grant_type=client_credentials`
/** A member oidc-provider ignores and the shortcut does not take: the same request, answered by oidc-provider. */
const TO_PROVIDER = '&ignored=1'

const assertThrottled = (answer: TokenAnswer) => assertTokensThrottled(answer, ACCESS_TOKEN_SECONDS)

describe('client_credentials_tokens_limit: the service-account tokens one client gets within an access token\'s lifetime', () => {
  let gw: TestGateway
  let providerGrants: { readonly count: number }

  before(async () => {
    const [realm, ...others] = testRealms
    const other = { client_id: 'nightly', public_client: false, secret: SERVICE_SECRET, service_accounts: true }
    gw = await startGateway({ config: { realms: [{ ...realm, access_token_seconds: ACCESS_TOKEN_SECONDS, client_credentials_tokens_limit: LIMIT, clients: [...realm!.clients, other] }, ...others] } })
    providerGrants = watchProviderGrants(gw)
  })
  after(() => gw.close())

  it('refuses one past the limit with 429 and Retry-After, on either path, stores nothing for it, and leaves other clients be', async () => {
    const issued: string[] = []
    for (let i = 0; i < LIMIT; i++) {
      // The shortcut and oidc-provider's own grant count alike.
      const answer = await post(gw, form('reports') + (i % 2 ? TO_PROVIDER : ''))
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      issued.push(answer.body.access_token)
    }
    const grants = providerGrants.count
    assertThrottled(await post(gw, form('reports')))
    assert.equal(providerGrants.count, grants, 'the shortcut answered the refusal itself, not oidc-provider once more')
    assertThrottled(await post(gw, form('reports') + TO_PROVIDER))
    assert.equal(providerGrants.count, grants)
    // A service looping over the grant wrote a row a request; the refused ones wrote none.
    const stored = await Promise.all(issued.map((token) => gw.store.oidc.find('ClientCredentials', JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti, Date.now())))
    assert.equal(stored.filter(Boolean).length, LIMIT)
    assert.equal((await post(gw, form('nightly'))).status, 200, 'another client has a count of its own')
    // A wrong secret is refused as ever, past the limit too, and does not count.
    assert.equal((await post(gw, `client_id=nightly&client_secret=${'x'.repeat(32)}&grant_type=client_credentials`)).body.error, 'invalid_client')
  })

  it('issues to the client again once the lifetime of the tokens counted has passed', async () => {
    const refused = await post(gw, form('reports'))
    assertThrottled(refused)
    await sleep(retryAfterOf(refused) * 1000 + 200)
    const answer = await post(gw, form('reports'))
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
  })
})
