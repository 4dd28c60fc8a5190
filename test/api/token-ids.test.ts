import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'

/** Ids in a token request's body beyond what the database holds (32 bits) are bad input, on either backend. */
for (const backend of gatewayBackends) {
  describe(`ids in the tokens API's bodies on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => { gw = await backend.start() })
    after(() => gw.close())
    const send = (method: string, path: string, body: unknown) =>
      gw.fetch(`/api/gateway/v1/${path}`, { method, headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })

    it('answers an id too large for the database with 400 naming the field, and changes nothing', async () => {
      const before = (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
      const cases: [string, unknown, string][] = [
        ['tokens/', { application: 99999999999 }, 'application'],
        ['tokens/', { application: 2 ** 31 }, 'application'],
        ['tokens/revoke/', { user: 99999999999 }, 'user'],
        ['tokens/revoke/', { user: '9999999999' }, 'user'],
        ['tokens/revoke/', { user: 2 ** 31 }, 'user'],
      ]
      for (const [path, body, field] of cases) {
        const response = await send('POST', path, body)
        const answer = await json(response)
        assert.equal(response.status, 400, `${path} ${JSON.stringify(body)}: ${JSON.stringify(answer)}`)
        assert.equal(answer.code, 'invalid')
        assert.ok(answer.errors[field], `${path} ${JSON.stringify(body)}: ${JSON.stringify(answer.errors)}`)
      }
      assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before)
    })
  })
}
