import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const API = '/api/gateway/v1'

/** Names every JavaScript object answers to: a field or parameter so named is unknown like any other. */
const NAMES = ['constructor', 'toString', 'hasOwnProperty', 'valueOf']

describe('fields and parameters named like what every JavaScript object has', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  const send = (method: string, path: string, body?: unknown) => gw.fetch(path, {
    method,
    headers: { ...adminAuth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })

  async function assertUnknown(response: Response, name: string, what: string): Promise<void> {
    const body = await json(response)
    assert.equal(response.status, 400, `${what}: ${JSON.stringify(body)}`)
    assert.equal(body.code, 'invalid', what)
    assert.ok(Array.isArray(body.errors[name]), `${what}: the field is named: ${JSON.stringify(body)}`)
  }

  it('answers an unknown body field so named 400 invalid, naming it, on every kind of change', async () => {
    for (const name of NAMES) {
      await assertUnknown(await send('PATCH', `${API}/settings/all/`, { [name]: 1 }), name, `settings ${name}`)
      await assertUnknown(await send('PATCH', `${API}/settings/session/`, { [name]: 1 }), name, `settings category ${name}`)
      await assertUnknown(await send('POST', `${API}/organizations/`, { name: `org-${name}`, [name]: 1 }), name, `organization ${name}`)
      await assertUnknown(await send('PATCH', `${API}/users/1/`, { [name]: 1 }), name, `user ${name}`)
    }
    const organizations = await json(await send('GET', `${API}/organizations/?page_size=200`))
    assert.ok(!organizations.results.some((organization: { name: string }) => organization.name.startsWith('org-')), 'nothing was created')
  })

  it('answers a list parameter so named 400 invalid, naming it', async () => {
    for (const name of NAMES) {
      await assertUnknown(await send('GET', `${API}/users/?${name}=1`), name, `users ?${name}`)
      await assertUnknown(await send('GET', `${API}/activitystream/?${name}=1`), name, `activity stream ?${name}`)
    }
  })

  it('answers a field so named carrying a NUL 400 invalid, naming it', async () => {
    for (const name of NAMES) {
      await assertUnknown(await send('PATCH', `${API}/users/1/`, { [name]: 'a\u0000b' }), name, `NUL in ${name}`)
    }
  })
})
