import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'

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
})
