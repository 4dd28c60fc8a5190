import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeProtectedHeader } from 'jose'
import type { User } from '../../src/store/users.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the identity signer', () => {
  let gw: TestGateway
  let alice: User
  before(async () => {
    gw = await startGateway()
    alice = await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const principal = () => ({ user: alice, method: 'basic' as const, scope: undefined })

  it('keeps no token signed while the account changed, even while the keys were being read', async () => {
    const identity = gw.app.identity
    identity.forgetUser(alice.id)
    await identity.rotate()
    // The keys are read again first; the account changes meanwhile.
    const signing = identity.tokenFor(principal(), 'galaxy')
    identity.forgetUser(alice.id)
    assert.equal(typeof await signing, 'string')
    assert.equal(identity.reusableToken(principal(), 'galaxy'), undefined)
  })

  // Last: it reads the keys as they are once the next key signs.
  it('reuses a token until the next key signs', async () => {
    const identity = gw.app.identity
    const first = await identity.tokenFor(principal(), 'controller')
    assert.equal(identity.reusableToken(principal(), 'controller'), first)
    const { kid, signsFrom } = await identity.rotate()
    // Published, not signing yet: the token is still the one to reuse.
    assert.equal(await identity.tokenFor(principal(), 'controller'), first)
    // The signing key, then the next one; the next key the test before published, outrun by this one, stays published
    // as a replaced key does.
    const published = (await identity.jwks()).keys.map((k) => k.kid)
    assert.deepEqual(published.slice(0, 2), [decodeProtectedHeader(first).kid, kid])
    assert.equal(published.length, 3)
    const next = await identity.tokenFor(principal(), 'controller', undefined, signsFrom)
    assert.equal(decodeProtectedHeader(next).kid, kid)
    assert.equal(identity.reusableToken(principal(), 'controller', signsFrom), next)
  })
})
