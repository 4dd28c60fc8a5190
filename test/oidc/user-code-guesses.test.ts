import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { GUESS_WINDOW_MS, UserCodeGuesses, WRONG_GUESSES_PER_SESSION } from '../../src/oidc/user-code-guesses.ts'

describe('the bound on wrong user codes', () => {
  it('holds a session back until the window of its first wrong code ends, then lets it guess again', () => {
    const guesses = new UserCodeGuesses()
    const start = 1_000_000
    for (let i = 0; i < WRONG_GUESSES_PER_SESSION; i++) {
      assert.equal(guesses.retryAfterSeconds('s1', '192.0.2.1', start + i), 0)
      guesses.miss('s1', '192.0.2.1', start + i)
    }
    assert.equal(guesses.retryAfterSeconds('s1', '192.0.2.1', start + 1000), GUESS_WINDOW_MS / 1000 - 1)
    assert.equal(guesses.retryAfterSeconds('s2', '192.0.2.1', start + 1000), 0)
    assert.equal(guesses.retryAfterSeconds('s1', '192.0.2.1', start + GUESS_WINDOW_MS), 0)
  })
})
