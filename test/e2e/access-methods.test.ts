import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { demoWithRuledServices } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const EXT_AUTHZ = '/api/gateway/v1/authz/ext-authz'
const AUTH_REQUEST = '/api/gateway/v1/authz/auth-request/'

/**
 * A rule's GET covers HEAD, as nginx's `limit_except GET` and every framework that answers HEAD with its GET handler:
 * a deny for GET that HEAD slipped past would leak the response's headers, an allow for GET that refused HEAD would
 * break clients that probe first. Judged through the built-in proxy and through each forward-auth question alike.
 */
describe('access rules naming methods', () => {
  let gw: TestGateway
  const alice = { authorization: basic('alice', 'alice-password-long') }

  before(async () => {
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
        ...demoWithRuledServices({
          denied: [{ deny: { methods: ['GET'], paths: ['/api/denied/secret/*'] } }, { allow: {} }],
          readers: [{ allow: { methods: ['GET'] } }],
          probes: [{ allow: { methods: ['HEAD'] } }],
          lowercase: [{ allow: { methods: ['get'] } }],
        }),
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
  })
  after(() => gw.close())

  /** The status the built-in proxy and each forward-auth question give `method` on `path`, by which was asked. */
  async function statuses(method: string, path: string): Promise<Record<string, number>> {
    const [proxy, extAuthz, authRequest] = await Promise.all([
      gw.fetch(path, { method, headers: alice }),
      gw.fetch(EXT_AUTHZ + path, { method, headers: alice }),
      gw.fetch(AUTH_REQUEST, { headers: { ...alice, 'x-original-uri': path, 'x-original-method': method } }),
    ])
    return { proxy: proxy.status, 'ext-authz': extAuthz.status, 'auth-request': authRequest.status }
  }
  /** Each request judged the same by the built-in proxy and every forward-auth question: the status all of them give. */
  async function assertEverywhere(cases: [method: string, path: string, status: number][]): Promise<void> {
    for (const [method, path, status] of cases) {
      assert.deepEqual(await statuses(method, path), { proxy: status, 'ext-authz': status, 'auth-request': status }, `${method} ${path}`)
    }
  }

  it('denies HEAD where a rule denies GET', () => assertEverywhere([
    ['GET', '/api/denied/secret/report', 403], ['HEAD', '/api/denied/secret/report', 403],
    ['HEAD', '/api/denied/open/report', 200], ['POST', '/api/denied/secret/report', 200],
  ]))

  it('names the rule that denied HEAD, as written', async () => {
    const refused = await gw.fetch(AUTH_REQUEST, { headers: { ...alice, accept: 'application/json', 'x-original-uri': '/api/denied/secret/x', 'x-original-method': 'HEAD' } })
    assert.match((await json(refused)).detail, /Rule 1 of the service "denied" \(deny methods=GET paths=\/api\/denied\/secret\/\*\)/)
  })

  it('allows HEAD where a rule allows GET, and nothing else', () => assertEverywhere([
    ['GET', '/api/readers/x', 200], ['HEAD', '/api/readers/x', 200], ['POST', '/api/readers/x', 403], ['OPTIONS', '/api/readers/x', 403],
  ]))

  it('keeps a rule naming HEAD alone to HEAD', () => assertEverywhere([['HEAD', '/api/probes/x', 200], ['GET', '/api/probes/x', 403]]))

  it('reads a method written in lower case as the method', () => assertEverywhere([
    ['GET', '/api/lowercase/x', 200], ['HEAD', '/api/lowercase/x', 200], ['DELETE', '/api/lowercase/x', 403],
  ]))
})
