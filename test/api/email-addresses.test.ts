import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { isPlatformEmailAddress } from '../../src/api/email-address.ts'

/**
 * The platform's users/ checks an address with Django's EmailValidator (django/core/validators.py): a playbook's
 * `root@localhost` or an internationalised domain passes there, so the ansible.platform `user` module sending it must
 * not fail here. What Django refuses is refused here too.
 */
const TAKEN = [
  'alice@example.com',
  'A.B@EXAMPLE.COM',
  "o'brien+tag@example.co",
  'root@localhost',
  'admin@[192.0.2.1]',
  'admin@[::1]',
  'admin@[2001:db8::ff00:42:8329]',
  'admin@exämple.com',
  'admin@münchen.de',
  'admin@xn--mnchen-3ya.de',
  'a!b@example.com',
  "#!$%&'*+-/=?^_`{}|~@example.org",
  '"john..doe"@example.com',
  '"john\\ doe"@example.com',
  '"quoted\\"inside"@example.com',
  'x@a-b.c-d.example',
  'x@localhost.localdomain',
  `${'a'.repeat(64)}@example.com`,
  // Python's IGNORECASE takes the long s for a letter of A-Z.
  'ſ@example.com',
  'a@straße.de',
  'a@例子.测试',
]
const REFUSED = [
  'not-an-email',
  '@example.com',
  'alice@',
  'alice@example',
  'alice@example.c',
  'alice@example.com.',
  'alice@-example.com',
  'alice@example-.com',
  'alice@exa_mple.com',
  'alice@example..com',
  'alice@LOCALHOST',
  'a..b@example.com',
  '.a@example.com',
  'a.@example.com',
  'a b@example.com',
  '"john doe"@example.com',
  'josé@example.com',
  '"a"b"@example.com',
  'a@[192.0.2.256]',
  'a@[1.2.3]',
  'a@[IPv6:::1]',
  'a@[192.0.2.01]',
  'ivy\u0000@example.com',
  'a@exam\u202Eple.com',
  'a@\ud800.example.com',
  `a@${'b'.repeat(64)}.com`,
  `${'a'.repeat(300)}@${'b'.repeat(20)}.com`,
  'a@example.co-',
  'a@example.com\n',
  'a@b@example.com',
  // Python's older IDNA deletes a joiner, which makes it `example.com` there; an invisible character is refused here.
  'a@exa\u200dmple.com',
]

describe('e-mail addresses as the platform takes them', () => {
  it('takes what Django\'s EmailValidator takes and refuses what it refuses', () => {
    for (const address of TAKEN) assert.equal(isPlatformEmailAddress(address), true, address)
    for (const address of REFUSED) assert.equal(isPlatformEmailAddress(address), false, JSON.stringify(address))
  })

  describe('through the API', () => {
    let gw: TestGateway
    let id: number
    before(async () => {
      gw = await startGateway()
      id = (await gw.app.accounts.create({ username: 'mailer', password: 'mailer-password-long' })).id
    })
    after(() => gw.close())

    it('users/ creates and changes accounts with every address Django takes, as given', async () => {
      for (const [index, email] of TAKEN.entries()) {
        const changed = await call(gw, 'PATCH', `users/${id}/`, { email })
        assert.equal(changed.status, 200, `${email}: ${JSON.stringify(changed.body)}`)
        assert.equal(changed.body.email, email)
        assert.equal((await call(gw, 'PATCH', `users/${id}/`, { email: '' })).status, 200)
        const made = await call(gw, 'POST', 'users/', { username: `taken${index}`, email })
        assert.equal(made.status, 201, `${email}: ${JSON.stringify(made.body)}`)
        assert.equal(made.body.email, email)
      }
    })

    it('refuses the others with Django\'s words and changes nothing', async () => {
      const me = { authorization: basic('mailer', 'mailer-password-long') }
      assert.equal((await call(gw, 'PATCH', `users/${id}/`, { email: 'mailer@example.com' })).status, 200)
      for (const email of REFUSED.slice(0, 16)) {
        const made = await call(gw, 'POST', 'users/', { username: 'refused', email })
        assert.equal(made.status, 400, email)
        assert.deepEqual(made.body.errors.email, ['Enter a valid email address.'], email)
        const own = await call(gw, 'PATCH', 'me/', { email }, me)
        assert.equal(own.status, 400, email)
        assert.deepEqual(own.body.errors.email, ['Enter a valid email address.'], email)
      }
      assert.equal(await gw.store.users.findByUsername('refused'), undefined)
      assert.equal((await call(gw, 'GET', `users/${id}/`)).body.email, 'mailer@example.com')
    })
  })
})
