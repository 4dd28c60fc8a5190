import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A confidential OAuth2 application's secret rotated (`POST applications/{id}/client_secret/`): the new one is shown
 * once and authenticates at `/o/token/`; the old one stops at once, or after the grace period asked for.
 */
describe('rotating an OAuth2 application\'s secret', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  let made = 0
  const api = (method: string, path: string, body?: unknown) => gw.fetch(`/api/gateway/v1/${path}`, {
    method, headers: { ...adminAuth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const application = async (clientType = 'confidential') => {
    const created = await api('POST', 'applications/', { name: `bot ${++made}`, client_type: clientType, authorization_grant_type: 'password' })
    assert.equal(created.status, 201)
    return json(created)
  }
  const rotate = (id: number, body?: unknown) => api('POST', `applications/${id}/client_secret/`, body)
  /** The status of a password grant at `/o/token/` with this client id and secret in HTTP basic. */
  const tokenStatus = async (clientId: string, secret: string) => {
    const response = await gw.fetch('/o/token/', {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope: 'read' }),
    })
    const body = await json(response)
    if (response.status === 401) assert.equal(body.error, 'invalid_client')
    return response.status
  }

  it('answers a new secret once, which authenticates, and refuses the old one at once', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    assert.equal(await tokenStatus(clientId, old), 201)
    const rotated = await rotate(id)
    assert.equal(rotated.status, 200)
    const answer = await json(rotated)
    assert.equal(answer.client_id, clientId)
    assert.equal(answer.previous_secret_expires, null)
    assert.match(answer.client_secret, /^[A-Za-z0-9_-]{64}$/)
    assert.notEqual(answer.client_secret, old)
    assert.equal(await tokenStatus(clientId, old), 401)
    assert.equal(await tokenStatus(clientId, answer.client_secret), 201)
    assert.equal((await json(await api('GET', `applications/${id}/`))).client_secret, '$encrypted$', 'shown once')
  })

  it('keeps the old secret working for grace_seconds, then refuses it', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const before = Date.now()
    const answer = await json(await rotate(id, { grace_seconds: 2 }))
    const expires = Date.parse(answer.previous_secret_expires)
    assert.ok(expires >= before + 1900 && expires <= Date.now() + 2100, answer.previous_secret_expires)
    assert.equal(await tokenStatus(clientId, old), 201, 'within the grace period')
    assert.equal(await tokenStatus(clientId, answer.client_secret), 201)
    await sleep(Math.max(0, expires - Date.now()) + 300)
    assert.equal(await tokenStatus(clientId, old), 401, 'after the grace period')
    assert.equal(await tokenStatus(clientId, answer.client_secret), 201)
  })

  it('ends the secret an earlier rotation kept when it rotates again', async () => {
    const { id, client_id: clientId, client_secret: first } = await application()
    const second = (await json(await rotate(id, { grace_seconds: 600 }))).client_secret
    const third = (await json(await rotate(id, { grace_seconds: 600 }))).client_secret
    assert.equal(await tokenStatus(clientId, first), 401)
    assert.equal(await tokenStatus(clientId, second), 201)
    assert.equal(await tokenStatus(clientId, third), 201)
    await rotate(id)
    assert.equal(await tokenStatus(clientId, second), 401, 'a rotation without grace ends the kept one too')
    assert.equal(await tokenStatus(clientId, third), 401)
  })

  it('rotates without any body, as curl -X POST or a client\'s bare post sends it, and refuses a JSON null', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const bare = await gw.fetch(`/api/gateway/v1/applications/${id}/client_secret/`, { method: 'POST', headers: adminAuth })
    assert.equal(bare.status, 200)
    const answer = await json(bare)
    assert.equal(answer.previous_secret_expires, null)
    assert.equal(await tokenStatus(clientId, old), 401)
    assert.equal(await tokenStatus(clientId, answer.client_secret), 201)
    const nothing = await api('POST', `applications/${id}/client_secret/`, null)
    assert.equal(nothing.status, 400)
    assert.equal((await json(nothing)).code, 'invalid')
    assert.equal(await tokenStatus(clientId, answer.client_secret), 201, 'a refused rotation changes nothing')
  })

  it('refuses to rotate a public application\'s secret, or a grace out of bounds, naming the field', async () => {
    const publicOne = await application('public')
    const refused = await rotate(publicOne.id)
    assert.equal(refused.status, 400)
    assert.ok((await json(refused)).client_type)
    const { id } = await application()
    for (const grace_seconds of [-1, 1.5, 30 * 24 * 3600 + 1]) {
      const bad = await rotate(id, { grace_seconds })
      assert.equal(bad.status, 400, String(grace_seconds))
      assert.ok((await json(bad)).grace_seconds, String(grace_seconds))
    }
    assert.equal((await rotate(999999)).status, 404)
    assert.equal((await gw.fetch(`/api/gateway/v1/applications/${id}/client_secret/`, { method: 'POST' })).status, 401, 'superusers only')
  })

  it('reads grace_seconds as Django REST framework\'s IntegerField does: numeric text and whole numbers, from JSON or a form', async () => {
    const { id, client_id: clientId } = await application()
    const graceOf = async (answer: Response) => {
      assert.equal(answer.status, 200)
      const { previous_secret_expires: until, client_secret: secret } = await json(answer)
      return { seconds: Math.round((Date.parse(until) - Date.now()) / 1000), secret }
    }
    for (const grace_seconds of ['30', ' 30 ', '30.0', '30.', '+30', 30.0]) {
      const { seconds, secret } = await graceOf(await rotate(id, { grace_seconds }))
      assert.equal(seconds, 30, JSON.stringify(grace_seconds))
      assert.equal(await tokenStatus(clientId, secret), 201)
    }
    const form = await gw.fetch(`/api/gateway/v1/applications/${id}/client_secret/`, { method: 'POST', headers: adminAuth, body: new URLSearchParams({ grace_seconds: '45' }) })
    assert.equal((await graceOf(form)).seconds, 45)
  })

  it('refuses a grace_seconds IntegerField refuses, with its words, changing nothing', async () => {
    const { id, client_id: clientId, client_secret: secret } = await application()
    for (const [grace_seconds, message] of [
      ['30.5', 'A valid integer is required.'],
      [30.5, 'A valid integer is required.'],
      ['', 'A valid integer is required.'],
      ['thirty', 'A valid integer is required.'],
      [true, 'A valid integer is required.'],
      [[30], 'A valid integer is required.'],
      [null, 'This field may not be null.'],
      ['-1', 'Ensure this value is greater than or equal to 0.'],
      ['2592001', 'Ensure this value is less than or equal to 2592000.'],
      ['1'.repeat(1001), 'String value too large.'],
    ] as const) {
      const refused = await rotate(id, { grace_seconds })
      assert.equal(refused.status, 400, JSON.stringify(grace_seconds))
      const body = await json(refused)
      assert.equal(body.code, 'invalid')
      assert.deepEqual(body.errors, { grace_seconds: [message] }, JSON.stringify(grace_seconds))
    }
    assert.equal(await tokenStatus(clientId, secret), 201, 'a refused rotation changes nothing')
  })

  it('records the rotation in the activity stream, with the secret masked', async () => {
    const { id } = await application()
    await rotate(id, { grace_seconds: 60 })
    await gw.app.audit.flush()
    const entries = await json(await api('GET', `activitystream/?content_type=application&object_id=${id}&order_by=-id`))
    const rotation = entries.results[0]
    assert.equal(rotation.operation, 'update')
    assert.deepEqual(rotation.changes.changed_fields.client_secret, ['$encrypted$', '$encrypted$'])
    assert.equal(typeof rotation.changes.added_fields.previous_secret_expires, 'string')
    assert.doesNotMatch(JSON.stringify(entries), /[0-9a-f]{64}/, 'no hash either')
  })
})
