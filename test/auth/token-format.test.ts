import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateToken, hashToken, TOKEN_PREFIX, tokenShapeProblem } from '../../src/auth/token-format.ts'

describe('token format', () => {
  it('makes distinct, prefixed tokens that carry 256 random bits and a checksum', () => {
    const tokens = new Set(Array.from({ length: 1000 }, generateToken))
    assert.equal(tokens.size, 1000)
    for (const token of tokens) {
      assert.match(token, /^gatehouse_pat_[0-9A-Za-z]{49}$/)
      assert.equal(tokenShapeProblem(token), undefined)
    }
  })

  it('spreads the random part over the whole alphabet (not a padded small number)', () => {
    const firsts = new Set([...Array(500)].map(() => generateToken().slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + 2)))
    assert.ok(firsts.size > 300, `only ${firsts.size} distinct leading pairs`)
  })

  it('detects any single changed character by its checksum', () => {
    const token = generateToken()
    for (let i = TOKEN_PREFIX.length; i < token.length; i++) {
      const changed = token.slice(0, i) + (token[i] === 'a' ? 'b' : 'a') + token.slice(i + 1)
      assert.equal(tokenShapeProblem(changed), 'checksum', `position ${i}`)
    }
  })

  it('calls truncated, extended and foreign-character tokens malformed', () => {
    const token = generateToken()
    assert.equal(tokenShapeProblem(token.slice(0, -1)), 'malformed')
    assert.equal(tokenShapeProblem(token + 'a'), 'malformed')
    assert.equal(tokenShapeProblem(token.slice(0, -2) + '-_'), 'malformed')
    assert.equal(tokenShapeProblem(TOKEN_PREFIX), 'malformed')
  })

  it('hashes with SHA-256, so the stored form reveals nothing of the token', () => {
    const token = generateToken()
    assert.match(hashToken(token), /^[0-9a-f]{64}$/)
    assert.equal(hashToken(token), hashToken(token))
    assert.ok(!hashToken(token).includes(token.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + 8)))
  })
})
