import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { awxkitOauth2Token, CollectionClient } from '../helpers/platform-clients.ts'

describe('the platform\'s clients', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  describe('API roots', () => {
    it('answers the roots anonymously with the csrftoken cookie, as the collection\'s first request needs', async () => {
      for (const path of ['/api/', '/api/gateway/', '/api/gateway/v1/']) {
        const response = await gw.fetch(path, { headers: { accept: 'application/json' } })
        assert.equal(response.status, 200, path)
        assert.match(response.headers.get('set-cookie') ?? '', /^csrftoken=[^;]+;/, path)
        await response.json()
      }
      const index = await json(await gw.fetch('/api/gateway/v1/'))
      assert.equal(index.tokens, '/api/gateway/v1/tokens/')
      assert.equal((await json(await gw.fetch('/api/gateway/'))).current_version, '/api/gateway/v1/')
    })

    it('serves the demo controller\'s API root anonymously, as the real controller does', async () => {
      const response = await gw.fetch('/api/controller/')
      assert.equal(response.status, 200)
      assert.equal((await json(response)).identity, null)
    })

    it('still asks for credentials below the roots', async () => {
      assert.equal((await gw.fetch('/api/gateway/v1/users/')).status, 401)
      assert.equal((await gw.fetch('/api/controller/v2/hosts/')).status, 401)
    })
  })

  describe('the collection\'s token module', () => {
    const admin = () => new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })

    it('creates a token with username and password, and deletes it by existing_token', async () => {
      const client = admin()
      await client.authenticate()
      const created = await client.send('POST', 'tokens', { description: 'from ansible', scope: 'write' })
      assert.equal(created.status, 201)
      const fact = created.json
      assert.match(fact.token, /^gatehouse_pat_/)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${fact.token}` } })).status, 200)

      assert.equal(await client.deleteIfNeeded(fact), 204)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${fact.token}` } })).status, 401)
    })

    it('deletes a token by existing_token_id, finding exactly that one', async () => {
      const client = admin()
      await client.authenticate()
      const kept = (await client.send('POST', 'tokens', { scope: 'write' })).json
      const doomed = (await client.send('POST', 'tokens', { scope: 'read' })).json
      const found = await client.getOne('tokens', { data: { id: doomed.id } })
      assert.equal(found.id, doomed.id)
      assert.equal(found.token, '$encrypted$')
      assert.equal(await client.deleteIfNeeded(found), 204)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${doomed.token}` } })).status, 401)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${kept.token}` } })).status, 200)
    })

    it('creates a token with an existing token', async () => {
      const first = admin()
      await first.authenticate()
      const existing = (await first.send('POST', 'tokens', { scope: 'write' })).json
      const client = new CollectionClient(gw.url, { token: existing.token })
      await client.authenticate()
      const created = await client.send('POST', 'tokens', { description: 'made with a token', scope: 'write' })
      assert.equal(created.status, 201, JSON.stringify(created.json))
      assert.ok(Date.parse(created.json.expires) <= Date.parse(existing.expires))
    })
  })

  describe('awxkit', () => {
    it('get_oauth2_token() without a client id returns a working personal token', async () => {
      const { status, token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      assert.equal(status, 201)
      assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
    })
  })
})
