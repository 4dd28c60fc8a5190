import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UniqueViolation } from '../../src/store/errors.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/** The single sign-on repository's conformance cases, run on both backends. */
const ISSUER = 'https://id.example.com/realms/corp'

for (const backend of storeBackends) {
  describe(`single sign-on repository on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('links an upstream identity to one account and finds it by issuer and subject', async () => {
      const user = await db.store.users.create({ username: 'alice', source: 'sso', external: true })
      const linked = await db.store.sso.link({ issuer: ISSUER, subject: 'sub-1', userId: user.id, provider: 'corp' }, 1_700_000_000_000)
      assert.deepEqual(linked, { id: linked.id, issuer: ISSUER, subject: 'sub-1', userId: user.id, provider: 'corp', created: 1_700_000_000_000, lastLogin: 1_700_000_000_000 })
      assert.deepEqual(await db.store.sso.findIdentity(ISSUER, 'sub-1'), linked)
      assert.equal(await db.store.sso.findIdentity(ISSUER, 'SUB-1'), undefined, 'subjects are case-sensitive')
      assert.equal(await db.store.sso.findIdentity('https://other.example.com', 'sub-1'), undefined, 'a subject means nothing at another issuer')

      await db.store.sso.recordLogin(linked.id, 'corp-2', 1_700_000_001_000)
      const seen = await db.store.sso.findIdentity(ISSUER, 'sub-1')
      assert.equal(seen!.provider, 'corp-2')
      assert.equal(seen!.lastLogin, 1_700_000_001_000)
    })

    it('refuses a second link of the same identity', async () => {
      const bob = await db.store.users.create({ username: 'bob', source: 'sso', external: true })
      await assert.rejects(db.store.sso.link({ issuer: ISSUER, subject: 'sub-1', userId: bob.id, provider: 'corp' }), UniqueViolation)
      await db.store.sso.link({ issuer: 'https://other.example.com', subject: 'sub-1', userId: bob.id, provider: 'other' })
    })

    it('drops the links of a deleted account', async () => {
      const user = await db.store.users.create({ username: 'carol', source: 'sso', external: true })
      await db.store.sso.link({ issuer: ISSUER, subject: 'sub-carol', userId: user.id, provider: 'corp' })
      await db.store.users.delete(user.id)
      assert.equal(await db.store.sso.findIdentity(ISSUER, 'sub-carol'), undefined)
    })

    it('hands a sign-in under way out exactly once, even to racing callbacks', async () => {
      const login = { keyHash: 'a'.repeat(64), provider: 'corp', next: '/api/controller/v2/', created: 1000, expiresAt: 2000, promptLogin: true }
      await db.store.sso.createLogin(login)
      const [first, second] = await Promise.all([db.store.sso.takeLogin(login.keyHash), db.store.sso.takeLogin(login.keyHash)])
      assert.deepEqual([first, second].filter(Boolean), [login])
      assert.equal(await db.store.sso.takeLogin(login.keyHash), undefined)
      await assert.rejects(Promise.all([db.store.sso.createLogin({ ...login, keyHash: 'b'.repeat(64) }), db.store.sso.createLogin({ ...login, keyHash: 'b'.repeat(64) })]), UniqueViolation)
    })

    it('removes sign-ins that expired', async () => {
      await db.store.sso.createLogin({ keyHash: 'c'.repeat(64), provider: 'corp', next: '', created: 1000, expiresAt: 5000, promptLogin: false })
      await db.store.sso.createLogin({ keyHash: 'd'.repeat(64), provider: 'corp', next: '', created: 1000, expiresAt: 9000, promptLogin: false })
      assert.equal(await db.store.sso.deleteExpiredLogins(5000), 2, 'the one ending at 5000 and the leftover from the last case')
      assert.equal((await db.store.sso.takeLogin('d'.repeat(64)))!.expiresAt, 9000)
    })

    it('takes a logout token once, even when two processes race with it, tells the same token from another with its jti, and forgets it once it expired', async () => {
      const keyHash = 'e'.repeat(64)
      const tokenHash = '1'.repeat(64)
      const taken = await Promise.all([db.store.sso.takeLogoutToken(keyHash, tokenHash, 5000), db.store.sso.takeLogoutToken(keyHash, tokenHash, 5000)])
      assert.deepEqual(taken.sort(), ['new', 'resent'])
      assert.equal(await db.store.sso.takeLogoutToken(keyHash, tokenHash, 9000), 'resent')
      assert.equal(await db.store.sso.takeLogoutToken(keyHash, '2'.repeat(64), 9000), 'jti_reused')
      assert.equal(await db.store.sso.deleteExpiredLogoutTokens(4999), 0)
      assert.equal(await db.store.sso.deleteExpiredLogoutTokens(5000), 1)
      assert.equal(await db.store.sso.takeLogoutToken(keyHash, '2'.repeat(64), 9000), 'new')
    })

    it('ends the sessions a logout token names: by sid, by subject, and a sid-less sign-in by its subject', async () => {
      const user = await db.store.users.create({ username: 'dora', source: 'sso', external: true })
      const start = (key: string, upstream?: { provider: string; subject: string; sid?: string }) =>
        db.store.sessions.create({ keyHash: key.repeat(64), userId: user.id, created: 1000, expiresAt: 9_999_999_999_999, ip: '', userAgent: '', upstream })
      const withSid = await start('1', { provider: 'corp', subject: 'sub-dora', sid: 'sid-a' })
      const otherSid = await start('2', { provider: 'corp', subject: 'sub-dora', sid: 'sid-b' })
      const noSid = await start('3', { provider: 'corp', subject: 'sub-dora' })
      const otherProvider = await start('4', { provider: 'partner', subject: 'sub-dora', sid: 'sid-a' })
      const password = await start('5')
      const ended = async (match: { sid?: string; subject?: string }) => (await db.store.sessions.deleteForUpstream({ provider: 'corp', ...match })).map((s) => s.id).sort()

      assert.deepEqual((await db.store.sessions.findById(withSid.id))!.upstream, { provider: 'corp', subject: 'sub-dora', sid: 'sid-a' })
      assert.deepEqual(await ended({}), [], 'a token naming nothing ends nothing')
      assert.deepEqual(await ended({ sid: 'sid-a', subject: 'sub-other' }), [], 'a sid of another subject')
      assert.deepEqual(await ended({ sid: 'sid-a', subject: 'sub-dora' }), [withSid.id, noSid.id].sort())
      assert.deepEqual(await ended({ subject: 'sub-dora' }), [otherSid.id])
      assert.ok(await db.store.sessions.findById(otherProvider.id), 'a session of another provider stays')
      assert.ok(await db.store.sessions.findById(password.id), 'a password login\'s session stays')
    })

    it('keeps a sign-in\'s ID token with its session, for the sign-out at the provider, and gives it back as the session ends', async () => {
      const user = await db.store.users.create({ username: 'emil', source: 'sso', external: true })
      const idToken = `eyJ.${'x'.repeat(16 * 1024)}.sig`
      const upstream = { provider: 'corp', subject: 'sub-emil', sid: 'sid-e', idToken }
      const session = await db.store.sessions.create({ keyHash: 'e'.repeat(64), userId: user.id, created: 1000, expiresAt: 9_999_999_999_999, ip: '', userAgent: '', upstream })
      assert.deepEqual(session.upstream, upstream)
      assert.deepEqual((await db.store.sessions.deleteByKeyHash('e'.repeat(64)))?.upstream, upstream)
    })

    it('keeps whether the provider had the person log in during the sign-in', async () => {
      const user = await db.store.users.create({ username: 'fay', source: 'sso', external: true })
      const fresh = { provider: 'corp', subject: 'sub-fay', sid: 'sid-f', freshLogin: true }
      const session = await db.store.sessions.create({ keyHash: 'f'.repeat(64), userId: user.id, created: 1000, expiresAt: 9_999_999_999_999, ip: '', userAgent: '', upstream: fresh })
      assert.deepEqual(session.upstream, fresh)
      assert.deepEqual((await db.store.sessions.findById(session.id))?.upstream, fresh)
      const silent = await db.store.sessions.create({ keyHash: '9'.repeat(64), userId: user.id, created: 1000, expiresAt: 9_999_999_999_999, ip: '', userAgent: '', upstream: { ...fresh, freshLogin: false } })
      assert.equal(silent.upstream?.freshLogin, undefined)
    })
  })
}
