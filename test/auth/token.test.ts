import assert from 'node:assert/strict'
import { after, before, describe, it, mock } from 'node:test'
import { generateToken, hashToken, TOKEN_PREFIX } from '../../src/auth/token-format.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

describe('token authorization', () => {
  let gw: TestGateway
  const alice = { authorization: basic('alice', 'alice-password') }
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const me = (token: string) => gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })
  async function refused(response: Response, status: number, code: string): Promise<void> {
    const body = await json(response)
    assert.equal(response.status, status, JSON.stringify(body))
    assert.equal(body.code, code)
  }

  it('reaches a service with the owner\'s identity, and without the token', async () => {
    const { token } = await createToken(gw, alice)
    const response = await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) })
    assert.equal(response.status, 200)
    const seen = await json(response)
    assert.equal(seen.identity.username, 'alice')
    assert.equal(seen.identity.auth_method, 'token')
    assert.equal(seen.identity.verified, true)
    assert.equal(seen.headers.authorization, null)
  })

  it('authenticates the gateway API as its owner', async () => {
    const { token } = await createToken(gw, alice)
    const response = await me(token)
    assert.equal(response.status, 200)
    assert.equal((await json(response)).results[0].username, 'alice')
  })

  it('lets a read token read but refuses anything else, on services and on the gateway API', async () => {
    const { token } = await createToken(gw, alice, { scope: 'read' })
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) })).status, 200)
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { method: 'HEAD', headers: bearer(token) })).status, 200)
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { method: 'OPTIONS', headers: bearer(token) })).status, 200)
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      await refused(await gw.fetch('/api/controller/v2/hosts/', { method, headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{}' }), 403, 'insufficient_scope')
    }
    await refused(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{}' }), 403, 'insufficient_scope')
    assert.equal((await gw.fetch('/api/gateway/v1/tokens/', { headers: bearer(token) })).status, 200)
  })

  it('lets a write token do what its owner may, and no more', async () => {
    const { token } = await createToken(gw, alice, { scope: 'write' })
    const post = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{"name":"h"}' })
    assert.equal(post.status, 200)
    assert.equal((await json(post)).method, 'POST')
    await refused(await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{"username":"x"}' }), 403, 'permission_denied')
  })

  it('refuses a token once it expires, although it was cached (frozen clock)', async () => {
    const { token } = await createToken(gw, alice, { expires_in: 120 })
    mock.timers.enable({ apis: ['Date'], now: Date.now() })
    try {
      assert.equal((await me(token)).status, 200)
      mock.timers.tick(119_000)
      assert.equal((await me(token)).status, 200)
      mock.timers.tick(1_000)
      const response = await me(token)
      assert.match(response.headers.get('www-authenticate') ?? '', /Bearer realm="Gatehouse", error="invalid_token"/)
      await refused(response, 401, 'token_expired')
    } finally {
      mock.timers.reset()
    }
  })

  it('refuses a stored token past its expiry on first sight', async () => {
    const user = (await gw.app.store.users.findByUsername('alice'))!
    const token = generateToken()
    await gw.app.store.tokens.create({ userId: user.id, tokenHash: hashToken(token), scope: 'write', description: '', expires: Date.now() - 1000 })
    await refused(await me(token), 401, 'token_expired')
    await refused(await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) }), 401, 'token_expired')
  })

  it('refuses a deleted token on the next request', async () => {
    const { id, token } = await createToken(gw, alice)
    assert.equal((await me(token)).status, 200)
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: alice })).status, 204)
    await refused(await me(token), 401, 'invalid_token')
    await refused(await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) }), 401, 'invalid_token')
  })

  it('refuses every token of a user revoked by a superuser, and only theirs', async () => {
    await gw.app.accounts.create({ username: 'dave', password: 'dave-password' })
    const dave = { authorization: basic('dave', 'dave-password') }
    const ofAlice = [await createToken(gw, alice), await createToken(gw, alice, { scope: 'read' })]
    const ofDave = await createToken(gw, dave)
    for (const { token } of [...ofAlice, ofDave]) assert.equal((await me(token)).status, 200)
    const aliceId = (await gw.app.store.users.findByUsername('alice'))!.id
    const revoke = await gw.fetch('/api/gateway/v1/tokens/revoke/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ user: aliceId }) })
    assert.equal(revoke.status, 200)
    assert.ok((await json(revoke)).revoked >= 2)
    for (const { token } of ofAlice) await refused(await me(token), 401, 'invalid_token')
    assert.equal((await me(ofDave.token)).status, 200)
  })

  it('refuses every token in the system once all are revoked', async () => {
    const tokens = [await createToken(gw, alice), await createToken(gw, adminAuth)]
    for (const { token } of tokens) assert.equal((await me(token)).status, 200)
    const revoke = await gw.fetch('/api/gateway/v1/tokens/revoke/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{"all":true}' })
    assert.equal(revoke.status, 200)
    for (const { token } of tokens) await refused(await me(token), 401, 'invalid_token')
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 10 })).count, 0)
  })

  it('stops a disabled owner\'s tokens at once, and lets them work again when re-enabled', async () => {
    const erin = await gw.app.accounts.create({ username: 'erin', password: 'erin-password' })
    const { token } = await createToken(gw, { authorization: basic('erin', 'erin-password') })
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) })).status, 200)
    const patch = (body: object) => gw.fetch(`/api/gateway/v1/users/${erin.id}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal((await patch({ is_active: false })).status, 200)
    await refused(await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) }), 401, 'account_disabled')
    await refused(await me(token), 401, 'account_disabled')
    assert.equal((await patch({ is_active: true })).status, 200)
    assert.equal((await me(token)).status, 200)
    assert.equal((await gw.fetch(`/api/gateway/v1/users/${erin.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    assert.equal((await me(token)).status, 401)
  })

  it('stops a narrowed token from writing at once', async () => {
    const { id, token } = await createToken(gw, alice)
    const write = () => gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: bearer(token) })
    assert.equal((await write()).status, 200)
    const patch = await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { method: 'PATCH', headers: { ...alice, 'content-type': 'application/json' }, body: '{"scope":"read"}' })
    assert.equal(patch.status, 200)
    await refused(await write(), 403, 'insufficient_scope')
  })

  it('refuses malformed and unknown tokens with a clear code', async () => {
    const good = generateToken()
    const cases: [string, string][] = [
      ['Bearer', 'malformed_token'],
      ['Bearer ', 'malformed_token'],
      [`Bearer ${good} extra`, 'malformed_token'],
      [`Bearer ${TOKEN_PREFIX}${'a'.repeat(5000)}`, 'malformed_token'],
      // Long, but no personal token: someone else's bearer token, as an OIDC access token with many groups may be.
      [`Bearer ${'a'.repeat(5000)}`, 'invalid_token'],
      [`Bearer ${good.slice(0, -1)}`, 'malformed_token'],
      [`Bearer ${good.slice(0, 30)}`, 'malformed_token'],
      [`Bearer ${good.slice(0, -6)}000000`, 'token_checksum_mismatch'],
      [`Bearer ${good.slice(0, -7)}${good.at(-7) === 'a' ? 'b' : 'a'}${good.slice(-6)}`, 'token_checksum_mismatch'],
      [`Bearer ${good}`, 'invalid_token'],
      [`Bearer ghp_${good.slice(TOKEN_PREFIX.length)}`, 'invalid_token'],
      ['Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', 'invalid_token'],
    ]
    for (const [header, code] of cases) {
      for (const path of ['/api/controller/v2/hosts/', '/api/gateway/v1/me/']) {
        const response = await gw.fetch(path, { headers: { authorization: header } })
        assert.equal(response.status, 401, `${header.slice(0, 40)} on ${path}`)
        // The gateway API also accepts OIDC bearer tokens: a foreign bearer value is an invalid token there too.
        assert.equal((await json(response)).code, code, `${header.slice(0, 40)} on ${path}`)
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer realm="Gatehouse", error="invalid_token"/, `${header.slice(0, 40)} on ${path}`)
      }
    }
  })

  it('does not look up tokens whose checksum is wrong', async () => {
    const findByHash = mock.method(gw.app.store.tokens, 'findByHash')
    try {
      const good = generateToken()
      await me(`${good.slice(0, -6)}000000`)
      await me(good.slice(0, -3))
      assert.equal(findByHash.mock.callCount(), 0)
      await me(good)
      assert.equal(findByHash.mock.callCount(), 1)
    } finally {
      findByHash.mock.restore()
    }
  })

  it('looks a token up once, then serves it from memory', async () => {
    const { token } = await createToken(gw, alice)
    const findByHash = mock.method(gw.app.store.tokens, 'findByHash')
    try {
      for (let i = 0; i < 10; i++) assert.equal((await me(token)).status, 200)
      assert.equal(findByHash.mock.callCount(), 1)
    } finally {
      findByHash.mock.restore()
    }
  })

  it('does not cache a token read just before it was revoked', async () => {
    const { id, token } = await createToken(gw, alice)
    const original = gw.app.store.tokens.findByHash.bind(gw.app.store.tokens)
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let reading!: () => void
    const read = new Promise<void>((resolve) => (reading = resolve))
    const findByHash = mock.method(gw.app.store.tokens, 'findByHash', async (hash: string) => {
      const record = await original(hash)
      reading()
      await gate
      return record
    })
    try {
      const inFlight = me(token)
      await read
      assert.equal(await gw.app.tokens.revoke(id), true)
      release()
      await inFlight
      findByHash.mock.restore()
      await refused(await me(token), 401, 'invalid_token')
    } finally {
      findByHash.mock.restore()
    }
  })

  it('keeps last_used current without a database write per request', async () => {
    const { id, token } = await createToken(gw, alice)
    const recordLastUsed = mock.method(gw.app.store.tokens, 'recordLastUsed')
    try {
      const before = Date.now()
      for (let i = 0; i < 20; i++) assert.equal((await me(token)).status, 200)
      assert.equal(recordLastUsed.mock.callCount(), 0)
      assert.equal((await gw.app.store.tokens.findById(id))!.lastUsed, null)
      const shown = await json(await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { headers: alice }))
      assert.ok(Date.parse(shown.last_used) >= before)
      await gw.app.tokens.flushLastUsed()
      assert.equal(recordLastUsed.mock.callCount(), 1)
      assert.ok((await gw.app.store.tokens.findById(id))!.lastUsed! >= before)
    } finally {
      recordLastUsed.mock.restore()
    }
  })
})
