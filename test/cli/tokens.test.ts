import assert from 'node:assert/strict'
import { closeSync, openSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startGatewayOn } from '../helpers/postgres.ts'
import { bearer } from '../helpers/tokens.ts'

describe('gatehouse tokens', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const cli = (...args: string[]) => runCli(['tokens', ...args, '--data-dir', gw.dataDir])

  it('revokes a token again when its value cannot be written, to a pipe closed early or a full disk', async () => {
    const before = (await gw.app.store.tokens.list({ offset: 0, limit: 100 })).tokens.length
    const full = openSync('/dev/full', 'w')
    try {
      for (const stdout of ['closed', full] as const) {
        const lost = await runCli(['tokens', 'create', '--user', 'alice', '--data-dir', gw.dataDir], { stdout })
        assert.equal(lost.code, 1, lost.stderr)
        assert.match(lost.stderr, /^gatehouse: the token's value could not be written \(.*(EPIPE|ENOSPC).*\); token \d+ was revoked again: /)
        assert.equal(lost.stderr.trim().split('\n').length, 1, lost.stderr)
      }
    } finally {
      closeSync(full)
    }
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 100 })).tokens.length, before, 'no token left that no one has')
  })

  it('creates a token and prints only its value on standard output', async () => {
    const created = await cli('create', '--user', 'alice', '--scope', 'read', '--expires-in', '3600', '--description', 'reporting')
    assert.equal(created.code, 0, created.stderr)
    const token = created.stdout.trim()
    assert.match(token, /^gatehouse_pat_[0-9A-Za-z]{49}$/)
    assert.match(created.stderr, /created token \d+ for alice \(scope read/)

    const response = await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) })
    assert.equal(response.status, 200)
    assert.equal((await json(response)).identity.username, 'alice')
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: bearer(token) })).status, 403)
    const stored = (await gw.app.store.tokens.list({ offset: 0, limit: 10 })).tokens.at(-1)!
    assert.equal(stored.description, 'reporting')
    assert.ok(Math.abs(stored.expires - Date.now() - 3600_000) < 10_000)
  })

  it('lists tokens without their values, for everyone or one user', async () => {
    const token = (await cli('create', '--user', 'admin')).stdout.trim()
    const all = await cli('list')
    assert.equal(all.code, 0, all.stderr)
    assert.match(all.stdout, /^ID\s+USER\s+SCOPE\s+EXPIRES\s+LAST USED\s+DESCRIPTION/)
    assert.match(all.stdout, /\balice\s+read\b.*reporting/)
    assert.match(all.stdout, /\badmin\s+write\b/)
    assert.ok(!all.stdout.includes(token.slice(14)))
    const alices = await cli('list', '--user', 'alice')
    assert.ok(!/\badmin\b/.test(alices.stdout.split('\n').slice(1).join('\n')))
  })

  it('revokes one token, a user\'s tokens, or all, and the running gateway refuses them at once', async () => {
    const one = (await cli('create', '--user', 'alice')).stdout.trim()
    const id = (await json(await gw.fetch('/api/gateway/v1/tokens/?page_size=200', { headers: bearer(one) }))).results.at(-1).id
    assert.equal((await cli('revoke', '--id', String(id))).code, 0)
    assert.equal((await json(await gw.fetch('/api/gateway/v1/me/', { headers: bearer(one) }))).code, 'invalid_token')

    const alices = (await cli('create', '--user', 'alice')).stdout.trim()
    const admins = (await cli('create', '--user', 'admin')).stdout.trim()
    const byUser = await cli('revoke', '--user', 'alice')
    assert.equal(byUser.code, 0, byUser.stderr)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(alices) })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(admins) })).status, 200)

    assert.equal((await cli('revoke', '--all')).code, 0)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(admins) })).status, 401)
  })

  it('records a token revoked by id as the API records one: its name, owner, scope and expiry', async () => {
    const revokedEntry = async (id: number) => {
      const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?operation=delete&content_type=token&object_id=${id}`, { headers: adminAuth }))
      assert.equal(stream.count, 1)
      const [entry] = stream.results
      return { name: entry.summary_fields.content_object.name, changes: entry.changes }
    }
    const created = async () => {
      const { stderr } = await cli('create', '--user', 'alice', '--scope', 'read', '--description', 'nightly report')
      return Number(/created token (\d+)/.exec(stderr)![1])
    }
    const throughApi = await created()
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${throughApi}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    const throughCli = await created()
    assert.equal((await cli('revoke', '--id', String(throughCli))).code, 0)
    await gw.app.audit.flush()
    const api = await revokedEntry(throughApi)
    const fromCli = await revokedEntry(throughCli)
    assert.equal(fromCli.name, 'nightly report')
    assert.deepEqual(Object.keys(fromCli.changes.removed_fields).sort(), ['description', 'expires', 'scope', 'user'])
    assert.deepEqual({ ...fromCli.changes.removed_fields, expires: undefined }, { ...api.changes.removed_fields, expires: undefined })
  })

  it('reports mistakes in one line and changes nothing', async () => {
    const before = (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
    for (const args of [
      ['create', '--user', 'nobody'],
      ['create', '--user', 'alice', '--scope', 'admin'],
      ['create', '--user', 'alice', '--expires-in', '0'],
      ['create', '--user', 'alice', '--expires-in', String(10 * 365 * 24 * 3600)],
      ['create', '--user', 'alice', '--description', 'x'.repeat(1001)],
      ['create'],
      ['revoke'],
      ['revoke', '--all', '--user', 'alice'],
      ['revoke', '--id', '999999'],
    ]) {
      const result = await cli(...args)
      assert.notEqual(result.code, 0, args.join(' '))
      assert.equal(result.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${result.stderr}`)
      assert.equal(result.stdout, '')
    }
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before)
  })

  it('refuses a token for a disabled account as a usage mistake, saying how to enable it, and makes none', async () => {
    const carl = await gw.app.accounts.create({ username: 'carl', password: 'carl-password-1' })
    assert.equal((await runCli(['users', 'disable', 'carl', '--data-dir', gw.dataDir])).code, 0)
    const before = (await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count
    const refused = await cli('create', '--user', 'carl')
    assert.equal(refused.code, 2, refused.stderr)
    assert.equal(refused.stderr, 'gatehouse: carl is disabled, and a disabled account\'s tokens work for nothing; enable it first (gatehouse users enable carl)\n')
    assert.equal(refused.stdout, '')
    assert.equal((await gw.app.store.tokens.list({ offset: 0, limit: 1 })).count, before)

    // As it says: the command enables the account, a second run says so and changes nothing, and the token is made.
    const enabled = await runCli(['users', 'enable', 'carl', '--data-dir', gw.dataDir])
    assert.deepEqual([enabled.code, enabled.stdout], [0, 'enabled carl\n'], enabled.stderr)
    assert.equal((await gw.app.store.users.findById(carl.id))?.isActive, true)
    assert.equal((await runCli(['users', 'enable', 'carl', '--data-dir', gw.dataDir])).stdout, 'carl is enabled already\n')
    const made = await cli('create', '--user', 'carl')
    assert.equal(made.code, 0, made.stderr)
    assert.match(made.stdout, /^gatehouse_pat_/)

    // users enable refuses a disabled LDAP account: the refusal names the API call that enables one.
    const directory = await gw.app.accounts.create({ username: 'dir-carl', source: 'ldap', external: true, isActive: false })
    const ldap = await cli('create', '--user', 'dir-carl')
    assert.equal(ldap.code, 2, ldap.stderr)
    assert.equal(ldap.stderr, `gatehouse: dir-carl is disabled, and a disabled account's tokens work for nothing; enable it first (an LDAP account: PATCH /api/gateway/v1/users/${directory.id}/ with {"is_active": true}, which first asks the directory whether it still lists the person)\n`)
    assert.equal((await runCli(['users', 'enable', 'dir-carl', '--data-dir', gw.dataDir])).code, 2, 'as users enable says too')
  })
})

describe('gatehouse tokens revoke --id', () => {
  for (const backend of ['sqlite', 'postgres'] as const) {
    // PostgreSQL refused such an id as out of range ("value ... is out of range for type integer", exit 1) rather than find none.
    it(`says no such token for an id past the database's 32-bit integers, as for one none has, on ${backend}`, async () => {
      const gw = await startGatewayOn(backend)
      try {
        const database = gw.app.config.storage.database
        const storage = database === undefined ? ['--data-dir', gw.dataDir] : ['--database', database]
        for (const id of ['2147483647', '2147483648', '999999999999']) {
          const revoked = await runCli(['tokens', 'revoke', '--id', id, ...storage])
          assert.deepEqual([revoked.code, revoked.stderr, revoked.stdout], [2, `gatehouse: no such token: ${id}\n`, ''])
        }
      } finally {
        await gw.close()
      }
    })
  }
})
