import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it, mock } from 'node:test'
import { countedAddress } from '../../src/directory/lockout.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, basic, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { testRealms, TOKEN_PATH } from '../helpers/oidc.ts'
import { LOGIN } from '../helpers/session.ts'

const ME = '/api/gateway/v1/me/'
const POLICY = {
  login_failures_before_lockout: 3,
  login_lockout_seconds: 60,
  login_failures_per_address: 5,
  login_address_window_seconds: 300,
  login_lockout_spares_clean_addresses: true,
}

// Each client is a real address of its own in 127.0.0.0/8; the gateway sees it as the connection's peer.
for (const backend of gatewayBackends) {
  describe(`failed logins counted by client address on ${backend.name}`, () => {
    let gw: TestGateway
    let other: TestGateway
    // Time moves only when a test says so (Date is frozen; timers still run). Both processes then read the event
    // log at the new time, as their poll would, so what they remember counts as fresh.
    const advance = async (seconds: number) => {
      mock.timers.tick(seconds * 1000)
      await Promise.all([gw, other].map((process) => process.app.bus.sync()))
    }

    // No credential cache: every request below is a password check.
    const config = { realms: testRealms, auth: { basic_cache_seconds: 0 } }
    before(async () => {
      gw = await backend.start({ config })
      other = await startGateway({ config, dataDir: gw.dataDir, databaseUrl: gw.app.config.storage.database })
      mock.timers.enable({ apis: ['Date'], now: Date.now() })
      await gw.app.settings.update(POLICY)
      for (const name of ['pam', 'quinn', 'rosa', 'stan', 'tina', 'ursula']) await gw.app.accounts.create({ username: name, password: `${name}-password-1` })
    })
    afterEach(async () => {
      await gw.app.settings.update(POLICY)
      await advance(24 * 3600)
    })
    after(async () => {
      mock.timers.reset()
      await other?.close()
      await gw?.close()
    })

    const basicFrom = (address: string, username: string, password: string, target = gw) =>
      requestFrom(address, target.url + ME, { headers: { authorization: basic(username, password) } })
    const codeOf = (response: { json(): any }) => response.json().code as string

    it('refuses every check from an address that failed too often, for any username and the right password too, until its window ends', async () => {
      const spray = ['pam', 'quinn', 'rosa', 'nobody-1', 'nobody-2']
      for (const name of spray) assert.equal(codeOf(await basicFrom('127.0.0.2', name, 'Summer2024!')), 'invalid_credentials', name)
      const throttled = await basicFrom('127.0.0.2', 'pam', 'pam-password-1')
      assert.equal(throttled.status, 429)
      assert.equal(codeOf(throttled), 'login_throttled')
      assert.equal(throttled.headers['retry-after'], '300')
      assert.equal((await basicFrom('127.0.0.3', 'pam', 'pam-password-1')).status, 200, 'another address is not affected')
      await advance(299)
      assert.equal(codeOf(await basicFrom('127.0.0.2', 'stan', 'stan-password-1')), 'login_throttled', 'refused checks do not extend the window')
      await advance(1)
      assert.equal((await basicFrom('127.0.0.2', 'pam', 'pam-password-1')).status, 200)
    })

    it('counts names no account can have against the address, throttles them with the rest, and keeps no record of them', async () => {
      // Each still costs a hash: uncounted, one address could keep every core busy with them.
      for (const name of ['bad user', 'semi;colon', 'x'.repeat(151), 'tab\tname', 'nobody-3']) {
        assert.equal(codeOf(await basicFrom('127.0.0.4', name, 'Summer2024!')), 'invalid_credentials', name)
      }
      assert.equal(codeOf(await basicFrom('127.0.0.4', 'bad user', 'Summer2024!')), 'login_throttled', 'refused without a hash')
      assert.equal(codeOf(await basicFrom('127.0.0.4', 'pam', 'pam-password-1')), 'login_throttled')
      assert.equal(await gw.store.loginFailures.find('bad user'), undefined, 'the name itself is not counted')
      assert.equal((await basicFrom('127.0.0.5', 'pam', 'pam-password-1')).status, 200, 'another address is not affected')
    })

    it('ends an address\'s throttling with `gatehouse users unthrottle ADDRESS`, and refuses a string that is not one', async () => {
      for (const name of ['pam', 'quinn', 'rosa', 'nobody-1', 'nobody-2']) await basicFrom('127.0.0.9', name, 'Winter2024!')
      assert.equal(codeOf(await basicFrom('127.0.0.9', 'pam', 'pam-password-1')), 'login_throttled')
      const storage = gw.app.config.storage.database ? ['--database', gw.app.config.storage.database] : ['--data-dir', gw.dataDir]
      const cleared = await runCli(['users', 'unthrottle', '127.0.0.9', ...storage])
      assert.equal(cleared.code, 0, cleared.stderr)
      assert.match(cleared.stdout, /unthrottled 127\.0\.0\.9/)
      assert.equal((await basicFrom('127.0.0.9', 'pam', 'pam-password-1')).status, 200)
      const again = await runCli(['users', 'unthrottle', '127.0.0.9', ...storage])
      assert.match(again.stdout, /127\.0\.0\.9 had no failed logins/)
      const bad = await runCli(['users', 'unthrottle', 'not-an-address', ...storage])
      assert.notEqual(bad.code, 0)
      assert.match(bad.stderr, /not an IP address: not-an-address/)
    })

    it('lets no more than the allowed guesses from one address through when they arrive all at once', async () => {
      const codes = (await Promise.all(Array.from({ length: 12 }, (_, i) => basicFrom('127.0.0.12', `burst-${i}`, 'Spring2024!')))).map(codeOf)
      assert.equal(codes.filter((code) => code === 'invalid_credentials').length, 5, codes.join(' '))
      assert.equal(codes.filter((code) => code === 'login_throttled').length, 7, codes.join(' '))
    })

    it('counts the failures of one address on every process sharing the database', async () => {
      for (let i = 0; i < 5; i++) await basicFrom('127.0.0.4', `spray-${i}`, 'Winter2024!', i % 2 ? other : gw)
      for (const target of [gw, other]) assert.equal(codeOf(await basicFrom('127.0.0.4', 'rosa', 'rosa-password-1', target)), 'login_throttled')
    })

    it('throttles the session login and the OIDC password grant by address too', async () => {
      for (let i = 0; i < 5; i++) await basicFrom('127.0.0.5', `guess-${i}`, 'wrong-password')
      const token = (await requestFrom('127.0.0.5', gw.url + LOGIN, { headers: { accept: 'application/json' } })).json().csrf_token as string
      const login = await requestFrom('127.0.0.5', gw.url + LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrftoken': token, cookie: `csrftoken=${token}` },
        body: JSON.stringify({ username: 'stan', password: 'stan-password-1' }),
      })
      assert.equal(login.status, 429)
      assert.equal(codeOf(login), 'login_throttled')
      const grant = await requestFrom('127.0.0.5', gw.url + TOKEN_PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'stan', password: 'stan-password-1' }).toString(),
      })
      assert.equal(grant.status, 400)
      assert.deepEqual(grant.json(), { error: 'invalid_grant', error_description: 'Invalid user credentials' })
    })

    it('lets the owner in from a clean address while guesses from another keep the username locked', async () => {
      for (let i = 0; i < 3; i++) assert.equal(codeOf(await basicFrom('127.0.0.6', 'tina', `guess-${i}`)), 'invalid_credentials')
      assert.equal(codeOf(await basicFrom('127.0.0.6', 'tina', 'tina-password-1')), 'account_locked', 'the guesser stays locked out')
      assert.equal((await basicFrom('127.0.0.7', 'tina', 'tina-password-1')).status, 200, 'the owner, from an address that never failed')
      assert.equal(codeOf(await basicFrom('127.0.0.6', 'tina', 'tina-password-1')), 'account_locked', 'the owner\'s success did not end the lock')
      assert.equal(codeOf(await basicFrom('127.0.0.8', 'tina', 'one-more-guess')), 'invalid_credentials', 'a clean address is checked, and its failure counted')
      assert.equal(codeOf(await basicFrom('127.0.0.8', 'tina', 'tina-password-1')), 'account_locked', 'and then it is not clean any more')
      await advance(12 * 3600 + 1)
      assert.equal((await basicFrom('127.0.0.8', 'tina', 'tina-password-1')).status, 200, 'twelve quiet hours make it clean again')
    })

    it('keeps the lock for every address while login_lockout_spares_clean_addresses is off', async () => {
      await gw.app.settings.update({ login_lockout_spares_clean_addresses: false })
      for (let i = 0; i < 3; i++) await basicFrom('127.0.0.9', 'ursula', `guess-${i}`)
      assert.equal(codeOf(await basicFrom('127.0.0.10', 'ursula', 'ursula-password-1')), 'account_locked')
    })

    it('does not count addresses while login_failures_per_address is 0', async () => {
      await gw.app.settings.update({ login_failures_per_address: 0, login_failures_before_lockout: 0 })
      for (let i = 0; i < 8; i++) assert.equal(codeOf(await basicFrom('127.0.0.11', `free-${i}`, 'wrong')), 'invalid_credentials')
      assert.equal((await basicFrom('127.0.0.11', 'pam', 'pam-password-1')).status, 200)
    })

    it('does not throttle an address for what it failed while the limit was off, once the limit is set again', async () => {
      // The username lock keeps counting addresses (for its clean-address rule); the address limit must not.
      await gw.app.settings.update({ login_failures_per_address: 0 })
      for (let i = 0; i < 8; i++) assert.equal(codeOf(await basicFrom('127.0.0.12', `off-${i}`, 'wrong')), 'invalid_credentials')
      await gw.app.settings.update({ login_failures_per_address: 5 })
      await Promise.all([gw, other].map((process) => process.app.bus.sync()))
      assert.equal((await basicFrom('127.0.0.12', 'pam', 'pam-password-1')).status, 200)
      // And counts from there on, as for any address.
      for (let i = 0; i < 5; i++) await basicFrom('127.0.0.12', `on-${i}`, 'wrong')
      assert.equal((await basicFrom('127.0.0.12', 'pam', 'pam-password-1')).status, 429)
    })

    it('refuses throttling settings out of range or of the wrong type, and saves nothing', async () => {
      for (const [body, field] of [
        [{ login_failures_per_address: -1 }, 'login_failures_per_address'],
        [{ login_failures_per_address: 1.5 }, 'login_failures_per_address'],
        [{ login_address_window_seconds: 5 }, 'login_address_window_seconds'],
        [{ login_address_window_seconds: 86401 }, 'login_address_window_seconds'],
        [{ login_lockout_spares_clean_addresses: 'maybe' }, 'login_lockout_spares_clean_addresses'],
      ] as const) {
        const response = await gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
        assert.equal(response.status, 400, JSON.stringify(body))
        assert.ok(field in (await response.json() as { errors: object }).errors)
      }
      assert.equal(gw.app.settings.current.login_failures_per_address, 5)
    })
  })
}

describe('the address failures are counted under', () => {
  it('is the IPv4 address, also when written IPv4-mapped, and the /64 network of an IPv6 address', () => {
    assert.equal(countedAddress('192.0.2.7'), '192.0.2.7')
    assert.equal(countedAddress('::ffff:192.0.2.7'), '192.0.2.7')
    assert.equal(countedAddress('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
    assert.equal(countedAddress('2001:db8:1:2::1'), countedAddress('2001:db8:1:2:ffff::9'))
    assert.notEqual(countedAddress('2001:db8:1:2::1'), countedAddress('2001:db8:1:3::1'))
    assert.equal(countedAddress('not an address'), undefined)
  })
})
