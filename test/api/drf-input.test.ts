import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('input read as Django REST framework reads it', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = adminAuth) =>
    gw.fetch(`/api/gateway/v1/${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  const created = async (path: string, body: unknown) => {
    const response = await send('POST', path, body)
    assert.equal(response.status, 201, `${path}: ${await response.clone().text()}`)
    return json(response)
  }

  it('trims leading and trailing whitespace from text fields, as CharField does by default, but never from a password', async () => {
    const user = await created('users/', { username: ' trimmed ', password: ' spaced password ', first_name: '  Ann ', last_name: '\tLee\n', email: ' ann@example.com ' })
    assert.deepEqual([user.username, user.first_name, user.last_name, user.email], ['trimmed', 'Ann', 'Lee', 'ann@example.com'])
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('trimmed', ' spaced password ') } })).status, 200, 'the password as sent')
    const changed = await json(await send('PATCH', `users/${user.id}/`, { first_name: '   ' }))
    assert.equal(changed.first_name, '')

    const organization = await created('organizations/', { name: ' Spaced ', description: ' an organization ' })
    assert.deepEqual([organization.name, organization.description], ['Spaced', 'an organization'])
    const team = await created('teams/', { name: ' Crew ', description: ' a team\n', organization: organization.id })
    assert.deepEqual([team.name, team.description], ['Crew', 'a team'])
    const role = await created('role_definitions/', { name: ' Spaced Role ', description: ' a role ', permissions: ['shared.view_team'], content_type: 'shared.team' })
    assert.deepEqual([role.name, role.description], ['Spaced Role', 'a role'])
    const application = await created('applications/', { name: ' Spaced App ', description: ' an app ', organization: organization.id, client_type: 'confidential', authorization_grant_type: 'password' })
    assert.deepEqual([application.name, application.description], ['Spaced App', 'an app'])
    const token = await created('tokens/', { description: ' a token ', scope: ' read ' })
    assert.deepEqual([token.description, token.scope], ['a token', 'read'])

    // What is blank once trimmed is blank, where blank is refused.
    const blank = await send('POST', 'applications/', { name: '   ', organization: organization.id, client_type: 'confidential', authorization_grant_type: 'password' })
    assert.equal(blank.status, 400)
    assert.deepEqual((await json(blank)).errors, { name: ['This field may not be blank.'] })
  })

  it('answers null for a field that takes no null with "This field may not be null."', async () => {
    for (const [method, path] of [['POST', 'tokens/'], ['PATCH', 'tokens/1/']] as const) {
      if (method === 'PATCH') await created('tokens/', {})
      const response = await send(method, path, { scope: null })
      assert.equal(response.status, 400, path)
      const answer = await json(response)
      assert.equal(answer.code, 'invalid')
      assert.deepEqual(answer.errors, { scope: ['This field may not be null.'] }, path)
    }
  })

  it('refuses unknown fields in the body of me/sessions/end_others/, as every other endpoint does, and takes none or an empty one', async () => {
    const unknown = await send('POST', 'me/sessions/end_others/', { everything: true })
    assert.equal(unknown.status, 400)
    const answer = await json(unknown)
    assert.equal(answer.code, 'invalid')
    assert.deepEqual(answer.errors, { everything: ['Unknown field.'] })
    assert.deepEqual(await json(await send('POST', 'me/sessions/end_others/', {})), { ended: 0 })
    assert.deepEqual(await json(await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: adminAuth })), { ended: 0 })
  })

  it('reads an empty JSON body as no data, as Request._parse does, then validates as usual', async () => {
    // What a client sends for a POST without data when it sets its JSON content type on every request.
    const ended = await send('POST', 'me/sessions/end_others/')
    assert.equal(ended.status, 200)
    assert.deepEqual(await json(ended), { ended: 0 })
    const token = await send('POST', 'tokens/')
    assert.equal(token.status, 201, await token.clone().text())
    const organization = await send('POST', 'organizations/')
    assert.equal(organization.status, 400)
    const answer = await json(organization)
    assert.equal(answer.code, 'invalid')
    assert.deepEqual(answer.errors, { name: ['This field is required.'] })
    const chunked = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: new ReadableStream({ start: (controller) => controller.close() }), duplex: 'half',
    } as RequestInit)
    assert.deepEqual(await json(chunked), { ended: 0 })
  })

  it('refuses a JSON null where a body may be left out, as every body that is no object, and changes nothing', async () => {
    const tokensBefore = (await json(await send('GET', 'tokens/'))).count
    const token = await created('tokens/', { description: 'kept as it is' })
    for (const [method, path] of [['POST', 'tokens/'], ['PATCH', `tokens/${token.id}/`], ['POST', 'tokens/revoke/'], ['POST', 'me/sessions/end_others/'], ['POST', 'organizations/'], ['PATCH', 'users/1/']] as const) {
      const response = await gw.fetch(`/api/gateway/v1/${path}`, { method, headers: { ...adminAuth, 'content-type': 'application/json' }, body: 'null' })
      assert.equal(response.status, 400, `${method} ${path}`)
      const answer = await json(response)
      assert.equal(answer.code, 'invalid')
      assert.deepEqual(answer.errors, { non_field_errors: ['Expected a JSON object.'] }, `${method} ${path}`)
    }
    assert.equal((await json(await send('GET', 'tokens/'))).count, tokensBefore + 1, 'no token made or revoked')
    assert.equal((await json(await send('GET', `tokens/${token.id}/`))).description, 'kept as it is')
    // Where a body is not read, it is not judged: as an array or a string is not.
    const deleted = await gw.fetch(`/api/gateway/v1/tokens/${token.id}/`, { method: 'DELETE', headers: { ...adminAuth, 'content-type': 'application/json' }, body: 'null' })
    assert.equal(deleted.status, 204)
  })
})
