import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_PASSWORD, json } from '../helpers/gateway.ts'
import { gatewayBackends } from '../helpers/backends.ts'

/**
 * sessions_per_user_limit holds however many logins of one user arrive at once: each login's transaction sees the
 * sessions the others started, so no burst leaves more live sessions than the limit.
 */
for (const backend of gatewayBackends) {
  describe(`sessions_per_user_limit under concurrent logins (${backend.name})`, () => {
    it('leaves no more live sessions than the limit after a burst of logins of one user', async () => {
      const gw = await backend.start()
      try {
        await gw.app.settings.update({ sessions_per_user_limit: 1 })
        const page = await gw.fetch('/api/gateway/v1/login/', { headers: { accept: 'application/json' } })
        const cookie = page.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
        const { csrf_token: csrfToken } = await json(page)
        const login = () => gw.fetch('/api/gateway/v1/login/', {
          method: 'POST',
          headers: { cookie, 'x-csrftoken': csrfToken, 'content-type': 'application/json', accept: 'application/json', referer: `${gw.url}/` },
          body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
        })
        const answers = await Promise.all(Array.from({ length: 16 }, login))
        for (const answer of answers) {
          assert.equal(answer.status, 200)
          await answer.arrayBuffer()
        }
        const admin = await gw.app.store.users.findByUsername('admin')
        const { count } = await gw.app.store.sessions.list({ offset: 0, limit: 100, now: Date.now(), userId: admin!.id })
        assert.equal(count, 1)
      } finally {
        await gw.close()
      }
    })
  })
}
