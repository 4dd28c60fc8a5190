import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { login, withCsrf } from '../helpers/session.ts'

/**
 * A request that creates a personal token was authenticated with a credential read before the token is written. A
 * change that ends that credential and commits in between (an administrator's new password for the account, or its
 * disable) must not leave a token made by it: the new token would carry the ended session's authority on.
 */
for (const backend of gatewayBackends) {
  describe(`personal tokens created while their account changes (${backend.name})`, () => {
    /** Runs `change` after the request creating a token was authenticated, just before the token is written. */
    async function createWhile(gw: TestGateway, change: (userId: number) => Promise<void>): Promise<{ status: number; body: any; userId: number }> {
      const user = await gw.app.accounts.create({ username: 'alice', password: 'alice-password-1' })
      const session = await login(gw, 'alice', 'alice-password-1')
      const tokens = gw.app.tokens
      const issue = tokens.issue.bind(tokens)
      tokens.issue = async (...args) => {
        await change(user.id)
        return issue(...args)
      }
      try {
        const response = await gw.fetch('/api/gateway/v1/tokens/', {
          method: 'POST', headers: withCsrf(session, { 'content-type': 'application/json' }), body: JSON.stringify({ scope: 'write' }),
        })
        return { status: response.status, body: await json(response), userId: user.id }
      } finally {
        tokens.issue = issue
      }
    }

    const patchUser = (gw: TestGateway, userId: number, body: Record<string, unknown>) => async () => {
      const response = await gw.fetch(`/api/gateway/v1/users/${userId}/`, {
        method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body),
      })
      assert.equal(response.status, 200, await response.text())
    }

    const endings = [
      { name: 'makes no token from a session a new password ended meanwhile', change: { password: 'alice-password-2' }, code: 'invalid_credentials' },
      { name: 'makes no token for an account disabled meanwhile', change: { is_active: false }, code: 'account_disabled' },
    ]
    for (const ending of endings) {
      it(ending.name, async () => {
        const gw = await backend.start()
        try {
          let userId = 0
          const { status, body } = await createWhile(gw, (id) => patchUser(gw, (userId = id), ending.change)())
          assert.equal(status, 401, JSON.stringify(body))
          assert.equal(body.code, ending.code)
          assert.equal((await gw.store.tokens.list({ offset: 0, limit: 10, userId })).count, 0)
        } finally {
          await gw.close()
        }
      })
    }

    it('still makes the token when nothing about the account changed', async () => {
      const gw = await backend.start()
      try {
        const { status, body } = await createWhile(gw, async () => {})
        assert.equal(status, 201, JSON.stringify(body))
        const used = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${body.token}` } })
        assert.equal(used.status, 200)
      } finally {
        await gw.close()
      }
    })
  })
}
