import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'

const ROUNDS = 8
const password = (name: string) => `${name}-password-long`
const as = (name: string) => ({ authorization: basic(name, password(name)) })

/**
 * Two superusers demoting, disabling or deleting each other at the same moment: each request alone is allowed (it
 * is not the caller's own account), but together they would leave the platform without an administrator.
 */
for (const backend of gatewayBackends) {
  describe(`the last active superuser on ${backend.name}`, () => {
    let gw: TestGateway

    before(async () => {
      gw = await backend.start()
      const admin = await gw.store.users.findByUsername('admin')
      await gw.app.accounts.update(admin!.id, { isSuperuser: false })
    })
    after(() => gw.close())

    /** alpha and beta, both active superusers (created again when a round deleted them), with their passwords verified. */
    async function twoSuperusers(): Promise<{ alpha: number; beta: number }> {
      const ids: number[] = []
      for (const name of ['alpha', 'beta']) {
        const existing = await gw.store.users.findByUsername(name)
        const user = existing
          ? await gw.app.accounts.update(existing.id, { isSuperuser: true, isActive: true })
          : await gw.app.accounts.create({ username: name, password: password(name), isSuperuser: true })
        ids.push(user.id)
      }
      // Both credentials verified before the race, so both requests reach their handlers together.
      for (const name of ['alpha', 'beta']) assert.equal((await call(gw, 'GET', 'me/', undefined, as(name))).status, 200)
      return { alpha: ids[0]!, beta: ids[1]! }
    }

    async function activeSuperusers(): Promise<string[]> {
      const { users } = await gw.store.users.list({ offset: 0, limit: 100 })
      return users.filter((u) => u.isSuperuser && u.isActive).map((u) => u.username)
    }

    const attempts: { what: string; method: string; body?: Record<string, boolean> }[] = [
      { what: 'demote', method: 'PATCH', body: { is_superuser: false } },
      { what: 'disable', method: 'PATCH', body: { is_active: false } },
      { what: 'delete', method: 'DELETE' },
    ]
    for (const { what, method, body } of attempts) {
      it(`keeps one when two superusers ${what} each other at once`, async () => {
        for (let round = 0; round < ROUNDS; round++) {
          const { alpha, beta } = await twoSuperusers()
          const answers = await Promise.all([
            call(gw, method, `users/${beta}/`, body, as('alpha')),
            call(gw, method, `users/${alpha}/`, body, as('beta')),
          ])
          const remaining = await activeSuperusers()
          assert.equal(remaining.length, 1, `round ${round}: ${JSON.stringify(answers)} left ${JSON.stringify(remaining)}`)
          const refused = answers.filter((a) => a.status === 403)
          assert.equal(refused.length, 1, `round ${round}: ${JSON.stringify(answers)}`)
          assert.ok(['self_lockout', 'permission_denied'].includes(refused[0]!.body.code), JSON.stringify(refused[0]))
          if (refused[0]!.body.code === 'self_lockout') assert.match(refused[0]!.body.detail, /At least one active superuser must remain/)
        }
      })
    }

    it('refuses the demoted superuser\'s next change, and keeps the other', async () => {
      const { alpha, beta } = await twoSuperusers()
      assert.equal((await call(gw, 'PATCH', `users/${beta}/`, { is_superuser: false }, as('alpha'))).status, 200)
      const refused = await call(gw, 'PATCH', `users/${alpha}/`, { is_superuser: false }, as('beta'))
      assert.equal(refused.status, 403, 'beta is no longer a superuser')
      assert.deepEqual(await activeSuperusers(), ['alpha'])
    })
  })
}
