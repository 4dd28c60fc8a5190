import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { allAtOnce, browse, CookieJar, decodeJwtPart, formOf, REALM, realmUrl, realmWith, submitForm } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const BROWSERS = 6

// On PostgreSQL, where each request's reads wait on the network and requests sent together are all in flight at once.
describe('a user code confirmed in several browsers at the same moment', () => {
  let gw: TestGateway
  let database: { url: string; drop: () => Promise<void> }
  before(async () => {
    database = await createTestDatabase()
    gw = await startGateway({ databaseUrl: database.url, config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })
    for (const name of ['alice', 'bob']) await gw.app.accounts.create({ username: name, password: `${name}-password` })
  })
  after(async () => {
    await gw.close()
    await database.drop()
  })

  it('lets one of them go on to sign in, tells the others the code is not valid, and gives the device that one\'s account', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid' }) })
    const { device_code: deviceCode, user_code: userCode } = await json(started) as { device_code: string; user_code: string }
    const browsers = await Promise.all(Array.from({ length: BROWSERS }, async () => {
      const jar = new CookieJar()
      const confirmPage = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
      assert.match(await confirmPage.response.clone().text(), /Confirm device login/)
      return { jar, confirm: await formOf(confirmPage) }
    }))
    const answers = await allAtOnce(gw, browsers.map(({ jar, confirm }) => ({ url: confirm.url, cookie: jar.header(), body: confirm.fields.toString() })))
    const onward = answers.flatMap((answer, i) => /^HTTP\/1\.1 30[23]/.test(answer) ? [i] : [])
    assert.equal(onward.length, 1, answers.map((answer) => answer.split('\r\n')[0]).join(', '))
    for (const [i, answer] of answers.entries()) if (i !== onward[0]) assert.match(answer, /^HTTP\/1\.1 200[\s\S]*That code is not valid or has expired/, answer.slice(0, 2000))

    // The one that went on signs in, as bob; the device gets bob's account.
    const { jar } = browsers[onward[0]!]!
    const head = answers[onward[0]!]!.split('\r\n\r\n')[0]!.split('\r\n').slice(1).map((line): [string, string] => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()])
    jar.store(new Response(null, { headers: head }))
    const location = head.find(([name]) => name.toLowerCase() === 'location')![1]
    const login = await browse(gw, jar, new URL(location, gw.url).href)
    const action = /<form method="post" action="([^"]+)"/.exec(await login.response.text())![1]!
    await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=bob&password=bob-password' })
    const polled = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
    const tokens = await json(polled)
    assert.equal(polled.status, 200, JSON.stringify(tokens))
    assert.equal(decodeJwtPart(tokens.access_token, 1).preferred_username, 'bob')
  })
})

describe('a user code whose confirmation could not be saved', () => {
  let gw: TestGateway
  before(async () => (gw = await startGateway({ config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })))
  after(() => gw.close())

  it('may be confirmed again once the database answers', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { user_code: userCode } = await json(started) as { user_code: string }
    const jar = new CookieJar()
    const records = gw.app.store.oidc
    const upsert = records.upsert
    // The save that marks the code on its way fails once.
    let failed = 0
    records.upsert = function (input) {
      if (input.model === 'DeviceCode' && input.payload.inFlight === true && input.payload.accountId === undefined && failed++ === 0) return Promise.reject(new DatabaseUnavailable('the database did not answer'))
      return upsert.call(this, input)
    }
    try {
      const first = await submitForm(gw, jar, await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode }), {})
      assert.equal(first.response.status, 503)
      const again = await submitForm(gw, jar, await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode }), {})
      assert.equal(again.response.status, 200)
      assert.match(await again.response.text(), /name="password"/, 'on to sign in')
    } finally {
      records.upsert = upsert
    }
  })

  it('stays taken when the save failed after its write, for browsers that read it not yet taken', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { user_code: userCode, device_code: deviceCode } = await json(started) as { user_code: string; device_code: string }
    const jar = new CookieJar()
    const records = gw.app.store.oidc
    const upsert = records.upsert
    // Written, and then an error (a connection lost after the commit).
    records.upsert = async function (input) {
      await upsert.call(this, input)
      if (input.model === 'DeviceCode' && input.payload.inFlight === true && input.payload.accountId === undefined) throw new DatabaseUnavailable('the connection was lost')
    }
    try {
      const first = await submitForm(gw, jar, await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode }), {})
      assert.equal(first.response.status, 503)
    } finally {
      records.upsert = upsert
    }
    // Keyed by the code's stored key, the SHA-256 of the device code.
    const stored = createHash('sha256').update(deviceCode).digest('base64url')
    const marker = createHash('sha256').update(`device-code-approval:${stored}`).digest('base64url')
    assert.ok(await records.find('ReplayDetection', marker, Date.now()), 'the code stays taken')
  })
})
