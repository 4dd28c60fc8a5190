import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_PASSWORD, json } from '../helpers/gateway.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { csrfToken, LOGIN, login, setCookie, withCsrf } from '../helpers/session.ts'

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

    it('lets no session the burst ended work on, not even in the process that started it', async () => {
      const gw = await backend.start()
      try {
        await gw.app.settings.update({ sessions_per_user_limit: 1 })
        const csrf = await csrfToken(gw)
        const login = () => gw.fetch(LOGIN, {
          method: 'POST',
          headers: { cookie: `csrftoken=${csrf}`, 'x-csrftoken': csrf, 'content-type': 'application/json', accept: 'application/json', referer: `${gw.url}/` },
          body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
        })
        // Several bursts: an ended session stays usable only when its end lands between its start and its caching.
        for (let burst = 0; burst < 4; burst++) {
          const answers = await Promise.all(Array.from({ length: 16 }, login))
          for (const answer of answers) assert.equal(answer.status, 200, `burst ${burst}: ${answer.status} ${await answer.clone().text()}`)
          const sessionIds = answers.map((answer) => setCookie(answer, 'gateway_sessionid')!.value)
          const statuses = await Promise.all(sessionIds.map(async (id) => (await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: `gateway_sessionid=${id}` } })).status))
          assert.equal(statuses.filter((status) => status === 200).length, 1, `burst ${burst}: ${statuses.join(' ')}`)
        }
      } finally {
        await gw.close()
      }
    })

    it('holds when each login of the burst replaces a session its browser already had, every login answered', async () => {
      const gw = await backend.start()
      try {
        const browsers = []
        for (let i = 0; i < 12; i++) browsers.push(await login(gw, 'admin', ADMIN_PASSWORD))
        await gw.app.settings.update({ sessions_per_user_limit: 2 })
        const answers = await Promise.all(browsers.map((browser) => gw.fetch(LOGIN, {
          method: 'POST',
          headers: withCsrf(browser, { 'content-type': 'application/x-www-form-urlencoded', referer: gw.url + LOGIN }),
          body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD }).toString(),
        })))
        for (const answer of answers) assert.equal(answer.status, 302, await answer.text())
        const admin = await gw.app.store.users.findByUsername('admin')
        const { count } = await gw.app.store.sessions.list({ offset: 0, limit: 100, now: Date.now(), userId: admin!.id })
        assert.ok(count <= 2, `${count} live sessions`)
      } finally {
        await gw.close()
      }
    })
  })
}

for (const backend of gatewayBackends) {
  describe(`a user's live sessions are bounded by default (${backend.name})`, () => {
    it('ends the oldest of 1,000 live sessions when the user logs in once more, keeping the new one', async () => {
      const gw = await backend.start()
      try {
        const admin = (await gw.app.store.users.findByUsername('admin'))!
        const now = Date.now()
        const held = Array.from({ length: 1000 }, (_, i) => ({
          key_hash: `held-${i}-`.padEnd(64, 'x'), user_id: admin.id, created_at: now - 100_000 + i, expires_at: now + 3_600_000, ip: '192.0.2.1', user_agent: 'a login loop',
        }))
        for (let i = 0; i < held.length; i += 250) await gw.app.store.database.db.insertInto('sessions').values(held.slice(i, i + 250)).execute()
        const session = await login(gw, 'admin', ADMIN_PASSWORD)
        const { count } = await gw.app.store.sessions.list({ offset: 0, limit: 1, now: Date.now(), userId: admin.id })
        assert.equal(count, 1000)
        assert.equal(await gw.app.store.sessions.findByKeyHash(held[0]!.key_hash), undefined, 'the oldest ended')
        assert.ok(await gw.app.store.sessions.findByKeyHash(held[1]!.key_hash))
        assert.equal((await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: `gateway_sessionid=${session.sessionId}` } })).status, 200)
      } finally {
        await gw.close()
      }
    })
  })
}
