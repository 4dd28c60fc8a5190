import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'

/** Two creations racing with names that differ only in case: one account gets the name, the other request is told it is taken. */
for (const backend of gatewayBackends) {
  describe(`creating users at once whose names differ only in case, on ${backend.name}`, () => {
    let gw: TestGateway

    before(async () => {
      gw = await backend.start()
    })
    after(() => gw.close())

    const create = (username: string) => gw.fetch('/api/gateway/v1/users/', {
      method: 'POST',
      headers: { ...adminAuth, 'content-type': 'application/json' },
      // A password: each request hashes it between the check for a taken name and the insert.
      body: JSON.stringify({ username, password: `${username}-racing-password` }),
    })

    it('creates one of them and answers the other 400 username_taken', async () => {
      const responses = await Promise.all([create('Racer'), create('racer'), create('RACER')])
      assert.deepEqual(responses.map((r) => r.status).sort(), [201, 400, 400])
      for (const refused of responses.filter((r) => r.status === 400)) assert.equal((await json(refused)).code, 'username_taken')
      assert.equal((await gw.store.users.findUsernamesLike('racer', false, 10)).length, 1)
    })
  })
}
