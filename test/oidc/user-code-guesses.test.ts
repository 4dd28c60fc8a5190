import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { GUESS_WINDOW_MS, UserCodeGuesses, WRONG_GUESSES_PER_ACCOUNT, WRONG_GUESSES_PER_ADDRESS, WRONG_GUESSES_PER_ADDRESS_SIGNED_IN, WRONG_GUESSES_PER_SESSION, type Guesser } from '../../src/oidc/user-code-guesses.ts'

const browser = (session: string, account?: string): Guesser => ({ session, address: '192.0.2.1', account })

describe('the bound on wrong user codes', () => {
  it('holds a session back until the window of its first wrong code ends, then lets it guess again', () => {
    const guesses = new UserCodeGuesses()
    const start = 1_000_000
    for (let i = 0; i < WRONG_GUESSES_PER_SESSION; i++) {
      assert.equal(guesses.refusal(browser('s1'), start + i).retryAfterSeconds, 0)
      guesses.miss(browser('s1'), start + i)
    }
    assert.deepEqual(guesses.refusal(browser('s1'), start + 1000), { retryAfterSeconds: GUESS_WINDOW_MS / 1000 - 1, byAddress: false })
    assert.equal(guesses.refusal(browser('s2'), start + 1000).retryAfterSeconds, 0)
    assert.equal(guesses.refusal(browser('s1'), start + GUESS_WINDOW_MS).retryAfterSeconds, 0)
  })

  it('times its window by the monotonic clock: a step back of the wall clock holds no session back longer', (t) => {
    const guesses = new UserCodeGuesses()
    for (let i = 0; i < WRONG_GUESSES_PER_SESSION; i++) guesses.miss(browser('stepped'))
    const machineNow = Date.now
    t.mock.method(Date, 'now', () => machineNow() - 3600_000)
    const { retryAfterSeconds } = guesses.refusal(browser('stepped'))
    assert.ok(retryAfterSeconds >= 1 && retryAfterSeconds <= GUESS_WINDOW_MS / 1000, `held back ${retryAfterSeconds} s`)
  })

  it('holds an address back, but not a browser of it signed in, whose guesses count against its account', () => {
    const guesses = new UserCodeGuesses()
    const start = 1_000_000
    for (let i = 0; i < WRONG_GUESSES_PER_ADDRESS; i++) guesses.miss(browser(`guesser-${i}`), start)
    assert.deepEqual(guesses.refusal(browser('fresh'), start), { retryAfterSeconds: GUESS_WINDOW_MS / 1000, byAddress: true })
    assert.equal(guesses.refusal(browser('fresh', '7'), start).retryAfterSeconds, 0)
    // An account's guesses are bounded too, whatever sessions it comes with.
    for (let i = 0; i < WRONG_GUESSES_PER_ACCOUNT; i++) guesses.miss(browser(`signed-in-${i}`, '7'), start)
    assert.deepEqual(guesses.refusal(browser('another', '7'), start), { retryAfterSeconds: GUESS_WINDOW_MS / 1000, byAddress: false })
    assert.equal(guesses.refusal(browser('another', '8'), start).retryAfterSeconds, 0)
  })

  it('bounds the guesses of every account signed in at one address together, so more accounts do not bring more guesses', () => {
    const guesses = new UserCodeGuesses()
    const start = 1_000_000
    const accounts = WRONG_GUESSES_PER_ADDRESS_SIGNED_IN / WRONG_GUESSES_PER_ACCOUNT
    for (let a = 0; a < accounts; a++) {
      for (let i = 0; i < WRONG_GUESSES_PER_ACCOUNT; i++) guesses.miss(browser(`a${a}-s${i}`, `account-${a}`), start)
    }
    // One more account at that address is held back; at another address, or not signed in, a browser still guesses.
    assert.deepEqual(guesses.refusal(browser('next', 'account-new'), start), { retryAfterSeconds: GUESS_WINDOW_MS / 1000, byAddress: false })
    assert.equal(guesses.refusal({ session: 'elsewhere', address: '192.0.2.2', account: 'account-new' }, start).retryAfterSeconds, 0)
    assert.equal(guesses.refusal(browser('anonymous'), start).retryAfterSeconds, 0)
  })
})
