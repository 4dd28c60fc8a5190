import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError, validateConfig } from '../../src/config/load.ts'

describe('the forward_auth section', () => {
  it('is absent by default: the address in server.trusted_proxies is enough', () => {
    assert.equal(validateConfig({}).forward_auth, undefined)
    assert.equal(validateConfig({ forward_auth: {} }).forward_auth?.secret, undefined)
  })

  it('takes a secret of 32 characters or more, and refuses a shorter one or an unknown key, never repeating the value', () => {
    const secret = 'x'.repeat(32)
    assert.equal(validateConfig({ forward_auth: { secret } }).forward_auth?.secret, secret)
    for (const [input, path] of [[{ secret: 'short-secret-value' }, 'forward_auth.secret'], [{ secrets: secret }, 'forward_auth']] as const) {
      assert.throws(() => validateConfig({ forward_auth: input }), (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.deepEqual(error.problems.map((problem) => problem.split(':')[0]), [path])
        assert.doesNotMatch(error.message, /short-secret-value/)
        return true
      })
    }
  })
})
