import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../src/config/schema.ts'
import { demoConfigFile, loadConfigFile, validateConfig } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, testRealms } from '../helpers/oidc.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/** `reports`, taking the realm's tokens meant for `audiences`, and refusing whatever `access` says. */
function reports(upstream: string, audiences: string[], access?: Record<string, unknown>[]): Record<string, unknown> {
  return { name: 'reports', prefix: '/reports/', upstream, accepts: ['oidc'], oidc: { audiences }, ...(access ? { access } : {}) }
}

/**
 * A request finds its service's route as it arrives and is judged by it, though a reload of the configuration comes
 * before its token is: by the entry rules and the token audiences of one and the same file. A reload that widens a
 * service's audiences and narrows its rules must not let such a request through on the old rules with the new
 * audiences, which neither file allows.
 */
describe('a request judged across a reload of its service', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({ config: { realms: testRealms, services: [reports(upstream.url, ['elsewhere'])] } })
  })
  after(async () => {
    await gw?.close()
    await upstream?.close()
  })

  /** The running configuration with `services` as given, validated as a file would be. */
  function withServices(services: Record<string, unknown>[]): Config {
    return { ...gw.app.config, services: validateConfig({ ...loadConfigFile(demoConfigFile), realms: testRealms, services }).services }
  }

  /**
   * Runs `during` while `request` waits to be judged, after it found its route: at the pipeline's first step, which
   * waits for news of other processes (a turn of the event loop on SQLite, the database's answer on PostgreSQL while
   * it cannot listen), so that a SIGHUP's reload can come in between. The bus is held here rather than by chance.
   */
  async function heldBeforeJudging(request: () => Promise<Response>, during: () => void): Promise<Response> {
    const bus = gw.app.bus
    const freshen = bus.freshen
    const { promise: held, resolve: release } = Promise.withResolvers<void>()
    let waiting = 0
    bus.freshen = async () => {
      waiting++
      await held
      return freshen.call(bus)
    }
    try {
      const answer = request()
      const deadline = Date.now() + 10_000
      while (waiting === 0) {
        assert.ok(Date.now() < deadline, 'the request never came to be judged')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      during()
      release()
      return await answer
    } finally {
      bus.freshen = freshen
    }
  }

  it('is judged by the audiences that came with the rules it found, and the next request by the new file', async () => {
    const { access_token: token } = await passwordLogin(gw, 'admin', ADMIN_PASSWORD)
    const get = () => gw.fetch('/reports/x', { headers: { authorization: `Bearer ${token}` } })
    const across = await heldBeforeJudging(get, () => {
      // `end-users` (the token's azp) becomes an audience, and GET is denied to everyone: neither file lets the token GET.
      gw.app.reloadServices(withServices([reports(upstream.url, ['elsewhere', 'end-users'], [{ deny: { methods: ['GET'] } }])]))
    })
    assert.equal(across.status, 401, 'the route it found takes no token for end-users')
    assert.equal(((await across.json()) as { code: string }).code, 'invalid_token')
    const next = await get()
    assert.equal(next.status, 403, 'the next request finds the new route: its audiences take the token, its rules refuse the GET')
    assert.equal(upstream.seen.length, 0, 'nothing reached the service')
  })
})
