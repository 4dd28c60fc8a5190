import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { millisecondsOf, secondsInWholeMilliseconds } from '../../src/config/durations.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

// Durations the schema takes whose thousandfold is no whole number in floating point (1.005 * 1000 is
// 1004.9999999999999): Node's server deadlines, undici and AbortSignal.timeout refuse such milliseconds.
const AWKWARD_SECONDS = [1.005, 4.001, 0.0005]

describe('durations with fractions of a second', () => {
  let upstream: RecordingUpstream
  let idp: UpstreamIdp
  let gw: TestGateway

  before(async () => {
    upstream = await startRecordingUpstream()
    idp = await startUpstreamIdp({})
    idp.addClient({ client_id: 'gatehouse', client_secret: 'fractional-durations-secret', redirect_uris: [] })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: 4.001, request_seconds: 300.001 } },
        services: [{
          name: 'svc', prefix: '/svc/', upstream: upstream.url, public_paths: ['/svc/*'],
          timeouts: { connect_seconds: 1.005, response_seconds: 1.005, websocket_idle_seconds: 1.005 }, pool: { wait_seconds: 1.005 },
        }],
        sso: [idp.ssoConfig({ name: 'corp', label: 'Corp', client_id: 'gatehouse', client_secret: 'fractional-durations-secret', timeout_seconds: 1.005 })],
      },
    })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
    await upstream?.close()
  })

  it('serves with server timeouts of such a duration', async () => {
    assert.equal((await gw.fetch('/healthz')).status, 200)
  })

  it('forwards to a service whose timeouts are such durations', async () => {
    const response = await gw.fetch('/svc/x')
    assert.equal(response.status, 200, await response.text())
  })

  it('reaches a single sign-on provider whose timeout is such a duration', async () => {
    const response = await gw.fetch('/api/gateway/v1/login/sso/corp/')
    assert.equal(response.status, 302, await response.text())
    assert.ok(response.headers.get('location')?.startsWith(idp.issuer), response.headers.get('location') ?? '')
  })

  it('converts each to whole milliseconds, never to 0, which timers read as none', () => {
    for (const seconds of AWKWARD_SECONDS) {
      const ms = millisecondsOf(seconds)
      assert.ok(Number.isInteger(ms) && ms >= 1 && Math.abs(ms - seconds * 1000) <= 1, `${seconds} s: ${ms} ms`)
      const forLibrary = secondsInWholeMilliseconds(seconds)
      assert.ok(Number.isInteger(forLibrary * 1000) && forLibrary >= seconds && forLibrary - seconds < 0.005, `${seconds} s: ${forLibrary} s`)
    }
    assert.equal(millisecondsOf(0), 0)
  })
})
