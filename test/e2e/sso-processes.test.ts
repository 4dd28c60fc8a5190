import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Browser, linksTo } from '../helpers/browser.ts'
import { json, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'
import { freePort } from '../helpers/free-port.ts'

const SSO = '/api/gateway/v1/login/sso/'
const SECRET_ENV = { TEST_SSO_CLIENT_SECRET: 'corp-secret' }

// Two `gatehouse serve` processes behind one public URL (as behind a load balancer), sharing a database: a
// sign-in may start on one and come back to the other.
describe('single sign-on across gateway processes sharing one database', () => {
  const dir = tempDir()
  const configFile = join(dir, 'gatehouse.yaml')
  let idp: UpstreamIdp
  let one: GatewayProcess
  let two: GatewayProcess
  let oneUrl: string
  let twoUrl: string

  before(async () => {
    idp = await startUpstreamIdp({ alice: { sub: 'sub-alice', password: 'alice-pw', claims: { preferred_username: 'alice', email: 'alice@corp.example' } } })
    const [portOne, portTwo] = [await freePort(), await freePort()]
    oneUrl = `http://127.0.0.1:${portOne}`
    twoUrl = `http://127.0.0.1:${portTwo}`
    writeFileSync(configFile, JSON.stringify({
      server: { public_url: oneUrl },
      sso: [idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret_env: 'TEST_SSO_CLIENT_SECRET' })],
    }))
    idp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${oneUrl}${SSO}corp/callback/`] })
    one = await spawnGateway(['--config', configFile, '--data-dir', dir, '--port', String(portOne)], SECRET_ENV)
    two = await spawnGateway(['--config', configFile, '--data-dir', dir, '--port', String(portTwo)], SECRET_ENV)
  })
  after(async () => {
    await Promise.all([one?.stop(), two?.stop()])
    await idp?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('finishes on one process a sign-in started on the other, and the session works on both', async () => {
    const browser = new Browser()
    const loginPage = await browser.navigate(`${oneUrl}/api/gateway/v1/login/`)
    const providerLogin = await browser.navigate(new URL(linksTo(loginPage.body, /Sign in with Corp ID/)[0]!, oneUrl).href)
    const consent = await browser.submit(providerLogin, { username: 'alice', password: 'alice-pw' })
    const back = await browser.submit(consent, { decision: 'allow' }, { stopBefore: (url) => url.startsWith(oneUrl + SSO) })

    const callback = new URL(back.stoppedAt!)
    const onTwo = twoUrl + callback.pathname + callback.search
    const finished = await browser.request(onTwo, { headers: { cookie: `gateway_sso=${browser.cookie(oneUrl + SSO, 'gateway_sso')}` } })
    assert.equal(finished.status, 302, await finished.text())
    const sessionId = browser.cookie(twoUrl, 'gateway_sessionid')
    assert.ok(sessionId)

    for (const url of [oneUrl, twoUrl]) {
      const me = await json(await fetch(`${url}/api/gateway/v1/me/`, { headers: { cookie: `gateway_sessionid=${sessionId}` } }))
      assert.equal(me.results[0].username, 'alice')
      assert.equal(me.results[0].source, 'sso')
    }
    const replay = await fetch(oneUrl + callback.pathname + callback.search, { headers: { cookie: `gateway_sso=${browser.cookie(oneUrl + SSO, 'gateway_sso')}`, accept: 'application/json' } })
    assert.equal(replay.status, 400)
    assert.equal((await json(replay)).code, 'sso_login_unknown', 'the other process cannot use it again')
  })

  it('refuses to start when the client secret\'s environment variable is missing', async () => {
    await assert.rejects(spawnGateway(['--config', configFile, '--data-dir', dir]), /TEST_SSO_CLIENT_SECRET/)
  })
})
