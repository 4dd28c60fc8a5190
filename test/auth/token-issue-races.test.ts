import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
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

    const revocations = [
      { name: 'a new password with revoke_tokens', revoke: (gw: TestGateway, userId: number) => patchUser(gw, userId, { password: 'alice-password-2', revoke_tokens: true })() },
      { name: 'a revocation of the user\'s tokens', revoke: async (gw: TestGateway, userId: number) => {
        const response = await gw.fetch('/api/gateway/v1/tokens/revoke/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ user: userId }) })
        assert.equal(response.status, 200, await response.text())
      } },
    ]
    for (const revocation of revocations) it(`leaves no token written while ${revocation.name} commits`, async () => {
      // The token's transaction has read the account and is about to write the token when the revocation starts: on
      // PostgreSQL the revocation would otherwise find no token to delete (not yet committed) and commit first.
      const gw = await backend.start()
      const { store } = gw
      const transaction = store.transaction
      try {
        const user = await gw.app.accounts.create({ username: 'alice', password: 'alice-password-1' })
        const session = await login(gw, 'alice', 'alice-password-1')
        let reachedWrite!: () => void
        const atWrite = new Promise<void>((resolve) => { reachedWrite = resolve })
        let releaseWrite!: () => void
        const writeReleased = new Promise<void>((resolve) => { releaseWrite = resolve })
        store.transaction = (work) => transaction(async (tx) => {
          const create = tx.tokens.create.bind(tx.tokens)
          tx.tokens.create = async (...args) => {
            reachedWrite()
            await writeReleased
            return create(...args)
          }
          return work(tx)
        })
        const issuing = gw.fetch('/api/gateway/v1/tokens/', {
          method: 'POST', headers: withCsrf(session, { 'content-type': 'application/json' }), body: JSON.stringify({ scope: 'write' }),
        })
        await atWrite
        store.transaction = transaction
        const revoking = revocation.revoke(gw, user.id)
        // Long enough for the revocation to commit if nothing holds it back.
        const revokedFirst = await Promise.race([revoking.then(() => true), sleep(1000).then(() => false)])
        releaseWrite()
        const issued = await issuing
        await revoking
        const body = await json(issued)
        assert.ok(issued.status === 201 || issued.status === 401, JSON.stringify(body))
        assert.equal((await gw.store.tokens.list({ offset: 0, limit: 10, userId: user.id })).count, 0, `revocation committed first: ${revokedFirst}`)
        if (issued.status === 201) assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${body.token}` } })).status, 401)
      } finally {
        store.transaction = transaction
        await gw.close()
      }
    })

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
