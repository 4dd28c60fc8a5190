import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM, testRealms, TOKEN_PATH } from '../helpers/oidc.ts'
import { exchange } from '../helpers/raw-client.ts'

/**
 * Gatehouse decodes no content coding and no transfer coding but chunked in the bodies it reads itself: a body in
 * another coding would be parsed as its coded bytes, and one labelled with a coding it was never given taken as plain.
 * Both are refused before the body is read, and nothing changes; a proxied body goes on to its service as sent.
 */
describe('request bodies in a coding the gateway does not decode', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  const organizations = async () => (await json(await gw.fetch('/api/gateway/v1/organizations/?page_size=200', { headers: adminAuth }))).results.map((org: { name: string }) => org.name)
  const post = (name: string, headers: Record<string, string>, body: string | Buffer = JSON.stringify({ name })) =>
    gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json', ...headers }, body })

  it('refuses a gateway API body with a Content-Encoding with 415 naming it, and takes identity', async () => {
    for (const [coding, body] of [['gzip', gzipSync(JSON.stringify({ name: 'zipped' }))], ['x-bogus', JSON.stringify({ name: 'zipped' })], ['BR', JSON.stringify({ name: 'zipped' })]] as const) {
      const refused = await post('zipped', { 'content-encoding': coding }, body)
      assert.equal(refused.status, 415, coding)
      assert.equal(refused.headers.get('accept-encoding'), 'identity')
      const error = await json(refused)
      assert.equal(error.code, 'unsupported_media_type')
      assert.equal(error.detail, `Unsupported content coding "${coding.toLowerCase()}": send the request body without Content-Encoding.`)
    }
    assert.ok(!(await organizations()).includes('zipped'), 'nothing was created')
    assert.equal((await post('plainly', { 'content-encoding': 'identity' })).status, 201)
    assert.ok((await organizations()).includes('plainly'))
  })

  it('refuses a gateway API body in a transfer coding other than chunked with 400, the login\'s too', async () => {
    const chunked = (path: string, coding: string, body: string, fields = '') =>
      exchange(gw.url, `POST ${path} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: ${coding}\r\n${fields}\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`)
    const refused = await chunked('/api/gateway/v1/organizations/', 'gzip, chunked', JSON.stringify({ name: 'coded' }))
    assert.match(refused, /^HTTP\/1\.1 400 /)
    assert.match(refused, /"code":"bad_request".*The only transfer coding understood is chunked\./)
    assert.match(refused, /\r\nconnection: close\r\n/i, 'the unread body is not taken for the next request')
    assert.ok(!(await organizations()).includes('coded'))
    assert.match(await chunked('/api/gateway/v1/organizations/', 'chunked', JSON.stringify({ name: 'coded' }), 'Connection: close\r\n'), /^HTTP\/1\.1 201 /)
    assert.match(await chunked('/api/gateway/v1/login/', 'gzip, chunked', 'username=admin&password=x', 'Accept: application/json\r\n'), /^HTTP\/1\.1 400 /)
  })

  it('refuses a realm body with a coding in Keycloak\'s error shape', async () => {
    const form = new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: 'x' }).toString()
    const refused = await gw.fetch(TOKEN_PATH, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, body: gzipSync(form) })
    assert.equal(refused.status, 415)
    assert.equal(refused.headers.get('accept-encoding'), 'identity')
    assert.deepEqual(await json(refused), { error: 'invalid_request', error_description: 'Unsupported content coding "gzip": send the request body without Content-Encoding.' })
    const coded = await exchange(gw.url, `POST /realms/${REALM}/protocol/openid-connect/token HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${form.length.toString(16)}\r\n${form}\r\n0\r\n\r\n`)
    assert.match(coded, /^HTTP\/1\.1 400 /)
    assert.match(coded, /"error":"invalid_request"/)
  })

  it('passes a proxied body on to the service in its coding', async () => {
    const zipped = gzipSync(JSON.stringify({ name: 'zipped' }))
    const response = await gw.fetch('/api/controller/v2/jobs/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: zipped })
    assert.equal(response.status, 200)
    assert.equal((await json(response)).body_bytes, zipped.length, 'the compressed bytes, as sent')
  })
})
