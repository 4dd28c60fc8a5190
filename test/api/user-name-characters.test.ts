import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/** Bidirectional formatting characters (Unicode TR 9) make a name read otherwise than it is stored ("Trojan Source"). */
const BIDI_MARKS = ['\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069', '\u200E', '\u200F']

describe('the users API\'s name fields, and a user\'s own (me/)', () => {
  let gw: TestGateway
  let userId: number
  const ownAuth = { authorization: basic('named', 'named-password-long') }

  before(async () => {
    gw = await startGateway()
    userId = (await gw.app.accounts.create({ username: 'named', password: 'named-password-long', firstName: 'Nora' })).id
  })
  after(() => gw.close())

  it('refuses a bidirectional formatting character in a first or last name, naming the field, and changes nothing', async () => {
    const before = await gw.store.users.count()
    for (const mark of BIDI_MARKS) {
      for (const field of ['first_name', 'last_name']) {
        const created = await call(gw, 'POST', 'users/', { username: 'bidi-user', [field]: `Mal${mark}lory` })
        assert.equal(created.status, 400, `${field} ${JSON.stringify(mark)}`)
        assert.equal(created.body.code, 'invalid')
        assert.ok(Array.isArray(created.body[field]), 'DRF-shaped: the field\'s messages at the top level')
        const changed = await call(gw, 'PATCH', `users/${userId}/`, { [field]: `${mark}gnp.exe` })
        assert.equal(changed.status, 400, `${field} ${JSON.stringify(mark)}`)
        assert.ok(Array.isArray(changed.body[field]))
        const own = await gw.fetch('/api/gateway/v1/me/', { method: 'PATCH', headers: { ...ownAuth, 'content-type': 'application/json' }, body: JSON.stringify({ [field]: `${mark}x` }) })
        assert.equal(own.status, 400, `me/ ${field} ${JSON.stringify(mark)}`)
        assert.ok(Array.isArray(((await own.json()) as Record<string, unknown>)[field]))
      }
    }
    assert.equal(await gw.store.users.count(), before)
    assert.equal((await gw.store.users.findById(userId))!.firstName, 'Nora')
  })

  it('takes names in right-to-left scripts, which need no such characters', async () => {
    const changed = await call(gw, 'PATCH', `users/${userId}/`, { first_name: 'نورة', last_name: 'כהן' })
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    assert.equal(changed.body.first_name, 'نورة')
  })
})
