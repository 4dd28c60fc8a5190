import assert from 'node:assert/strict'
import { pbkdf2Sync, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { hashRawSync } from '@node-rs/argon2'
import { hashingThreads, hashPassword } from '../../src/directory/passwords.ts'
import { basic, json, migratedDataDir, runCli, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { codeRedemption, TOKEN_PATH, testRealms } from '../helpers/oidc.ts'
import { csrfToken, LOGIN, login, setCookie } from '../helpers/session.ts'

/** Gatehouse's own parameters, as every hash it makes carries them. */
const OWN_PARAMETERS = '$argon2id$v=19$m=19456,t=2,p=1$'

/**
 * Django's PBKDF2PasswordHasher: `pbkdf2_sha256$<iterations>$<salt>$<base64 of the key>`, the salt hashed as its text.
 * The vector is Django's own (tests/auth_tests/test_hashers.py, test_pbkdf2, when its default was 20,000 iterations).
 */
const DJANGO_VECTOR = { password: 'lètmein', encoded: 'pbkdf2_sha256$20000$seasalt$oBSd886ysm3AqYun62DOdin8YcfbU1z9cksZSuLP9r0=' }
/** Django's argon2 hasher's old argon2i hash without a version, from the same test suite (test_argon2). */
const DJANGO_ARGON2_VECTOR = {
  password: 'secret',
  encoded: 'argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg',
}

function djangoPbkdf2(password: string, digest: 'sha256' | 'sha1', iterations: number): string {
  const salt = randomBytes(16).toString('hex').slice(0, 22)
  return `pbkdf2_${digest}$${iterations}$${salt}$${pbkdf2Sync(password, salt, iterations, digest === 'sha256' ? 32 : 20, digest).toString('base64')}`
}

/** A password credential as Keycloak's realm export writes it: the secret and its parameters as JSON text. */
function keycloakCredential(secret: { value: Buffer; salt: Buffer }, data: Record<string, unknown>) {
  return {
    type: 'password', createdDate: 1700000000000,
    secretData: JSON.stringify({ value: secret.value.toString('base64'), salt: secret.salt.toString('base64'), additionalParameters: {} }),
    credentialData: JSON.stringify({ additionalParameters: {}, ...data }),
  }
}

/** Keycloak's Pbkdf2PasswordHashProvider: the key as long as the provider derives (256 bits for SHA-256, 512 otherwise). */
function keycloakPbkdf2(password: string, algorithm: string, iterations: number) {
  const digest = { 'pbkdf2': 'sha1', 'pbkdf2-sha256': 'sha256', 'pbkdf2-sha512': 'sha512' }[algorithm]!
  const salt = randomBytes(16)
  const value = pbkdf2Sync(password, salt, iterations, digest === 'sha256' ? 32 : 64, digest)
  return keycloakCredential({ value, salt }, { hashIterations: iterations, algorithm })
}

/** A credential as exports of Keycloak before 11 wrote it: the hash's fields in the credential itself. */
function keycloakLegacy(password: string) {
  const salt = randomBytes(16)
  return {
    type: 'password', hashedSaltedValue: pbkdf2Sync(password, salt, 27500, 64, 'sha256').toString('base64'), salt: salt.toString('base64'),
    hashIterations: 27500, counter: 0, algorithm: 'pbkdf2-sha256', digits: 0, period: 0, createdDate: 1500000000000, config: {},
  }
}

/** Keycloak's Argon2PasswordHashProvider, by default argon2id 1.3, 7 MiB, 5 passes, 1 lane, a 32-byte hash. */
function keycloakArgon2(password: string, { memory, passes } = { memory: 7168, passes: 5 }) {
  const salt = randomBytes(16)
  const value = hashRawSync(password, { algorithm: 2, memoryCost: memory, timeCost: passes, parallelism: 1, outputLen: 32, salt })
  return keycloakCredential({ value, salt }, {
    hashIterations: passes, algorithm: 'argon2',
    additionalParameters: { hashLength: ['32'], memory: [String(memory)], type: ['id'], version: ['1.3'], parallelism: ['1'] },
  })
}

/** A Keycloak argon2 credential with Gatehouse's own parameters (OWN_PARAMETERS): a sign-in keeps it as it is. */
const keycloakArgon2AsOwn = (password: string) => keycloakArgon2(password, { memory: 19456, passes: 2 })

type Door = (gw: TestGateway, username: string, password: string) => Promise<boolean>

/** Every way in that takes a password: whether it let the user in. */
const DOORS: Record<string, Door> = {
  basic: async (gw, username, password) => {
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })
    return response.status === 200
  },
  'login page': async (gw, username, password) => {
    const token = await csrfToken(gw)
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
      body: new URLSearchParams({ username, password }).toString(),
    })
    await response.arrayBuffer()
    return response.status === 302 && setCookie(response, 'gateway_sessionid') !== undefined
  },
  'login API': async (gw, username, password) => {
    const token = await csrfToken(gw)
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrftoken': token, cookie: `csrftoken=${token}` },
      body: JSON.stringify({ username, password }),
    })
    const body = await json(response)
    return response.status === 200 && body.username === username
  },
  'realm login page': async (gw, username, password) => {
    const redemption = await codeRedemption(gw, username, password)
    if (redemption.get('code') === 'null') return false
    const response = await gw.fetch(TOKEN_PATH, { method: 'POST', body: redemption })
    return response.status === 200 && typeof (await json(response)).access_token === 'string'
  },
  'password grant': async (gw, username, password) => {
    const response = await gw.fetch(TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password }) })
    const body = await json(response)
    return response.status === 200 && typeof body.access_token === 'string'
  },
}

/** Each scheme: the password, and the file entry of a user `name` with it. */
const SCHEMES: Record<string, { password: string; platform?: (name: string) => Record<string, unknown>; keycloak?: (name: string) => Record<string, unknown> }> = {
  'django-vector': { password: DJANGO_VECTOR.password, platform: (username) => ({ username, password: DJANGO_VECTOR.encoded }) },
  'django-sha1': { password: 'django-sha1-password', platform: (username) => ({ username, password: djangoPbkdf2('django-sha1-password', 'sha1', 30000) }) },
  'django-million': { password: 'django-default-cost', platform: (username) => ({ username, password: djangoPbkdf2('django-default-cost', 'sha256', 1_000_000) }) },
  'django-argon2': { password: DJANGO_ARGON2_VECTOR.password, platform: (username) => ({ username, password: DJANGO_ARGON2_VECTOR.encoded }) },
  'kc-sha256': { password: 'kc-sha256-pässword', keycloak: (username) => ({ username, enabled: true, credentials: [keycloakPbkdf2('kc-sha256-pässword', 'pbkdf2-sha256', 27500)] }) },
  'kc-sha512': { password: 'kc-sha512-password', keycloak: (username) => ({ username, enabled: true, credentials: [keycloakPbkdf2('kc-sha512-password', 'pbkdf2-sha512', 210000)] }) },
  'kc-sha1': { password: 'short', keycloak: (username) => ({ username, enabled: true, credentials: [keycloakPbkdf2('short', 'pbkdf2', 27500)] }) },
  'kc-legacy': { password: 'kc-legacy-password', keycloak: (username) => ({ username, enabled: true, credentials: [keycloakLegacy('kc-legacy-password')] }) },
  'kc-argon2': { password: 'kc-argon2-password', keycloak: (username) => ({ username, enabled: true, credentials: [keycloakArgon2('kc-argon2-password')] }) },
}

/** The user of each scheme that signs in nowhere. */
const UNTOUCHED = 'untouched'

/** One user per scheme and door, so that each door meets the hash as imported. */
function userName(scheme: string, door: string): string {
  return `${scheme}-${door.replaceAll(' ', '-')}`
}

describe('passwords imported from the platform and Keycloak', () => {
  let gw: TestGateway
  let dataDir: string
  let dir: string

  before(async () => {
    dir = tempDir()
    dataDir = await migratedDataDir(dir)
    const platform: Record<string, unknown>[] = []
    const keycloak: Record<string, unknown>[] = []
    for (const [scheme, { platform: asPlatform, keycloak: asKeycloak }] of Object.entries(SCHEMES)) {
      for (const door of [...Object.keys(DOORS), UNTOUCHED]) {
        if (asPlatform) platform.push({ email: `${userName(scheme, door)}@example.com`, first_name: 'Im', last_name: 'Ported', is_superuser: false, ...asPlatform(userName(scheme, door)) })
        if (asKeycloak) keycloak.push({ email: `${userName(scheme, door)}@example.com`, firstName: 'Im', lastName: 'Ported', ...asKeycloak(userName(scheme, door)) })
      }
    }
    writeFileSync(join(dir, 'platform.json'), JSON.stringify(platform))
    writeFileSync(join(dir, 'realm.json'), JSON.stringify({ realm: 'old', users: keycloak }))
    for (const file of ['platform.json', 'realm.json']) {
      const imported = await runCli(['users', 'import', join(dir, file), '--data-dir', dataDir])
      assert.equal(imported.code, 0, imported.stderr)
    }
    gw = await startGateway({ dataDir, config: { realms: testRealms } })
    // Every test tries wrong passwords from the same address: more than its default budget, which is not under test.
    await gw.app.settings.update({ login_failures_per_address: 0 })
  })
  after(() => gw?.close())

  for (const scheme of Object.keys(SCHEMES)) {
    for (const [door, enter] of Object.entries(DOORS)) {
      it(`signs a user with an imported ${scheme} hash in by ${door}, then with the argon2id hash it was replaced by`, async () => {
        const username = userName(scheme, door)
        const { password } = SCHEMES[scheme]!
        const imported = (await gw.store.users.findByUsername(username))!
        assert.ok(!imported.passwordHash!.startsWith('$argon2id$v=19$m=19456'), 'stored as imported')
        assert.equal(await enter(gw, username, `${password}-wrong`), false)
        assert.equal((await gw.store.users.findById(imported.id))!.passwordHash, imported.passwordHash, 'a wrong password replaces nothing')
        assert.equal(await enter(gw, username, password), true)
        const rehashed = (await gw.store.users.findById(imported.id))!
        assert.ok(rehashed.passwordHash!.startsWith(OWN_PARAMETERS), 'replaced by Gatehouse\'s own hash')
        assert.equal(rehashed.notBefore, imported.notBefore, 'nothing ends')
        assert.equal(await enter(gw, username, password), true)
        assert.equal(await enter(gw, username, `${password}-wrong`), false)
      })
    }
  }

  it('spends one hash on a wrong password whatever the account\'s scheme, as for an account of its own or none', async () => {
    await gw.store.users.create({ username: 'own-hash-user', passwordHash: await hashPassword('own-hash-user-password') })
    const names = ['own-hash-user', 'no-such-user', ...Object.keys(SCHEMES).map((scheme) => userName(scheme, UNTOUCHED))]
    const spent: [string, number][] = []
    for (const username of names) {
      const before = hashingThreads.hashed
      assert.equal(await DOORS.basic!(gw, username, 'not-the-password-at-all'), false)
      spent.push([username, hashingThreads.hashed - before])
    }
    assert.deepEqual(spent, names.map((username) => [username, 1]))
    for (const scheme of Object.keys(SCHEMES)) {
      assert.ok(!(await gw.store.users.findByUsername(userName(scheme, UNTOUCHED)))!.passwordHash!.startsWith(OWN_PARAMETERS), 'still as imported')
    }
  })

  it('imports the fields each file names', async () => {
    const fromPlatform = (await gw.store.users.findByUsername(userName('django-vector', 'basic')))!
    const fromKeycloak = (await gw.store.users.findByUsername(userName('kc-argon2', 'basic')))!
    for (const user of [fromPlatform, fromKeycloak]) {
      assert.deepEqual([user.email, user.firstName, user.lastName, user.source, user.isActive, user.isSuperuser],
        [`${user.username}@example.com`, 'Im', 'Ported', 'local', true, false])
    }
  })
})

describe('gatehouse users import', () => {
  let dir: string
  let dataDir: string
  before(async () => {
    dir = tempDir()
    dataDir = await migratedDataDir(dir)
  })

  const importFile = async (name: string, content: unknown, ...options: string[]) => {
    writeFileSync(join(dir, name), JSON.stringify(content))
    return runCli(['users', 'import', join(dir, name), '--data-dir', dataDir, ...options])
  }
  const list = async () => JSON.parse((await runCli(['users', 'list', '--json', '--data-dir', dataDir])).stdout) as { username: string; is_superuser: boolean; email: string }[]

  it('imports nothing from a file with one hash it cannot verify, and names the user and scheme without the hash', async () => {
    const costly = djangoPbkdf2('whatever-password', 'sha256', 1).replace('$1$', '$100000000$')
    const result = await importFile('mixed.json', [
      { username: 'fine', password: DJANGO_VECTOR.encoded },
      { username: 'costly', password: costly },
      { username: 'bcrypted', password: 'bcrypt_sha256$$2b$12$e5C3zfswn.CowOBbbb7ngeYbxKzJePCDHwo8AMr/SZeZCoGrk7oue' },
    ])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /users\[1\] \(costly\).*100000000 iterations/)
    assert.match(result.stderr, /users\[2\] \(bcrypted\).*bcrypt_sha256/)
    for (const secret of [costly.split('$')[3]!, 'e5C3zfswn', 'oBSd886ysm3']) assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'no hash is printed')
    assert.deepEqual(await list(), [])
  })

  it('skips the users that exist on a second import, updates them with --update, and records each in the audit trail', async () => {
    const users = [{ username: 'carol', email: 'carol@example.com', is_superuser: true, password: DJANGO_VECTOR.encoded }, { username: 'dave', password: '!unusable' }]
    const first = await importFile('platform.json', users)
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /2 created, 0 updated, 0 skipped/)
    assert.match(first.stdout, /without a password .*: dave/)
    assert.ok(!first.stdout.includes('oBSd886ysm3'))
    const again = await importFile('platform.json', users)
    assert.match(again.stdout, /0 created, 0 updated, 2 skipped/)
    const updated = await importFile('platform.json', [{ ...users[0], email: 'carol@new.example.com' }], '--update')
    assert.equal(updated.code, 0, updated.stderr)
    assert.match(updated.stdout, /0 created, 1 updated, 0 skipped/)
    const carol = (await list()).find((user) => user.username === 'carol')!
    assert.deepEqual([carol.email, carol.is_superuser], ['carol@new.example.com', true])
    const gw = await startGateway({ dataDir })
    try {
      // The changes: carol's reading it is a login of hers, recorded too.
      const entries = await json(await gw.fetch('/api/gateway/v1/activitystream/?order_by=id&operation__in=create,update,delete', { headers: { authorization: basic('carol', DJANGO_VECTOR.password) } }))
      const carolEntries = entries.results.filter((entry: { changes?: Record<string, unknown>; summary_fields?: unknown }) => JSON.stringify(entry).includes('carol'))
      assert.deepEqual(carolEntries.map((entry: { operation: string }) => entry.operation), ['create', 'update'])
      assert.ok(!JSON.stringify(entries).includes('oBSd886ysm3'), 'no hash in the audit trail')
    } finally {
      await gw.close()
    }
  })

  it('gives --update the source\'s new password only where the account still has the imported one, and names those it leaves alone', async () => {
    // frank's hash is kept at sign-in (Gatehouse's own parameters); grace's is replaced by Gatehouse's own there.
    const realm = (frankPassword: string, gracePassword: string) => ({ realm: 'old', users: [
      { username: 'frank', credentials: [keycloakArgon2AsOwn(frankPassword)] },
      { username: 'grace', credentials: [keycloakPbkdf2(gracePassword, 'pbkdf2-sha256', 27500)] },
      { username: 'heidi', credentials: [keycloakPbkdf2('heidis-only-password', 'pbkdf2-sha256', 27500)] },
    ] })
    assert.equal((await importFile('moving.json', realm('franks-first-password', 'graces-first-password'))).code, 0)
    const gw = await startGateway({ dataDir })
    try {
      const hashOf = async (username: string) => (await gw.store.users.findByUsername(username))!.passwordHash
      const [frankHash, graceHash, heidiHash] = [await hashOf('frank'), await hashOf('grace'), await hashOf('heidi')]
      const frankSession = await login(gw, 'frank', 'franks-first-password')
      const graceSession = await login(gw, 'grace', 'graces-first-password')
      assert.equal(await hashOf('frank'), frankHash, 'frank\'s imported hash is still his')
      assert.notEqual(await hashOf('grace'), graceHash, 'grace\'s was replaced by Gatehouse\'s own')
      const updated = await importFile('moving.json', realm('franks-second-password', 'graces-second-password'), '--update')
      assert.equal(updated.code, 0, updated.stderr)
      assert.match(updated.stdout, /0 created, 3 updated, 0 skipped/)
      assert.match(updated.stdout, /password left alone \(changed in Gatehouse, or replaced at a sign-in, since it was imported.*\): grace$/m)
      assert.notEqual(await hashOf('frank'), frankHash)
      assert.notEqual(await hashOf('heidi'), heidiHash, 'an account no one signed in to takes the source\'s new hash')
      const me = (session: { cookie: string }) => gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } }).then((response) => response.status)
      assert.equal(await me(frankSession), 401)
      assert.equal(await me(graceSession), 200)
      assert.equal(await DOORS.basic!(gw, 'frank', 'franks-first-password'), false)
      assert.equal(await DOORS.basic!(gw, 'frank', 'franks-second-password'), true)
      assert.equal(await DOORS.basic!(gw, 'grace', 'graces-first-password'), true)
      assert.equal(await DOORS.basic!(gw, 'grace', 'graces-second-password'), false)
      const frankAgain = await login(gw, 'frank', 'franks-second-password')
      const again = await importFile('moving.json', realm('franks-third-password', 'graces-third-password'), '--update')
      assert.match(again.stdout, /password left alone .*: grace$/m)
      assert.equal(await me(frankAgain), 401, 'a password the source changed again replaces the one it gave before')
      assert.equal(await DOORS.basic!(gw, 'frank', 'franks-third-password'), true)
    } finally {
      await gw.close()
    }
  })

  it('imports a Keycloak user\'s temporary password as none, keeps a disabled user disabled, and counts what it cannot map', async () => {
    const credential = (password: string) => keycloakPbkdf2(password, 'pbkdf2-sha256', 27500)
    const realm = { realm: 'old', users: [
      { username: 'tina', enabled: true, credentials: [{ ...credential('tinas-temporary'), temporary: true }] },
      { username: 'uma', enabled: true, requiredActions: ['update_password'], credentials: [credential('umas-temporary')] },
      {
        username: 'vic', enabled: false, credentials: [credential('vics-password'), { type: 'otp', secretData: '{}', credentialData: '{}' }],
        realmRoles: ['default-roles-old', 'offline_access', 'admin'], groups: ['/ops'], attributes: { department: ['x'] }, requiredActions: ['VERIFY_EMAIL'],
      },
      { username: 'wes', enabled: true, emailVerified: true, realmRoles: ['default-roles-old', 'uma_authorization'], clientRoles: { account: ['view-profile', 'manage-account'] }, credentials: [credential('wess-password')] },
      { username: 'xena', enabled: true, credentials: [credential('xenas-password')] },
    ] }
    const result = await importFile('realm-actions.json', realm)
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /without the temporary password .*: tina, uma$/m)
    assert.match(result.stdout, /^not imported, as Gatehouse has no place for them: realm roles of 1 user, groups of 1 user, attributes of 1 user, required actions of 1 user, other credentials of 1 user$/m)
    assert.match(result.stdout, /signing in with their password alone .*: vic$/m)
    const gw = await startGateway({ dataDir })
    try {
      assert.equal(await DOORS.basic!(gw, 'tina', 'tinas-temporary'), false)
      assert.equal(await DOORS.basic!(gw, 'uma', 'umas-temporary'), false)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('vic', 'vics-password') } })).status, 401)
      assert.equal((await gw.store.users.findByUsername('vic'))!.isActive, false)
      assert.equal(await DOORS.basic!(gw, 'wes', 'wess-password'), true)
      assert.equal(await DOORS.basic!(gw, 'xena', 'xenas-password'), true)
      // The users chose their passwords since: tina's is a lasting one now; xena's became temporary, a reset by an administrator.
      const later = { realm: 'old', users: [
        { username: 'tina', enabled: true, credentials: [credential('tinas-own')] },
        { username: 'xena', enabled: true, requiredActions: ['UPDATE_PASSWORD'], credentials: [credential('xenas-reset')] },
      ] }
      const xenaSession = await login(gw, 'xena', 'xenas-password')
      const updated = await importFile('realm-later.json', later, '--update')
      assert.equal(updated.code, 0, updated.stderr)
      assert.match(updated.stdout, /password left alone .*: xena$/m, 'xena signed in: her hash is Gatehouse\'s own now')
      assert.equal(await DOORS.basic!(gw, 'tina', 'tinas-own'), true)
      assert.equal(await DOORS.basic!(gw, 'xena', 'xenas-password'), true)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: xenaSession.cookie } })).status, 200)
    } finally {
      await gw.close()
    }
  })

  it('removes with --update a still imported password the source has made temporary, ending the account\'s sessions', async () => {
    const user = (password: string, extra = {}) => ({ username: 'yuri', credentials: [keycloakArgon2AsOwn(password)], ...extra })
    assert.equal((await importFile('yuri.json', { realm: 'old', users: [user('yuris-password')] })).code, 0)
    const gw = await startGateway({ dataDir })
    try {
      const session = await login(gw, 'yuri', 'yuris-password')
      const updated = await importFile('yuri.json', { realm: 'old', users: [user('yuris-reset', { requiredActions: ['UPDATE_PASSWORD'] })] }, '--update')
      assert.equal(updated.code, 0, updated.stderr)
      assert.match(updated.stdout, /without the temporary password .*: yuri$/m)
      assert.equal((await gw.store.users.findByUsername('yuri'))!.passwordHash, null)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 401)
      assert.equal(await DOORS.basic!(gw, 'yuri', 'yuris-password'), false)
      assert.equal(await DOORS.basic!(gw, 'yuri', 'yuris-reset'), false)
    } finally {
      await gw.close()
    }
  })

  it('makes a user the platform shows as an auditor a Platform Auditor, and --update without the flag takes it away', async () => {
    const entry = (username: string, flags: Record<string, boolean>) => ({ username, password: DJANGO_VECTOR.encoded, ...flags })
    const users = [entry('ivy', { is_superuser: true }), entry('audrey', { is_platform_auditor: true }), entry('otis', { is_system_auditor: true }), entry('pat', { is_platform_auditor: false })]
    const imported = await importFile('auditors.json', users)
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, /4 created/)
    assert.doesNotMatch(imported.stdout, /not imported/)
    const disagreeing = await importFile('disagreeing.json', [entry('quinn', { is_platform_auditor: true, is_system_auditor: false })])
    assert.equal(disagreeing.code, 2)
    assert.match(disagreeing.stderr, /users\[0\] \(quinn\) has an "is_platform_auditor" and an "is_system_auditor" that disagree/)
    // One problem refuses the whole file: the auditor before it is not made either.
    const refused = await importFile('refused.json', [entry('rita', { is_platform_auditor: true }), entry('AUDREY', {})])
    assert.equal(refused.code, 2, refused.stdout)
    const gw = await startGateway({ dataDir })
    try {
      const as = (username: string) => ({ authorization: basic(username, DJANGO_VECTOR.password) })
      const get = async (username: string, path: string) => {
        const response = await gw.fetch(`/api/gateway/v1/${path}`, { headers: as(username) })
        return { status: response.status, body: await json(response) }
      }
      const auditorRole = (await get('ivy', 'role_definitions/?name=Platform%20Auditor')).body.results[0].id
      const auditorAssignments = async (username: string) => {
        const id = (await get('ivy', `users/?username=${username}`)).body.results[0].id
        return (await get('ivy', `role_user_assignments/?user=${id}&role_definition=${auditorRole}`)).body.count
      }
      const everyone = (await get('ivy', 'users/')).body.count
      // A user of no organization sees themselves and the superusers (the platform's visible_users); an auditor, everyone.
      const seenByAnyone = (await get('ivy', 'users/?is_superuser=true')).body.count + 1
      assert.ok(seenByAnyone < everyone)
      assert.equal((await get('ivy', 'users/?username=rita')).body.count, 0)
      for (const auditor of ['audrey', 'otis']) {
        assert.equal((await get(auditor, 'me/')).body.results[0].is_platform_auditor, true)
        assert.equal(await auditorAssignments(auditor), 1, `${auditor} holds the Platform Auditor role`)
        assert.deepEqual([(await get(auditor, 'users/')).body.count, (await get(auditor, 'activitystream/')).status], [everyone, 200])
        const write = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...as(auditor), 'content-type': 'application/json' }, body: JSON.stringify({ username: `by-${auditor}` }) })
        assert.equal(write.status, 403)
      }
      assert.equal(await auditorAssignments('pat'), 0)
      assert.deepEqual([(await get('pat', 'users/')).body.count, (await get('pat', 'activitystream/')).status], [seenByAnyone, 403])
      const updated = await importFile('auditors-later.json', [entry('audrey', { is_platform_auditor: false }), entry('otis', {})], '--update')
      assert.equal(updated.code, 0, updated.stderr)
      assert.match(updated.stdout, /2 updated/)
      for (const former of ['audrey', 'otis']) {
        assert.equal(await auditorAssignments(former), 0, `${former} no longer holds the Platform Auditor role`)
        assert.deepEqual([(await get(former, 'users/')).body.count, (await get(former, 'activitystream/')).status], [seenByAnyone, 403])
      }
    } finally {
      await gw.close()
    }
  })

  it('leaves a Keycloak client\'s service account out and refuses a file that is neither format', async () => {
    const realm = await importFile('users-0.json', { realm: 'old', users: [{ username: 'service-account-app', serviceAccountClientId: 'app' }, { username: 'erin', enabled: false }] })
    assert.equal(realm.code, 0, realm.stderr)
    assert.match(realm.stdout, /left out .*service-account-app/)
    const erin = (await list()).find((user) => user.username === 'erin')
    assert.ok(erin)
    const neither = await importFile('neither.json', { something: 'else' })
    assert.equal(neither.code, 2)
    assert.match(neither.stderr, /neither a Keycloak realm export/)
  })
})
