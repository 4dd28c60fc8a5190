import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NOT_MINE } from '../../src/auth/authenticator.ts'
import { InvalidCredentials } from '../../src/errors.ts'
import { setRealmNotBefore } from '../../src/oidc/admin-url.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

describe('tokens API', () => {
  let gw: TestGateway
  let aliceId: number
  let bobId: number
  const alice = { authorization: basic('alice', 'alice-password') }
  const bob = { authorization: basic('bob', 'bob-password') }
  before(async () => {
    gw = await startGateway()
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })).id
    bobId = (await gw.app.accounts.create({ username: 'bob', password: 'bob-password' })).id
  })
  after(() => gw.close())

  const send = (method: string, path: string, auth: Record<string, string>, body?: unknown) =>
    gw.fetch(path, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) })
  const tokenCount = async () => (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
  async function refused(response: Response, status: number, code: string): Promise<any> {
    const body = await json(response)
    assert.equal(response.status, status, JSON.stringify(body))
    assert.equal(body.code, code)
    return body
  }

  it('creates a write token lasting the configured lifetime when POSTed without a body', async (t) => {
    // A frozen clock: the times the gateway writes can be compared exactly.
    t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
    const started = Date.now()
    const response = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: alice })
    assert.equal(response.status, 201)
    const created = await json(response)
    assert.match(created.token, /^gatehouse_pat_/)
    assert.equal(created.scope, 'write')
    assert.equal(created.user, aliceId)
    assert.equal(created.description, '')
    assert.equal(created.last_used, null)
    assert.equal(created.url, `/api/gateway/v1/tokens/${created.id}/`)
    assert.equal(Date.parse(created.expires) - started, 31536000_000)
    assert.equal(Date.parse(created.created), started)
  })

  it('takes a description, a scope and an ISO 8601 expiry', async () => {
    const expires = new Date(Date.now() + 3600_000).toISOString()
    const created = await createToken(gw, alice, { description: 'nightly backup', scope: 'read', expires })
    assert.equal(created.scope, 'read')
    assert.equal(created.expires, expires)
    assert.equal((created as unknown as { description: string }).description, 'nightly backup')
    const withOffset = await createToken(gw, alice, { expires: '2000-01-01T00:00:00+03:00'.replace('2000', String(new Date().getUTCFullYear() + 1)) })
    assert.equal(Date.parse(withOffset.expires), Date.parse(`${new Date().getUTCFullYear() + 1}-01-01T00:00:00+03:00`))
  })

  it('takes expires_in seconds as an alternative', async (t) => {
    // A frozen clock: the times the gateway writes can be compared exactly.
    t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
    const created = await createToken(gw, alice, { expires_in: 600 })
    assert.equal(Date.parse(created.expires), Date.now() + 600_000)
  })

  it('reads expires_in as Django REST framework\'s IntegerField reads a number, refusing what it refuses in its words', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
    for (const expires_in of ['600', ' 600 ', '600.0', 600.0]) {
      const created = await createToken(gw, alice, { expires_in })
      assert.equal(Date.parse(created.expires), Date.now() + 600_000, JSON.stringify(expires_in))
    }
    const before = await tokenCount()
    for (const [expires_in, message] of [
      ['600.5', 'A valid integer is required.'],
      ['', 'A valid integer is required.'],
      ['0', 'Ensure this value is greater than or equal to 1.'],
      ['-5', 'Ensure this value is greater than or equal to 1.'],
    ] as const) {
      const refusal = await refused(await send('POST', '/api/gateway/v1/tokens/', alice, { expires_in }), 400, 'invalid')
      assert.deepEqual(refusal.errors, { expires_in: [message] }, JSON.stringify(expires_in))
    }
    assert.equal(await tokenCount(), before)
  })

  it('caps the lifetime at oauth2_access_token_expire_seconds, and uses it as the default', async (t) => {
    // A frozen clock: the times the gateway writes can be compared exactly.
    t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
    await gw.app.settings.update({ oauth2_access_token_expire_seconds: 3600 })
    try {
      const created = await createToken(gw, alice)
      assert.equal(Date.parse(created.expires), Date.now() + 3600_000)
      const before = await tokenCount()
      const tooLong = await refused(await send('POST', '/api/gateway/v1/tokens/', alice, { expires_in: 3601 }), 400, 'invalid')
      assert.ok(tooLong.errors.expires_in)
      const tooLate = await refused(await send('POST', '/api/gateway/v1/tokens/', alice, { expires: new Date(Date.now() + 7200_000).toISOString() }), 400, 'invalid')
      assert.ok(tooLate.errors.expires)
      assert.equal(await tokenCount(), before)
    } finally {
      await gw.app.settings.update({ oauth2_access_token_expire_seconds: 31536000 })
    }
  })

  it('refuses bad input with 400 by field and creates nothing', async () => {
    const before = await tokenCount()
    const cases: [unknown, string][] = [
      [{ scope: 'admin' }, 'scope'],
      [{ scope: 'READ' }, 'scope'],
      [{ expires: new Date(Date.now() - 1000).toISOString() }, 'expires'],
      [{ expires: 'tomorrow' }, 'expires'],
      [{ expires: '2099-01-01T00:00:00' }, 'expires'],
      [{ expires: new Date(Date.now() + 60_000).toISOString(), expires_in: 60 }, 'expires'],
      [{ expires_in: 0 }, 'expires_in'],
      [{ expires_in: -5 }, 'expires_in'],
      [{ expires_in: 1.5 }, 'expires_in'],
      [{ description: 'x'.repeat(1001) }, 'description'],
      [{ token: 'gatehouse_pat_mine' }, 'token'],
      [{ user: bobId }, 'user'],
    ]
    for (const [body, field] of cases) {
      const error = await refused(await send('POST', '/api/gateway/v1/tokens/', alice, body), 400, 'invalid')
      assert.ok(error.errors[field], `${JSON.stringify(body)}: ${JSON.stringify(error)}`)
    }
    await refused(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...alice, 'content-type': 'application/json' }, body: '{"scope":' }), 400, 'invalid_json')
    await refused(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...alice, 'content-type': 'application/json' }, body: '[]' }), 400, 'invalid')
    assert.equal(await tokenCount(), before)
  })

  it('needs credentials', async () => {
    await refused(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST' }), 401, 'not_authenticated')
  })

  it('creates a token with a token, never outliving or outranking it', async () => {
    const parent = await json(await send('POST', '/api/gateway/v1/tokens/', alice, { expires_in: 600 }))
    const child = await send('POST', '/api/gateway/v1/tokens/', bearer(parent.token), { description: 'from a token', scope: 'read write', expires_in: 3600 })
    assert.equal(child.status, 201)
    const created = await json(child)
    assert.equal(created.scope, 'write')
    assert.equal(created.expires, parent.expires, 'capped at the creating token\'s expiry')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(created.token) })).status, 200)

    const reader = await json(await send('POST', '/api/gateway/v1/tokens/', alice, { scope: 'read' }))
    const before = await tokenCount()
    await refused(await send('POST', '/api/gateway/v1/tokens/', bearer(reader.token), { scope: 'write' }), 403, 'insufficient_scope')
    assert.equal(await tokenCount(), before)
  })

  it('takes the platform\'s fields: application null, scope as space-separated words', async () => {
    const response = await send('POST', '/api/gateway/v1/tokens/', alice, { description: 'AWX CLI', application: null, scope: 'write' })
    assert.equal(response.status, 201)
    const body = await json(response)
    for (const field of ['application', 'refresh_token', 'created_by', 'modified_by', 'related', 'summary_fields', 'url']) assert.ok(field in body, field)
    assert.equal(body.application, null)
    assert.equal(body.summary_fields.user.username, 'alice')
    assert.equal(body.related.user, `/api/gateway/v1/users/${aliceId}/`)
    const before = await tokenCount()
    for (const [input, field] of [[{ application: 999 }, 'application'], [{ application: 'x' }, 'application'], [{ scope: 'read read' }, 'scope'], [{ scope: 'admin' }, 'scope'], [{ scope: '' }, 'scope']] as const) {
      const error = await refused(await send('POST', '/api/gateway/v1/tokens/', alice, input), 400, 'invalid')
      assert.ok(error.errors[field], JSON.stringify(error))
    }
    assert.equal(await tokenCount(), before)
  })

  it('never shows a token\'s value after creating it', async () => {
    const { id, token } = await createToken(gw, alice)
    for (const [path, auth] of [['/api/gateway/v1/tokens/', alice], [`/api/gateway/v1/tokens/${id}/`, alice], [`/api/gateway/v1/users/${aliceId}/tokens/`, alice], ['/api/gateway/v1/tokens/?page_size=200', adminAuth]] as const) {
      const response = await gw.fetch(path, { headers: auth })
      assert.equal(response.status, 200)
      const text = await response.text()
      assert.ok(!text.includes(token.slice(14)), path)
      assert.ok(text.includes('"token":"$encrypted$"'), path)
    }
  })

  it('lists the caller\'s own tokens; superusers see all and filter by user', async () => {
    await createToken(gw, bob, { description: 'bob-only' })
    const own = await json(await gw.fetch('/api/gateway/v1/tokens/?page_size=200', { headers: alice }))
    assert.ok(own.count > 0)
    assert.ok(own.results.every((t: { user: number }) => t.user === aliceId))
    const notMine = await json(await gw.fetch(`/api/gateway/v1/tokens/?user=${bobId}`, { headers: alice }))
    assert.equal(notMine.count, 0)
    const all = await json(await gw.fetch('/api/gateway/v1/tokens/?page_size=200', { headers: adminAuth }))
    assert.deepEqual(new Set(all.results.map((t: { user: number }) => t.user)), new Set([aliceId, bobId]))
    const bobs = await json(await gw.fetch(`/api/gateway/v1/tokens/?user=${bobId}`, { headers: adminAuth }))
    assert.ok(bobs.count >= 1)
    assert.ok(bobs.results.every((t: { user: number; summary_fields: { user: { username: string } } }) => t.user === bobId && t.summary_fields.user.username === 'bob'))
    await refused(await gw.fetch('/api/gateway/v1/tokens/?user=bob', { headers: adminAuth }), 400, 'invalid')
  })

  it('pages the list in the platform\'s shape', async () => {
    for (let i = 0; i < 3; i++) await createToken(gw, bob)
    const page = await json(await gw.fetch('/api/gateway/v1/tokens/?page_size=2', { headers: bob }))
    assert.equal(page.results.length, 2)
    assert.ok(page.count >= 4)
    assert.equal(page.next, '/api/gateway/v1/tokens/?page_size=2&page=2')
    assert.equal(page.previous, null)
  })

  it('hides other users\' tokens as not found, but shows them to superusers', async () => {
    const { id } = await createToken(gw, bob)
    for (const method of ['GET', 'PATCH', 'DELETE']) {
      await refused(await send(method, `/api/gateway/v1/tokens/${id}/`, alice, method === 'PATCH' ? { description: 'mine now' } : undefined), 404, 'not_found')
    }
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { headers: adminAuth })).status, 200)
    await refused(await gw.fetch('/api/gateway/v1/tokens/999999/', { headers: adminAuth }), 404, 'not_found')
    await refused(await gw.fetch('/api/gateway/v1/tokens/abc/', { headers: adminAuth }), 404, 'not_found')
    assert.equal((await gw.app.store.tokens.findById(id))!.description, '')
  })

  it('shows every token to a Platform Auditor, who is refused (403) changing any but their own', async () => {
    const auditorId = (await gw.app.accounts.create({ username: 'auditor', password: 'auditor-password' })).id
    const roles = await json(await gw.fetch('/api/gateway/v1/role_definitions/?name=Platform%20Auditor', { headers: adminAuth }))
    assert.equal((await send('POST', '/api/gateway/v1/role_user_assignments/', adminAuth, { role_definition: roles.results[0].id, user: auditorId })).status, 201)
    const auditor = { authorization: basic('auditor', 'auditor-password') }
    const { id } = await createToken(gw, bob, { description: 'bob\'s' })
    const listed = await json(await gw.fetch(`/api/gateway/v1/tokens/?user=${bobId}&page_size=200`, { headers: auditor }))
    assert.ok(listed.results.some((t: { id: number; token: string }) => t.id === id && t.token === '$encrypted$'))
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { headers: auditor })).status, 200)
    assert.equal((await gw.fetch(`/api/gateway/v1/users/${bobId}/tokens/`, { headers: auditor })).status, 200)
    await refused(await send('PATCH', `/api/gateway/v1/tokens/${id}/`, auditor, { description: 'audited' }), 403, 'permission_denied')
    await refused(await send('PUT', `/api/gateway/v1/tokens/${id}/`, auditor, {}), 403, 'permission_denied')
    await refused(await send('DELETE', `/api/gateway/v1/tokens/${id}/`, auditor), 403, 'permission_denied')
    assert.equal((await gw.app.store.tokens.findById(id))!.description, 'bob\'s')
  })

  it('changes a description and narrows write to read, but never widens', async () => {
    const { id } = await createToken(gw, alice)
    const patched = await json(await send('PATCH', `/api/gateway/v1/tokens/${id}/`, alice, { description: 'deploys', scope: 'read' }))
    assert.equal(patched.description, 'deploys')
    assert.equal(patched.scope, 'read')
    const widened = await refused(await send('PATCH', `/api/gateway/v1/tokens/${id}/`, alice, { scope: 'write' }), 400, 'invalid')
    assert.ok(widened.errors.scope)
    const expiry = await refused(await send('PATCH', `/api/gateway/v1/tokens/${id}/`, alice, { expires: new Date(Date.now() + 1000).toISOString() }), 400, 'invalid')
    assert.ok(expiry.errors.expires)
    assert.equal((await gw.app.store.tokens.findById(id))!.scope, 'read')
  })

  it('takes PUT as the platform\'s token view does (a ModelViewSet), with PATCH\'s rules: the object sent back as read', async () => {
    const token = await createToken(gw, alice, { description: 'ci' })
    const shown = await json(await send('GET', `/api/gateway/v1/tokens/${token.id}/`, alice))
    const put = await send('PUT', `/api/gateway/v1/tokens/${token.id}/`, alice, { ...shown, description: 'deploys', scope: 'read' })
    const replaced = await json(put)
    assert.equal(put.status, 200, JSON.stringify(replaced))
    assert.deepEqual([replaced.description, replaced.scope, replaced.token], ['deploys', 'read', '$encrypted$'])
    await refused(await send('PUT', `/api/gateway/v1/tokens/${token.id}/`, alice, { scope: 'write' }), 400, 'invalid')
    await refused(await send('PUT', `/api/gateway/v1/tokens/${token.id}/`, alice, { user: bobId }), 400, 'invalid')
    await refused(await send('PUT', `/api/gateway/v1/tokens/${token.id}/`, bob, { description: 'mine now' }), 404, 'not_found')
    const stored = (await gw.app.store.tokens.findById(token.id))!
    assert.deepEqual([stored.description, stored.scope, stored.userId], ['deploys', 'read', aliceId])
  })

  it('lets the owner and superusers delete a token', async () => {
    const mine = await createToken(gw, alice)
    assert.equal((await send('DELETE', `/api/gateway/v1/tokens/${mine.id}/`, alice)).status, 204)
    const bobs = await createToken(gw, bob)
    assert.equal((await send('DELETE', `/api/gateway/v1/tokens/${bobs.id}/`, adminAuth)).status, 204)
    await refused(await send('DELETE', `/api/gateway/v1/tokens/${bobs.id}/`, adminAuth), 404, 'not_found')
    assert.equal(await gw.app.store.tokens.findById(mine.id), undefined)
  })

  it('lets a token delete itself', async () => {
    const { id, token } = await createToken(gw, alice)
    assert.equal((await send('DELETE', `/api/gateway/v1/tokens/${id}/`, bearer(token))).status, 204)
    await refused(await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) }), 401, 'invalid_token')
  })

  it('lets only superusers revoke in bulk, with exactly one of user or all', async () => {
    const { token } = await createToken(gw, bob)
    await refused(await send('POST', '/api/gateway/v1/tokens/revoke/', alice, { all: true }), 403, 'permission_denied')
    await refused(await send('POST', '/api/gateway/v1/tokens/revoke/', alice, { user: bobId }), 403, 'permission_denied')
    for (const body of [{}, { user: bobId, all: true }, { all: false }, { user: 'bob' }, { user: 0 }, { everyone: true }]) {
      await refused(await send('POST', '/api/gateway/v1/tokens/revoke/', adminAuth, body), 400, 'invalid')
    }
    const unknown = await refused(await send('POST', '/api/gateway/v1/tokens/revoke/', adminAuth, { user: 999999 }), 400, 'invalid')
    assert.ok(unknown.errors.user)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })).status, 200)
  })

  it('serves a user\'s tokens under /users/{id}/tokens/ to the owner and superusers', async () => {
    const created = await json(await send('POST', `/api/gateway/v1/users/${aliceId}/tokens/`, alice, { description: 'via user' }))
    assert.equal(created.user, aliceId)
    assert.match(created.token, /^gatehouse_pat_/)
    const listed = await json(await gw.fetch(`/api/gateway/v1/users/${aliceId}/tokens/?page_size=200`, { headers: adminAuth }))
    assert.ok(listed.results.some((t: { id: number }) => t.id === created.id))
    assert.ok(listed.results.every((t: { user: number }) => t.user === aliceId))
    // A user the caller does not see is not found, as one that does not exist: ids say nothing about other people.
    await refused(await gw.fetch(`/api/gateway/v1/users/${aliceId}/tokens/`, { headers: bob }), 404, 'not_found')
    await refused(await send('POST', `/api/gateway/v1/users/${aliceId}/tokens/`, bob, {}), 404, 'not_found')
    await refused(await send('POST', `/api/gateway/v1/users/${aliceId}/tokens/`, adminAuth, {}), 403, 'not_token_owner')
    await refused(await gw.fetch('/api/gateway/v1/users/999999/tokens/', { headers: adminAuth }), 404, 'not_found')
  })

  it('serves them under the platform\'s /users/{id}/personal_tokens/ too, where a user\'s related link leads', async () => {
    const user = await json(await gw.fetch(`/api/gateway/v1/users/${aliceId}/`, { headers: alice }))
    assert.equal(user.related.personal_tokens, `/api/gateway/v1/users/${aliceId}/personal_tokens/`)
    // As AWX's scripts create one: POST to the user's personal_tokens/ with the platform's body.
    const response = await send('POST', user.related.personal_tokens, alice, { description: 'script', application: null, scope: 'write' })
    assert.equal(response.status, 201)
    const created = await json(response)
    assert.equal(created.user, aliceId)
    assert.match(created.token, /^gatehouse_pat_/)
    const listed = await json(await gw.fetch(`${user.related.personal_tokens}?page_size=200`, { headers: alice }))
    assert.ok(listed.results.some((t: { id: number; token: string }) => t.id === created.id && t.token === '$encrypted$'))
    assert.ok(listed.results.every((t: { user: number }) => t.user === aliceId))
    await refused(await gw.fetch(`/api/gateway/v1/users/${aliceId}/personal_tokens/`, { headers: bob }), 404, 'not_found')
    await refused(await send('POST', `/api/gateway/v1/users/${aliceId}/personal_tokens/`, adminAuth, {}), 403, 'not_token_owner')
  })

  it('is listed in the API root', async () => {
    const root = await json(await gw.fetch('/api/gateway/v1/', { headers: alice }))
    assert.equal(root.tokens, '/api/gateway/v1/tokens/')
  })

  describe('external users', () => {
    const carol = { authorization: basic('carol', 'carol-password') }
    let carolId: number
    before(async () => {
      carolId = (await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })).id
      // A stand-in directory that vouches for carol once her account is external, as LDAP would.
      gw.app.accounts.addPasswordSource({
        id: 'test-directory',
        async verify(username, password) {
          const user = await gw.app.store.users.findByUsername(username)
          if (!user?.external) return NOT_MINE
          if (password !== `${username}-password`) throw new InvalidCredentials()
          return user
        },
      })
    })

    it('may not create tokens while the setting is off, and may once it is on', async () => {
      const { token } = await createToken(gw, carol)
      await gw.app.accounts.update(carolId, { source: 'ldap', external: true, password: null })
      assert.equal(gw.app.settings.current.allow_external_users_to_create_oauth2_tokens, false)
      const before = await tokenCount()
      await refused(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: carol }), 403, 'external_users_cannot_create_tokens')
      await refused(await send('POST', `/api/gateway/v1/users/${carolId}/tokens/`, carol, {}), 403, 'external_users_cannot_create_tokens')
      assert.equal(await tokenCount(), before)

      // The token created before the account became external keeps working, as the platform documents.
      const used = await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) })
      assert.equal(used.status, 200)
      assert.equal((await json(used)).identity.username, 'carol')

      const on = await send('PATCH', '/api/gateway/v1/settings/', adminAuth, { allow_external_users_to_create_oauth2_tokens: true })
      assert.equal(on.status, 200)
      const created = await createToken(gw, carol)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(created.token) })).status, 200)
      await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: false })
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(created.token) })).status, 200)
    })

    it('does not hold local users back when the setting is off', async () => {
      assert.equal(gw.app.settings.current.allow_external_users_to_create_oauth2_tokens, false)
      await createToken(gw, alice)
    })
  })
})

describe('the tokens one user may have', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  it('refuses a token past oauth2_tokens_per_user_limit, counting expired ones, until the user deletes some', async () => {
    const carol = { authorization: basic('carol', 'carol-password') }
    await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })
    await gw.app.settings.update({ oauth2_tokens_per_user_limit: 2 })
    try {
      const first = await createToken(gw, carol, { expires_in: 60 })
      await createToken(gw, carol)
      const before = (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
      const refusal = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: carol })
      const over = await json(refusal)
      assert.equal(refusal.status, 400, JSON.stringify(over))
      assert.equal(over.code, 'invalid')
      assert.match(over.errors.non_field_errors[0], /the most one user may have \(oauth2_tokens_per_user_limit\)/)
      assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before, 'nothing created')
      // Another user's count is their own.
      await gw.app.accounts.create({ username: 'dave', password: 'dave-password' })
      await createToken(gw, { authorization: basic('dave', 'dave-password') })
      assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${first.id}/`, { method: 'DELETE', headers: carol })).status, 204)
      await createToken(gw, carol)
      await gw.app.settings.update({ oauth2_tokens_per_user_limit: 0 })
      await createToken(gw, carol)
    } finally {
      await gw.app.settings.update({ oauth2_tokens_per_user_limit: 10_000 })
    }
  })
})

describe('tokens created with a token', () => {
  let gw: TestGateway
  const erin = { authorization: basic('erin', 'erin-password') }
  let client: { client_id: string; client_secret: string }
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'erin', password: 'erin-password' })
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'revoker', client_type: 'confidential', authorization_grant_type: 'password' }),
    })
    client = await json(created)
  })
  after(() => gw.close())

  const me = async (token: string) => (await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })).status
  const scopeOf = async (id: number) => (await json(await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { headers: erin }))).scope

  it('are narrowed with the token they came from, and its children\'s children too', async () => {
    const parent = await createToken(gw, erin)
    const child = await createToken(gw, bearer(parent.token))
    const grandchild = await createToken(gw, bearer(child.token))
    assert.equal(await scopeOf(grandchild.id), 'write')
    const narrowed = await gw.fetch(`/api/gateway/v1/tokens/${parent.id}/`, { method: 'PATCH', headers: { ...erin, 'content-type': 'application/json' }, body: JSON.stringify({ scope: 'read' }) })
    assert.equal(narrowed.status, 200)
    assert.deepEqual([await scopeOf(child.id), await scopeOf(grandchild.id)], ['read', 'read'])
    // Held to read at once, though each was used (and cached) before.
    const write = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: bearer(grandchild.token) })
    assert.equal(write.status, 403)
  })

  it('end with the token they came from, revoked by id or by value, and only they', async () => {
    for (const revoke of ['delete', 'revoke_token'] as const) {
      const parent = await createToken(gw, erin)
      const child = await createToken(gw, bearer(parent.token))
      const grandchild = await createToken(gw, bearer(child.token))
      const unrelated = await createToken(gw, erin)
      assert.deepEqual(await Promise.all([child, grandchild, unrelated].map((t) => me(t.token))), [200, 200, 200])
      const revoked = revoke === 'delete'
        ? await gw.fetch(`/api/gateway/v1/tokens/${parent.id}/`, { method: 'DELETE', headers: erin })
        : await gw.fetch('/o/revoke_token/', { method: 'POST', headers: { authorization: basic(client.client_id, client.client_secret), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: parent.token }) })
      assert.ok(revoked.status === 204 || revoked.status === 200, `${revoke}: ${revoked.status}`)
      assert.deepEqual(await Promise.all([parent, child, grandchild].map((t) => me(t.token))), [401, 401, 401], revoke)
      assert.equal(await me(unrelated.token), 200, 'a token not made with it stays')
      assert.equal(await gw.app.store.tokens.findById(grandchild.id), undefined, 'deleted, not only refused')
    }
  })

  /** An application of the realm signing erin in with the password grant: an OIDC access token, its refresh token and realm. */
  async function signIn(app = client): Promise<{ access: string; refresh: string; realm: string }> {
    const answer = await gw.fetch('/o/token/', {
      method: 'POST',
      headers: { authorization: basic(app.client_id, app.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'erin', password: 'erin-password', scope: 'write' }),
    })
    const tokens = await json(answer)
    assert.equal(answer.status, 201, JSON.stringify(tokens))
    const issuer = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url').toString()).iss as string
    return { access: tokens.access_token, refresh: tokens.refresh_token, realm: decodeURIComponent(issuer.split('/realms/')[1]!) }
  }

  it('end with the OIDC access token they came from: its revocation, its grant\'s, its application\'s, its realm\'s logout-all', async () => {
    const revokeAtPlatform = (token: string, app = client) => gw.fetch('/o/revoke_token/', {
      method: 'POST', headers: { authorization: basic(app.client_id, app.client_secret), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }),
    })
    const ends: Record<string, (signedIn: { access: string; refresh: string; realm: string }, app: typeof client) => Promise<Response>> = {
      'the access token revoked': ({ access }, app) => revokeAtPlatform(access, app),
      'its refresh token revoked (the grant)': ({ refresh }, app) => revokeAtPlatform(refresh, app),
      'its application deleted': async (_, app) => gw.fetch(`/api/gateway/v1/applications/${(app as typeof client & { id: number }).id}/`, { method: 'DELETE', headers: adminAuth }),
      'its realm\'s logout-all': ({ realm }) => gw.fetch(`/admin/realms/${encodeURIComponent(realm)}/logout-all`, { method: 'POST', headers: adminAuth }),
    }
    for (const [how, end] of Object.entries(ends)) {
      const created = await gw.fetch('/api/gateway/v1/applications/', {
        method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `ended ${how}`, client_type: 'confidential', authorization_grant_type: 'password' }),
      })
      const app = await json(created)
      const signedIn = await signIn(app)
      const child = await createToken(gw, bearer(signedIn.access))
      const grandchild = await createToken(gw, bearer(child.token))
      const unrelated = await createToken(gw, erin)
      assert.deepEqual(await Promise.all([child, grandchild, unrelated].map((t) => me(t.token))), [200, 200, 200], how)
      const ended = await end(signedIn, app)
      assert.ok(ended.status >= 200 && ended.status < 300, `${how}: ${ended.status}`)
      assert.deepEqual(await Promise.all([child, grandchild].map((t) => me(t.token))), [401, 401], how)
      assert.equal(await me(unrelated.token), 200, `${how}: a token not made with it stays`)
      assert.equal(await gw.app.store.tokens.findById(child.id), undefined, `${how}: deleted, not only refused`)
    }
  })

  it('end with the access token a refresh at /o/token/ replaces, as django-oauth-toolkit ends it, and the new one works', async () => {
    const signedIn = await signIn()
    const child = await createToken(gw, bearer(signedIn.access))
    const unrelated = await createToken(gw, erin)
    assert.deepEqual([await me(signedIn.access), await me(child.token)], [200, 200])
    const refresh = async (token: string) => {
      const answer = await gw.fetch('/o/token/', {
        method: 'POST', headers: { authorization: basic(client.client_id, client.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }),
      })
      const tokens = await json(answer)
      assert.equal(answer.status, 201, JSON.stringify(tokens))
      return tokens as { access_token: string; refresh_token: string }
    }
    const first = await refresh(signedIn.refresh)
    assert.deepEqual([await me(signedIn.access), await me(child.token), await me(first.access_token)], [401, 401, 200])
    assert.equal(await gw.app.store.tokens.findById(child.id), undefined, 'the personal token made with it is deleted')
    assert.equal(await me(unrelated.token), 200, 'a token not made with it stays')
    const second = await refresh(first.refresh_token)
    assert.deepEqual([await me(first.access_token), await me(second.access_token)], [401, 200])
  })

  it('end by the hundred with one event for their owner, not one each', async () => {
    const signedIn = await signIn()
    const children = await Promise.all(Array.from({ length: 150 }, () => createToken(gw, bearer(signedIn.access))))
    // Used, and so held in memory, before they end: the owner's event must reach them there too.
    assert.deepEqual(new Set(await Promise.all(children.slice(0, 5).map((t) => me(t.token)))), new Set([200]))
    const before = await gw.app.store.events.latestId()
    const ended = await gw.fetch('/o/revoke_token/', {
      method: 'POST', headers: { authorization: basic(client.client_id, client.client_secret), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: signedIn.refresh }),
    })
    assert.equal(ended.status, 200)
    assert.ok(await gw.app.store.events.latestId() - before <= 3, `${await gw.app.store.events.latestId() - before} events`)
    assert.deepEqual(new Set(await Promise.all(children.slice(0, 5).map((t) => me(t.token)))), new Set([401]))
    assert.equal(await gw.app.store.tokens.findById(children.at(-1)!.id), undefined)
  })

  it('are refused while the OIDC access token is being revoked, rather than outliving it', async () => {
    const signedIn = await signIn()
    const created = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: bearer(signedIn.access) })
    assert.equal(created.status, 201)
    // The request was let in before the revocation; the token is created after it committed: refused, not kept.
    const { jti } = JSON.parse(Buffer.from(signedIn.access.split('.')[1]!, 'base64url').toString())
    await gw.app.store.oidc.destroy('AccessToken', jti)
    const before = (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
    const late = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: bearer(signedIn.access) })
    assert.equal(late.status, 401)
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before, 'nothing created')
    // So with its realm's not-before moved past it (a logout-all) while the request was on its way.
    const other = await signIn()
    const { iat } = JSON.parse(Buffer.from(other.access.split('.')[1]!, 'base64url').toString())
    await setRealmNotBefore(gw.app.store.oidc, other.realm, iat + 1)
    const afterLogoutAll = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: bearer(other.access) })
    assert.equal(afterLogoutAll.status, 401)
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before, 'nothing created')
  })
})

describe('tokens created with an OIDC access token, on PostgreSQL with two processes', () => {
  let first: TestGateway
  let second: TestGateway
  let drop: (() => Promise<void>) | undefined
  let client: { id: number; client_id: string; client_secret: string }
  const erin = { authorization: basic('erin', 'erin-password') }
  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    first = await startGateway({ databaseUrl: database.url })
    second = await startGateway({ dataDir: first.dataDir, databaseUrl: database.url })
    second.app.publicUrl = first.url
    await first.app.accounts.create({ username: 'erin', password: 'erin-password' })
    client = await json(await first.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'two processes', client_type: 'confidential', authorization_grant_type: 'password' }),
    }))
  })
  after(async () => {
    await second?.close()
    await first?.close()
    await drop?.()
  })

  it('end in every process when the grant ends in one, each checked and cached before', async () => {
    const issued = await json(await first.fetch('/o/token/', {
      method: 'POST',
      headers: { authorization: basic(client.client_id, client.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'erin', password: 'erin-password', scope: 'write' }),
    }))
    const child = await createToken(first, bearer(issued.access_token))
    const unrelated = await createToken(first, erin)
    const me = async (gw: TestGateway, token: string) => (await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })).status
    assert.deepEqual([await me(first, child.token), await me(second, child.token)], [200, 200])
    const revoked = await second.fetch('/o/revoke_token/', {
      method: 'POST', headers: { authorization: basic(client.client_id, client.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: issued.refresh_token }),
    })
    assert.equal(revoked.status, 200)
    assert.deepEqual([await me(first, child.token), await me(second, child.token)], [401, 401])
    assert.deepEqual([await me(first, unrelated.token), await me(second, unrelated.token)], [200, 200])
    // The access token itself is refused in the process that did not end it, so nothing more is made with it there.
    const late = await first.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: bearer(issued.access_token) })
    assert.equal(late.status, 401)
  })

  it('are deleted by one of several DELETEs sent at once to both processes: the others are 404, and one delete is recorded', async () => {
    for (let round = 0; round < 5; round += 1) {
      const { id } = await createToken(first, erin)
      const statuses = (await Promise.all([first, second, first, second].map((gw) => gw.fetch(`/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: erin })))).map((response) => response.status)
      assert.deepEqual(statuses.toSorted(), [204, 404, 404, 404], `round ${round}`)
      await Promise.all([first.app.audit.flush(), second.app.audit.flush()])
      const recorded = await json(await first.fetch(`/api/gateway/v1/activitystream/?operation=delete&object_id=${id}`, { headers: adminAuth }))
      assert.equal(recorded.results.filter((entry: any) => entry.content_type === 'token').length, 1, `round ${round}`)
    }
  })
})
