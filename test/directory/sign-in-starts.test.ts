import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SignInStarts } from '../../src/directory/sign-in-starts.ts'
import { SignInsThrottled } from '../../src/errors.ts'

const refusal = (starts: SignInStarts, address: string, now: number): SignInsThrottled | undefined => {
  try {
    starts.admit(address, now)
    return undefined
  } catch (error) {
    assert.ok(error instanceof SignInsThrottled, String(error))
    return error
  }
}

describe('sign-in starts', () => {
  it('refuses an address its starts beyond the limit until the window ends, saying when, and others go on', () => {
    const starts = new SignInStarts({ perAddress: 3, total: 100, windowMs: 60_000 })
    for (let i = 0; i < 3; i++) assert.equal(refusal(starts, '192.0.2.1', 1_000), undefined)
    const refused = refusal(starts, '192.0.2.1', 31_000)
    assert.equal(refused?.code, 'sign_ins_throttled')
    assert.equal(refused?.status, 429)
    assert.equal(refused?.headers['retry-after'], '30')
    assert.equal(refusal(starts, '192.0.2.2', 31_000), undefined)
    assert.equal(refusal(starts, '192.0.2.1', 61_000), undefined, 'a new window')
  })

  it('times its windows by the monotonic clock: a step back of the wall clock keeps no address refused longer', (t) => {
    const starts = new SignInStarts({ perAddress: 1, total: 100, windowMs: 60_000 })
    starts.admit('192.0.2.1')
    const machineNow = Date.now
    t.mock.method(Date, 'now', () => machineNow() - 3600_000)
    assert.throws(() => starts.admit('192.0.2.1'), (error: unknown) => error instanceof SignInsThrottled && Number(error.headers['retry-after']) <= 60)
  })

  it('counts an IPv6 client by its /64, and an IPv4 client written as IPv6 as itself', () => {
    const starts = new SignInStarts({ perAddress: 2, total: 100, windowMs: 60_000 })
    assert.equal(refusal(starts, '2001:db8:1:2::1', 0), undefined)
    assert.equal(refusal(starts, '2001:db8:1:2:ffff::9', 0), undefined)
    assert.equal(refusal(starts, '2001:db8:1:2::77', 0)?.code, 'sign_ins_throttled')
    assert.equal(refusal(starts, '2001:db8:1:3::1', 0), undefined)
    assert.equal(refusal(starts, '::ffff:192.0.2.9', 0), undefined)
    assert.equal(refusal(starts, '192.0.2.9', 0), undefined)
    assert.equal(refusal(starts, '::ffff:192.0.2.9', 0)?.code, 'sign_ins_throttled')
  })

  it('has no limit where it is 0', () => {
    const starts = new SignInStarts({ perAddress: 0, total: 0, windowMs: 60_000 })
    for (let i = 0; i < 1000; i++) assert.equal(refusal(starts, '192.0.2.1', 0), undefined)
  })

  it('refuses everyone once all addresses together reach the total, and counts no refused start', () => {
    const starts = new SignInStarts({ perAddress: 2, total: 4, windowMs: 60_000 })
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) assert.equal(refusal(starts, address, 0), undefined)
    for (const address of ['192.0.2.1', '192.0.2.5', '192.0.2.5']) assert.equal(refusal(starts, address, 0)?.code, 'sign_ins_throttled')
    const next = new SignInStarts({ perAddress: 2, total: 4, windowMs: 60_000 })
    for (let i = 0; i < 5; i++) refusal(next, '192.0.2.1', 0)
    for (const address of ['192.0.2.2', '192.0.2.3']) assert.equal(refusal(next, address, 0), undefined, 'the refused starts took nothing of the total')
    assert.equal(refusal(next, '192.0.2.4', 0)?.code, 'sign_ins_throttled')
  })

  it('counts at most so many addresses with no total limit, forgetting the one counted first, and none with no limit per address', () => {
    const starts = new SignInStarts({ perAddress: 1, total: 0, windowMs: 60_000, countedAddresses: 3 })
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5']) assert.equal(refusal(starts, address, 0), undefined)
    assert.equal(starts.countedAddresses, 3)
    assert.equal(refusal(starts, '192.0.2.1', 0), undefined, 'forgotten, so it starts afresh')
    for (const address of ['192.0.2.4', '192.0.2.5', '192.0.2.1']) assert.equal(refusal(starts, address, 0)?.code, 'sign_ins_throttled', address)
    assert.equal(starts.countedAddresses, 3)
    const unlimited = new SignInStarts({ perAddress: 0, total: 0, windowMs: 60_000 })
    for (let i = 0; i < 1000; i++) assert.equal(refusal(unlimited, `192.0.2.${i % 250}`, 0), undefined)
    assert.equal(unlimited.countedAddresses, 0)
  })
})
