import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { hashPassword } from '../../src/directory/passwords.ts'
import { openStore } from '../../src/store/store.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, basic, json, runCli, spawnGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'

const USERS = '/api/gateway/v1/users/'
const ME_PASSWORD = '/api/gateway/v1/me/password/'

/** Passwords every path must refuse under the default policy, and the field error each gets. */
const REFUSED: [password: string, username: string, why: RegExp][] = [
  ['a', 'policy-a', /too short/],
  ['123456', 'policy-b', /too short/],
  ['eleven-char', 'policy-c', /at least 12 characters/],
  ['password1234', 'policy-d', /too common/],
  ['Qwerty123456', 'policy-e', /too common/],
  ['Policy-Username-1', 'policy-username-1', /same as the username/],
]

for (const backend of gatewayBackends) {
  describe(`the password policy for local accounts on ${backend.name}`, () => {
    let gw: TestGateway
    const send = (method: string, path: string, body: unknown, headers: Record<string, string> = adminAuth) =>
      gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const passwordWorks = async (username: string, password: string) =>
      (await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })).status === 200

    before(async () => {
      gw = await backend.start()
    })
    after(() => gw.close())

    it('refuses a short or common password, or the username, when a user is created, naming the field, and creates nothing', async () => {
      for (const [password, username, why] of REFUSED) {
        const response = await send('POST', USERS, { username, password })
        assert.equal(response.status, 400, password)
        const error = await json(response)
        assert.equal(error.code, 'invalid')
        assert.match(error.errors.password.join(' '), why, password)
        assert.equal(await gw.store.users.findByUsername(username), undefined, password)
      }
      const created = await send('POST', USERS, { username: 'policy-ok', password: 'a long enough pass' })
      assert.equal(created.status, 201)
      assert.ok(await passwordWorks('policy-ok', 'a long enough pass'))
    })

    it('refuses a weak password in an administrator\'s PATCH and PUT, and keeps the old one', async () => {
      const { id } = await gw.app.accounts.create({ username: 'policy-patch', password: 'policy-patch-password' })
      for (const method of ['PATCH', 'PUT']) {
        // A PUT replaces the user, so it names the username too.
        const whole = method === 'PUT' ? { username: 'policy-patch' } : {}
        for (const [password, , why] of REFUSED.filter(([, username]) => username !== 'policy-username-1')) {
          const response = await send(method, `${USERS}${id}/`, { ...whole, password, first_name: 'Changed' })
          assert.equal(response.status, 400, `${method} ${password}`)
          assert.match((await json(response)).errors.password.join(' '), why)
        }
        const sameAsName = await send(method, `${USERS}${id}/`, { ...whole, password: 'POLICY-PATCH' })
        assert.equal(sameAsName.status, 400)
      }
      assert.ok(await passwordWorks('policy-patch', 'policy-patch-password'))
      assert.equal((await gw.store.users.findById(id))!.firstName, '', 'nothing of the refused change was saved')
    })

    it('refuses a weak new password at me/password/ under new_password, and the current one keeps working', async () => {
      await gw.app.accounts.create({ username: 'policy-self', password: 'policy-self-password' })
      const auth = { authorization: basic('policy-self', 'policy-self-password') }
      for (const [password, , why] of REFUSED.filter(([, username]) => username !== 'policy-username-1')) {
        const response = await send('POST', ME_PASSWORD, { current_password: 'policy-self-password', new_password: password }, auth)
        assert.equal(response.status, 400, password)
        const error = await json(response)
        assert.equal(error.code, 'invalid')
        assert.match(error.errors.new_password.join(' '), why)
      }
      assert.ok(await passwordWorks('policy-self', 'policy-self-password'))
    })

    it('applies a changed policy at once, and keeps accepting passwords set before it', async () => {
      const stored = await gw.store.users.create({ username: 'policy-old', email: '', passwordHash: await hashPassword('old-pw') })
      assert.ok(await passwordWorks('policy-old', 'old-pw'), 'the policy is for new passwords only')

      const saved = await send('PATCH', '/api/gateway/v1/settings/', { local_password_min_length: 20, local_password_refuse_common: false })
      assert.equal(saved.status, 200)
      assert.deepEqual([(await json(saved)).local_password_min_length, gw.app.settings.current.local_password_refuse_common], [20, false])
      const tooShortNow = await send('PATCH', `${USERS}${stored.id}/`, { password: 'nineteen-characters' })
      assert.equal(tooShortNow.status, 400)
      assert.match((await json(tooShortNow)).errors.password.join(' '), /at least 20 characters/)
      assert.equal((await send('PATCH', `${USERS}${stored.id}/`, { password: 'password1234password' })).status, 200, 'common passwords allowed once switched off')

      await send('PATCH', '/api/gateway/v1/settings/', { local_password_min_length: 0 })
      assert.equal((await send('PATCH', `${USERS}${stored.id}/`, { password: 'x' })).status, 200, 'no minimum')
      await send('PATCH', '/api/gateway/v1/settings/', { local_password_min_length: 12, local_password_refuse_common: true })
    })

    it('refuses a policy setting out of range or of the wrong type, and saves nothing', async () => {
      for (const [body, field] of [
        [{ local_password_min_length: -1 }, 'local_password_min_length'],
        [{ local_password_min_length: 257 }, 'local_password_min_length'],
        [{ local_password_min_length: '12a' }, 'local_password_min_length'],
        [{ local_password_refuse_common: 'maybe' }, 'local_password_refuse_common'],
      ] as const) {
        const response = await send('PATCH', '/api/gateway/v1/settings/', body)
        assert.equal(response.status, 400, JSON.stringify(body))
        assert.ok(field in (await json(response)).errors)
      }
      assert.equal(gw.app.settings.current.local_password_min_length, 12)
      assert.equal(gw.app.settings.current.local_password_refuse_common, true)
    })
  })
}

describe('the password policy on the command line', () => {
  let dir: string
  before(async () => {
    dir = tempDir()
    // Only serve and migrate make a database.
    await (await openStore({ dataDir: dir })).close()
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('refuses a weak password for users create and set-password with a one-line reason and exit status 2', async () => {
    for (const password of ['short', 'password1234']) {
      const created = await runCli(['users', 'create', 'cli-weak', '--password-stdin', '--data-dir', dir], { input: `${password}\n` })
      assert.equal(created.code, 2, created.stderr)
      assert.match(created.stderr, /^gatehouse: .*password: This password is too (short|common)/)
      assert.equal(created.stderr.trim().split('\n').length, 1)
    }
    assert.equal((await runCli(['users', 'create', 'cli-weak', '--password-stdin', '--data-dir', dir], { input: 'cli-weak-password\n' })).code, 0)
    const weak = await runCli(['users', 'set-password', 'cli-weak', '--password-stdin', '--data-dir', dir], { input: 'change-me\n' })
    assert.equal(weak.code, 2, weak.stderr)
    assert.match(weak.stderr, /^gatehouse: .*password: This password is too short/)
    const store = await openStore({ dataDir: dir })
    try {
      assert.equal((await store.users.count()), 1, 'only the compliant account exists')
    } finally {
      await store.close()
    }
  })

  it('follows the policy saved in the run-time settings', async () => {
    const store = await openStore({ dataDir: dir })
    await store.settings.put({ local_password_min_length: 24 })
    await store.close()
    const refused = await runCli(['users', 'create', 'cli-strict', '--password-stdin', '--data-dir', dir], { input: 'twenty-three-characters\n' })
    assert.equal(refused.code, 2, refused.stderr)
    assert.match(refused.stderr, /at least 24 characters/)
    const generated = await runCli(['users', 'create', 'cli-strict', '--data-dir', dir])
    assert.equal(generated.code, 0, 'a generated password meets the policy')
  })

  it('refuses to start with a first admin password that breaks the policy', async () => {
    const empty = tempDir()
    try {
      const outcome = await spawnGateway(['--demo', '--data-dir', empty], { GATEHOUSE_ADMIN_PASSWORD: 'change-me' }).then(
        async (gateway) => {
          await gateway.stop()
          return 'started'
        },
        (error: Error) => error.message,
      )
      assert.match(outcome, /exited with 2:\ngatehouse: GATEHOUSE_ADMIN_PASSWORD does not meet the password policy\. .*too short/)
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })
})
