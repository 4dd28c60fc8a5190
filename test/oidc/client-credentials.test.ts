import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, postToken as post, REALM, SERVICE_SECRET, testRealms, watchProviderGrants, without, type TokenAnswer } from '../helpers/oidc.ts'

const demo = loadConfigFile(demoConfigFile)
const FORM = `client_id=reports&client_secret=${SERVICE_SECRET}&grant_type=client_credentials`
const BASIC = `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}`
/** Claims and record members that differ between any two tokens. */
const PER_TOKEN = new Set(['jti', 'iat', 'exp'])
/** A member oidc-provider ignores and the shortcut does not take: the same request, answered by oidc-provider. */
const TO_PROVIDER = '&ignored=1'

/**
 * The plain client_credentials grant is answered without oidc-provider's HTTP stack (src/oidc/client-credentials.ts);
 * its answer, token and record must be the ones oidc-provider makes, here for the same client authenticating with
 * HTTP basic, which oidc-provider answers.
 */
for (const backend of gatewayBackends) {
  describe(`client_credentials without oidc-provider's HTTP stack, on ${backend.name}`, () => {
    let gw: TestGateway
    /** The grants oidc-provider itself answered (its `grant.success` event). */
    let providerGrants: { readonly count: number }

    before(async () => {
      gw = await backend.start({ config: { realms: testRealms, services: demo.services } })
      providerGrants = watchProviderGrants(gw)
    })
    after(() => gw.close())

    /** The answer the shortcut gave (asserted) and the one oidc-provider gave, equal but for the token's own claims. */
    async function assertAnsweredAsProvider(shortcut: TokenAnswer, provider: TokenAnswer): Promise<void> {
      assert.equal(shortcut.status, 200)
      assert.deepEqual(shortcut.rawHeaders, provider.rawHeaders)
      assert.deepEqual(Object.keys(shortcut.body), Object.keys(provider.body))
      assert.deepEqual(without(shortcut.body, new Set(['access_token'])), without(provider.body, new Set(['access_token'])))
      assert.equal(shortcut.body.access_token.length, provider.body.access_token.length)
      assert.deepEqual(decodeJwtPart(shortcut.body.access_token, 0), decodeJwtPart(provider.body.access_token, 0))
      const [claims, expected] = [decodeJwtPart(shortcut.body.access_token, 1), decodeJwtPart(provider.body.access_token, 1)]
      assert.deepEqual(Object.keys(claims), Object.keys(expected))
      assert.deepEqual(without(claims, PER_TOKEN), without(expected, PER_TOKEN))
      assert.equal(claims.exp - claims.iat, expected.exp - expected.iat)

      const [record, expectedRecord] = await Promise.all([claims.jti, expected.jti].map((jti) => gw.store.oidc.find('ClientCredentials', jti, Date.now())))
      assert.ok(record && expectedRecord)
      assert.deepEqual(Object.keys(record.payload), Object.keys(expectedRecord.payload))
      assert.deepEqual(without(record.payload, PER_TOKEN), without(expectedRecord.payload, PER_TOKEN))
      assert.equal(record.payload.jti, claims.jti)
      assert.deepEqual([record.grantId, record.consumedAt, record.expiresAt! - claims.exp * 1000 <= 1000], [expectedRecord.grantId, expectedRecord.consumedAt, true])
    }

    for (const [method, form, headers] of [
      ['the form (client_secret_post)', FORM, {}],
      ['HTTP basic (client_secret_basic)', 'grant_type=client_credentials', { authorization: BASIC }],
      ['HTTP basic with the client named in the form too', 'client_id=reports&grant_type=client_credentials', { authorization: BASIC }],
    ] as const) {
      it(`answers a secret in ${method} with the headers, members, token and record oidc-provider gives`, async () => {
        const before = providerGrants.count
        const shortcut = await post(gw, form, headers)
        assert.equal(providerGrants.count, before, 'the plain request was answered by oidc-provider')
        const provider = await post(gw, form + TO_PROVIDER, headers)
        assert.equal(providerGrants.count, before + 1)
        await assertAnsweredAsProvider(shortcut, provider)
      })
    }

    it('issues tokens that the gateway takes, introspection finds and revocation ends', async () => {
      const { body } = await post(gw, FORM)
      const callDemoApp = () => gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${body.access_token}`, 'content-type': 'application/json' }, body: '{}' })
      assert.equal((await callDemoApp()).status, 200)
      const endpoint = (path: string, token: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/${path}`, { method: 'POST', headers: { authorization: BASIC }, body: new URLSearchParams({ token }) })
      const introspection = await (await endpoint('token/introspect', body.access_token)).json() as Record<string, unknown>
      assert.equal(introspection.active, true)
      assert.equal(introspection.client_id, 'reports')
      assert.equal((await endpoint('revoke', body.access_token)).status, 200)
      assert.deepEqual(await (await endpoint('token/introspect', body.access_token)).json(), { active: false })
      assert.equal((await callDemoApp()).status, 401)
    })

    it('leaves every other request to oidc-provider, which answers it as before', async () => {
      const before = providerGrants.count
      const wrongSecret = await post(gw, 'client_id=reports&client_secret=wrong&grant_type=client_credentials')
      assert.equal(wrongSecret.status, 401)
      assert.deepEqual(wrongSecret.body, { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' })
      // A public client's secret is ignored, as Keycloak ignores it; the grant is still not the public client's.
      const notServiceAccount = await post(gw, 'client_id=end-users&client_secret=x&grant_type=client_credentials')
      assert.equal(notServiceAccount.status, 401)
      assert.equal(notServiceAccount.body.error_description, 'Public client not allowed to retrieve service account')
      const withScope = await post(gw, `${FORM}&scope=profile`)
      assert.equal(withScope.status, 200)
      const withResource = await post(gw, `${FORM}&resource=${encodeURIComponent(`urn:gatehouse:realm:${REALM}`)}`)
      assert.equal(withResource.status, 200)
      // HTTP basic whose parts are form-urlencoded is decoded by oidc-provider (RFC 6749 §2.3.1).
      const encodedBasic = await post(gw, 'grant_type=client_credentials', { authorization: `Basic ${Buffer.from(`report%73:${SERVICE_SECRET}`).toString('base64')}` })
      assert.equal(encodedBasic.status, 200)
      const wrongBasicSecret = await post(gw, 'grant_type=client_credentials', { authorization: `Basic ${Buffer.from('reports:wrong').toString('base64')}` })
      assert.equal(wrongBasicSecret.status, 401)
      assert.deepEqual(wrongBasicSecret.body, { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' })
      const otherClientInForm = await post(gw, 'client_id=end-users&grant_type=client_credentials', { authorization: BASIC })
      assert.equal(otherClientInForm.status, 400)
      assert.equal(providerGrants.count, before + 3)
    })

    it('counts its tokens as oidc-provider\'s grants are counted', async () => {
      const issued = async () => Number(new RegExp(`gatehouse_oidc_[a-z_]*\\{[^}]*realm="${REALM}"[^}]*grant_type="client_credentials"[^}]*\\} (\\d+)`).exec(await (await gw.fetch('/metrics')).text())?.[1] ?? 0)
      const start = await issued()
      await post(gw, FORM)
      assert.equal(await issued(), start + 1)
    })
  })
}
