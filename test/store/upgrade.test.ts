import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { SessionManager } from '../../src/auth/session-manager.ts'
import { generateToken, hashToken } from '../../src/auth/token-format.ts'
import { hashPassword } from '../../src/directory/passwords.ts'
import { migrationNames } from '../../src/store/migrations/index.ts'
import type { Store } from '../../src/store/store.ts'
import { atMigration, unmigratedBackends } from '../helpers/backends.ts'
import { ADMIN_PASSWORD, adminAuth, basic, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, REALM, realmUrl, realmWith, submitForm, testRealms } from '../helpers/oidc.ts'
import { onSmallFileSystem } from '../helpers/small-file-system.ts'
import { withTrigger } from '../helpers/triggers.ts'

/**
 * A database an earlier version made and used, then the current version started on it. The earlier version is its
 * migrations up to one of them, and rows written as that schema held them; the rest of the migrations run as `serve`
 * and `migrate` run them.
 */

/** A password hash as the version with 14 migrations wrote it, and its password. */
const OLD_HASH = '$argon2id$v=19$m=19456,t=2,p=1$pKxpccg8NQ0BEQVJVraJCw$37Ca0d2C3iXAeAugwZfHDUR91yvvPqswGh5Ez/8Wv1U'
const OLD_PASSWORD = 'alice-pass-Xy12!long'
/** The role definitions migration 010 made, by the ids they had until 015 gave the Platform Auditor 1. */
const ORGANIZATION_MEMBER = 2
const PLATFORM_AUDITOR_BEFORE_015 = 5

/** The account alice (id 2, password OLD_PASSWORD), as the earlier versions' `users` table holds one. */
async function insertAlice(store: Store, now: number): Promise<void> {
  const yes = store.database.dialect === 'postgres' ? true : 1
  const no = store.database.dialect === 'postgres' ? false : 0
  await store.database.db.insertInto('users').values({
    id: 2, username: 'alice', email: '', first_name: '', last_name: '', password_hash: await hashPassword(OLD_PASSWORD), is_superuser: no,
    is_system_auditor: no, is_active: yes, source: 'local', external: no, created_at: now, modified_at: now, last_login: null,
  } as never).execute()
}

for (const backend of unmigratedBackends) {
  describe(`upgrading a database of an earlier version, on ${backend.name}`, () => {
    it('keeps its passwords, personal tokens, sessions, settings and role assignments working', () => atMigration(backend, '014_oidc_token_indexes', async (store, old) => {
      let gw: TestGateway | undefined
      try {
        const { db, dialect } = store.database
        const now = Date.now()
        const yes = dialect === 'postgres' ? true : 1
        const no = dialect === 'postgres' ? false : 0
        const user = (id: number, username: string, passwordHash: string, role: 'superuser' | 'auditor' | 'member') => ({
          id, username, email: '', first_name: '', last_name: '', password_hash: passwordHash, is_superuser: role === 'superuser' ? yes : no,
          is_system_auditor: role === 'auditor' ? yes : no, is_active: yes, source: 'local', external: no, created_at: now, modified_at: now, last_login: null,
        })
        await db.insertInto('users').values([
          user(1, 'admin', await hashPassword(ADMIN_PASSWORD), 'superuser'),
          user(2, 'alice', OLD_HASH, 'member'),
          user(3, 'Bob', await hashPassword(OLD_PASSWORD), 'auditor'),
        ] as never).execute()
        const token = generateToken()
        await db.insertInto('tokens').values({
          user_id: 2, token_hash: hashToken(token), scope: 'write', description: 'made before the upgrade', created_at: now, modified_at: now,
          expires_at: now + 3_600_000, last_used_at: null,
        } as never).execute()
        const sessionId = randomBytes(32).toString('base64url')
        await db.insertInto('sessions').values({
          key_hash: SessionManager.hashOf(sessionId), user_id: 2, created_at: now, expires_at: now + 3_600_000, ip: '127.0.0.1', user_agent: 'node',
        } as never).execute()
        await db.insertInto('settings').values({ key: 'session_cookie_age', value: '901', modified_at: now } as never).execute()
        await db.insertInto('organizations').values({ id: 1, name: 'Org One', description: '', created_at: now, modified_at: now } as never).execute()
        await db.insertInto('role_user_assignments').values([
          { role_definition_id: ORGANIZATION_MEMBER, user_id: 2, object_type: 'organization', object_id: 1, created_at: now },
          { role_definition_id: PLATFORM_AUDITOR_BEFORE_015, user_id: 3, object_type: 'platform', object_id: 0, created_at: now },
        ] as never).execute()

        gw = await startGateway(old.storage)
        const ready = await json(await gw.fetch('/readyz'))
        assert.deepEqual(ready.checks.find((check: { name: string }) => check.name === 'migrations').data, { applied: migrationNames.length })

        const me = async (headers: Record<string, string>) => {
          const response = await gw!.fetch('/api/gateway/v1/me/', { headers })
          return { status: response.status, username: response.status === 200 ? (await json(response)).results[0].username : undefined }
        }
        assert.deepEqual(await me({ authorization: basic('alice', OLD_PASSWORD) }), { status: 200, username: 'alice' }, 'the old hash still checks')
        assert.deepEqual(await me({ authorization: basic('alice', 'not-' + OLD_PASSWORD) }), { status: 401, username: undefined })
        assert.deepEqual(await me({ authorization: `Bearer ${token}` }), { status: 200, username: 'alice' })
        assert.deepEqual(await me({ cookie: `gateway_sessionid=${sessionId}` }), { status: 200, username: 'alice' })

        const settings = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
        assert.equal(settings.session_cookie_age, 901)
        const organizations = await json(await gw.fetch('/api/gateway/v1/users/2/organizations/', { headers: adminAuth }))
        assert.deepEqual(organizations.results.map((o: { name: string }) => o.name), ['Org One'])
        // Migration 015 gave the Platform Auditor id 1: Bob's assignment moved with it (his account flagged as the
        // earlier version flagged it), and reading every account is his.
        const assignments = await json(await gw.fetch('/api/gateway/v1/role_user_assignments/?user=3', { headers: adminAuth }))
        assert.deepEqual(assignments.results.map((a: { role_definition: number; summary_fields: { role_definition: { name: string } } }) => [a.role_definition, a.summary_fields.role_definition.name]), [[1, 'Platform Auditor']])
        const users = await gw.fetch('/api/gateway/v1/users/', { headers: { authorization: basic('Bob', OLD_PASSWORD) } })
        assert.equal(users.status, 200)
        assert.ok((await json(users)).results.some((u: { username: string }) => u.username === 'alice'), 'the auditor reads other accounts')
      } finally {
        await gw?.close()
      }
    }))

    it('a migration that fails applies none of the pending ones, says which failed, and the database serves once it is fixed', () => atMigration(backend, '032_assignment_holder_indexes', async (store, old) => {
      let gw: TestGateway | undefined
      try {
        const { db } = store.database
        await db.insertInto('audit_entries').values({
          created_at: Date.now(), operation: 'login', content_type: 'user', object_id: '1', object_name: null, actor_id: null, actor_username: null,
          source_address: null, auth_method: 'basic', code: null, realm: null, changes: null,
        } as never).execute()
        const pending = migrationNames.slice(migrationNames.indexOf('032_assignment_holder_indexes') + 1)
        // Migration 034 sorts the audit entries already there: refusing that update fails it after 033 and its own column.
        await withTrigger(store.database, { table: 'audit_entries', timing: 'BEFORE', operation: 'UPDATE', action: 'refuse' }, async () => {
          const migrate = await runCli(['migrate', ...old.cliArgs])
          assert.equal(migrate.code, 1, migrate.stderr)
          assert.match(migrate.stderr, /was not upgraded: migration 034_audit_entry_kinds failed: refused; none of the pending migrations \(([^)]*)\) was applied/)
          assert.equal(/\(([^)]*)\)/.exec(migrate.stderr)![1], pending.join(', '))
          const status = await store.database.migrationStatus()
          assert.deepEqual({ applied: status.applied, pending: status.pending }, { applied: migrationNames.length - pending.length, pending })
          const columns = (await db.introspection.getTables()).find((table) => table.name === 'audit_entries')!.columns.map((column) => column.name)
          assert.ok(!columns.includes('kind'), 'the column 034 added was rolled back with it')
        })

        gw = await startGateway(old.storage)
        const ready = await json(await gw.fetch('/readyz'))
        assert.deepEqual(ready.checks.find((check: { name: string }) => check.name === 'migrations').data, { applied: migrationNames.length })
      } finally {
        await gw?.close()
      }
    }))

    it('keeps a realm browser session signed in before its record was kept under the hash of its cookie, and keeps the cookie no more', () => atMigration(backend, '039_imported_password', async (store, old) => {
      let gw: TestGateway | undefined
      try {
        const { db } = store.database
        const now = Date.now()
        await insertAlice(store, now)
        // As the earlier version stored a realm session: under its cookie's value, which its payload repeats (`jti`).
        const cookie = randomBytes(32).toString('base64url')
        const seconds = Math.floor(now / 1000)
        const session = { iat: seconds, exp: seconds + 3600, uid: 'uid-before-upgrade', accountId: '2', loginTs: seconds, kind: 'Session', jti: cookie, gatehouseRealm: REALM }
        await db.insertInto('oidc_records').values({
          model: 'Session', id: cookie, payload: JSON.stringify(session), grant_id: null, uid: session.uid, user_code: null, account_id: '2', expires_at: now + 3_600_000, consumed_at: null,
        } as never).execute()

        gw = await startGateway({ ...old.storage, config: { realms: testRealms } })
        const stored = JSON.stringify(await db.selectFrom('oidc_records').selectAll().execute())
        assert.ok(stored.includes('uid-before-upgrade'), 'the session is still there')
        assert.ok(!stored.includes(cookie), 'its cookie is not')
        const jar = new CookieJar()
        jar.store(new Response(null, { headers: { 'set-cookie': `gatehouse_oidc_session=${cookie}` } }))
        const query = new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })
        const { url } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${query}`))
        assert.ok(url.startsWith(CLIENT_REDIRECT) && new URL(url).searchParams.has('code'), `signed in without the login form: ${url}`)
      } finally {
        await gw?.close()
      }
    }))

    it('goes on with a device login started before its user code was kept as a key only, and keeps the code no more', () => atMigration(backend, '040_oidc_secret_record_ids', async (store, old) => {
      let gw: TestGateway | undefined
      try {
        const { db } = store.database
        const now = Date.now()
        await insertAlice(store, now)
        // As the earlier version stored a device code: its user code, as oidc-provider keeps it, in its payload and its column.
        const deviceCode = randomBytes(32).toString('base64url')
        const userCode = 'WDJBMJHT'
        const seconds = Math.floor(now / 1000)
        const payload = {
          iat: seconds, exp: seconds + 600, deviceInfo: { ip: '127.0.0.1', ua: 'node' }, params: { client_id: 'tv', scope: 'openid profile email', resource: `urn:gatehouse:realm:${REALM}` },
          kind: 'DeviceCode', clientId: 'tv', userCode, gatehouseRealm: REALM,
        }
        await db.insertInto('oidc_records').values({
          model: 'DeviceCode', id: createHash('sha256').update(deviceCode).digest('base64url'), payload: JSON.stringify(payload), grant_id: null, uid: null, user_code: userCode,
          account_id: null, expires_at: now + 600_000, consumed_at: null,
        } as never).execute()
        // One that expired an hour ago, which no one can type in any more: removed, not given a key at a start's cost.
        const expiredUserCode = 'QXZRTPLK'
        await db.insertInto('oidc_records').values({
          model: 'DeviceCode', id: randomBytes(32).toString('base64url'), payload: JSON.stringify({ ...payload, userCode: expiredUserCode, exp: seconds - 3000 }),
          grant_id: null, uid: null, user_code: expiredUserCode, account_id: null, expires_at: now - 3_600_000, consumed_at: null,
        } as never).execute()

        gw = await startGateway({ ...old.storage, config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })
        const stored = JSON.stringify(await db.selectFrom('oidc_records').selectAll().execute())
        assert.ok(stored.includes('"DeviceCode"'), 'the device code is still there')
        assert.ok(!stored.includes(userCode), 'its user code is not')
        assert.ok(!stored.includes(expiredUserCode), 'nor the expired one')
        assert.equal((await db.selectFrom('oidc_records').select('id').where('model', '=', 'DeviceCode').execute()).length, 1, 'the expired device code is gone')
        // Typed as the device shows it, the code is found, and the login completes.
        const jar = new CookieJar()
        const confirm = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: 'WDJB-MJHT' })
        assert.match(await confirm.response.clone().text(), /Confirm device login/)
        const login = await submitForm(gw, jar, confirm, {})
        const done = await submitForm(gw, jar, login, { username: 'alice', password: OLD_PASSWORD })
        assert.match(await done.response.text(), /Device login complete/)
        const polled = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode }) })
        assert.equal(polled.status, 200, await polled.clone().text())
        assert.ok((await json(polled)).access_token)
      } finally {
        await gw?.close()
      }
    }))
  })
}

describe('upgrading a SQLite database on a disk that fills', () => {
  it('says the upgrade failed and that none of the pending migrations was applied, when their commit finds the disk full', async (t) => {
    const sqlite = unmigratedBackends.find((backend) => backend.name === 'SQLite')!
    await atMigration(sqlite, '024_ldap_entries', async (_store, old) => {
      await onSmallFileSystem(t, '1m', async (small) => {
        const data = join(small, 'data')
        mkdirSync(data)
        const backup = await runCli(['backup', join(data, 'gatehouse.sqlite'), ...old.cliArgs])
        assert.equal(backup.code, 0, backup.stderr)
        const pending = migrationNames.slice(migrationNames.indexOf('024_ldap_entries') + 1)
        // The file system filled but for a few pages: the migrations' writes go to the WAL, which their commit writes.
        const free = Number(execFileSync('df', ['--output=avail', '-B1', small], { encoding: 'utf8' }).split('\n')[1])
        writeFileSync(join(small, 'filler'), Buffer.alloc(Math.max(0, free - 48 * 1024)))
        const migrate = await runCli(['migrate', '--data-dir', data])
        assert.equal(migrate.code, 1, migrate.stderr)
        assert.match(migrate.stderr, /was not upgraded: (its migrations|migration \S+) failed: .*full.*; none of the pending migrations \(([^)]*)\) was applied/, migrate.stderr)
        assert.equal(/pending migrations \(([^)]*)\)/.exec(migrate.stderr)![1], pending.join(', '))
        rmSync(join(small, 'filler'))
        // As it was: every one of them still pending, and applied once there is room.
        const status = await runCli(['migrate', '--status', '--data-dir', data])
        assert.match(status.stdout, new RegExp(`^applied: ${migrationNames.length - pending.length}\npending: ${pending.join(', ')}$`, 'm'))
        const again = await runCli(['migrate', '--data-dir', data])
        assert.equal(again.code, 0, again.stderr)
      })
    })
  })
})
