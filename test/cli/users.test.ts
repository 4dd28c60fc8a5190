import assert from 'node:assert/strict'
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { adminAuth, basic, json, migratedDataDir, runCli, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** `users list --json` as the API shows the accounts: who is an active superuser. */
async function activeSuperusers(storage: string[]): Promise<string[]> {
  const listed = await runCli(['users', 'list', '--json', ...storage])
  assert.equal(listed.code, 0, listed.stderr)
  return (JSON.parse(listed.stdout) as { username: string; is_superuser: boolean; is_active: boolean }[])
    .filter((user) => user.is_superuser && user.is_active).map((user) => user.username)
}

async function assertKeepsTheLastSuperuser(storage: string[]): Promise<void> {
  assert.equal((await runCli(['migrate', ...storage])).code, 0)
  assert.equal((await runCli(['users', 'create', 'root', '--superuser', ...storage])).code, 0)
  assert.equal((await runCli(['users', 'create', 'plain', ...storage])).code, 0)

  const refused = await runCli(['users', 'disable', 'root', ...storage])
  assert.equal(refused.code, 1, refused.stderr)
  assert.match(refused.stderr, /^gatehouse: root is the last active superuser: .*users create NAME --superuser/)
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
  assert.equal(refused.stdout, '')
  assert.deepEqual(await activeSuperusers(storage), ['root'], 'nothing changed')

  assert.equal((await runCli(['users', 'disable', 'plain', ...storage])).code, 0, 'any other account may be disabled')
  assert.equal((await runCli(['users', 'create', 'second', '--superuser', ...storage])).code, 0)
  const disabled = await runCli(['users', 'disable', 'root', ...storage])
  assert.equal(disabled.code, 0, disabled.stderr)
  assert.deepEqual(await activeSuperusers(storage), ['second'])
  const last = await runCli(['users', 'disable', 'second', ...storage])
  assert.equal(last.code, 1, 'and then that one is the last')
  assert.deepEqual(await activeSuperusers(storage), ['second'])
}

describe('bin/gatehouse users create', () => {
  it('deletes the account again when its generated password cannot be written, to a pipe closed early or a full disk', async () => {
    const dir = tempDir()
    const storage = ['--data-dir', dir]
    try {
      assert.equal((await runCli(['migrate', ...storage])).code, 0)
      const full = openSync('/dev/full', 'w')
      try {
        for (const stdout of ['closed', full] as const) {
          const lost = await runCli(['users', 'create', 'erin', '--superuser', ...storage], { stdout })
          assert.equal(lost.code, 1, lost.stderr)
          assert.match(lost.stderr, /^gatehouse: the generated password could not be written \(.*(EPIPE|ENOSPC).*\); the account erin was deleted again: /)
          assert.equal(lost.stderr.trim().split('\n').length, 1, lost.stderr)
          assert.deepEqual(await activeSuperusers(storage), [], `no account left without a password anyone knows (${stdout})`)
        }
        // A password given on standard input is not lost with the output: the account stays, as a list's reader stopping early is no failure.
        const given = await runCli(['users', 'create', 'erin', '--superuser', '--password-stdin', ...storage], { stdout: 'closed', input: 'erin-password\n' })
        assert.equal(given.code, 0, given.stderr)
      } finally {
        closeSync(full)
      }
      assert.deepEqual(await activeSuperusers(storage), ['erin'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** `check` as two tests: against a new SQLite data directory, and a new PostgreSQL database, each given as storage options. */
function onSqliteAndPostgres(title: string, check: (storage: string[]) => Promise<void>): void {
  it(`${title}, on SQLite`, async () => {
    const dir = tempDir()
    try {
      await check(['--data-dir', dir])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it(`${title}, on PostgreSQL`, async () => {
    const database = await createTestDatabase()
    try {
      await check(['--database', database.url])
    } finally {
      await database.drop()
    }
  })
}

describe('bin/gatehouse users disable', () => {
  onSqliteAndPostgres('refuses to disable the last active superuser, changing nothing, until another one is active', assertKeepsTheLastSuperuser)
})

describe('gatehouse users unlock', () => {
  it('records the account unlocked by its id and name, in any letter case it is named, and a username without an account by its name alone', async () => {
    const gw = await startGateway()
    try {
      const alice = await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
      const kelly = await gw.app.accounts.create({ username: 'kelly', password: 'kelly-password' })
      // The Kelvin sign folds to a k, as the failures of its login were counted.
      for (const [name, said] of [['alice', 'alice'], ['ghost', 'ghost'], ['ALICE', 'alice'], ['\u212Aelly', 'kelly']]) {
        const refused = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(name.toLowerCase(), 'wrong-password') } })
        assert.equal(refused.status, 401)
        const unlocked = await runCli(['users', 'unlock', name, '--data-dir', gw.dataDir])
        assert.equal(unlocked.code, 0, unlocked.stderr)
        assert.equal(unlocked.stdout, `unlocked ${said}\n`)
      }
      await gw.app.audit.flush()
      const stream = await json(await gw.fetch('/api/gateway/v1/activitystream/?operation=update&content_type=user&order_by=id', { headers: adminAuth }))
      const unlocks = stream.results.filter((entry: any) => entry.auth_method === 'cli')
      assert.deepEqual(unlocks.map((entry: any) => [entry.object_id, entry.summary_fields.content_object.name, entry.changes.changed_fields.failed_logins]), [
        [String(alice.id), 'alice', ['some', 'cleared']],
        [null, 'ghost', ['some', 'cleared']],
        [String(alice.id), 'alice', ['some', 'cleared']],
        [String(kelly.id), 'kelly', ['some', 'cleared']],
      ])
    } finally {
      await gw.close()
    }
  })

  it('says where a file to import stops being JSON without printing the file around it (a hash, a binary\'s bytes)', async () => {
    const dir = tempDir()
    const dataDir = await migratedDataDir(dir)
    const unquoted = join(dir, 'unquoted.json')
    writeFileSync(unquoted, '[\n  {"username": "a",\n   "password": pbkdf2_sha256$600000$c2FsdA$SECRETHASH"}]\n')
    const binary = join(dir, 'binary.json')
    writeFileSync(binary, Buffer.concat([Buffer.from([0x7f]), Buffer.from('ELF'), Buffer.from([2, 1, 1, 0x1b]), Buffer.from('[2J'), Buffer.alloc(40)]))
    for (const [file, problem] of [[unquoted, "Unexpected character 'p' at line 3, column 16"], [binary, 'Unexpected character U+007F at line 1, column 1']]) {
      const result = await runCli(['users', 'import', file!, '--data-dir', dataDir])
      assert.equal(result.code, 2)
      assert.equal(result.stderr, `gatehouse: ${file}: nothing was imported: the file is not JSON: ${problem}\n`)
    }
  })
})

/** `users list --json`: each account's username and whether it is active. */
async function activeByName(storage: string[]): Promise<Record<string, boolean>> {
  const listed = await runCli(['users', 'list', '--json', ...storage])
  assert.equal(listed.code, 0, listed.stderr)
  return Object.fromEntries((JSON.parse(listed.stdout) as { username: string; is_active: boolean }[]).map((user) => [user.username, user.is_active]))
}

async function assertUpdateKeepsADisableMadeInGatehouse(storage: string[]): Promise<void> {
  const dir = tempDir()
  try {
    const realm = (enabled: Record<string, boolean>) => {
      const file = join(dir, 'realm.json')
      writeFileSync(file, JSON.stringify({ realm: 'old', users: Object.entries(enabled).map(([username, on]) => ({ username, enabled: on })) }))
      return file
    }
    assert.equal((await runCli(['migrate', ...storage])).code, 0)
    assert.equal((await runCli(['users', 'create', 'plain', '--password-stdin', ...storage], { input: 'plain-password-1\n' })).code, 0)
    const first = await runCli(['users', 'import', realm({ ann: true, bea: false, cal: true }), ...storage])
    assert.equal(first.code, 0, first.stderr)
    assert.equal((await runCli(['users', 'disable', 'ann', ...storage])).code, 0, 'an administrator disables ann in Gatehouse')
    assert.equal((await runCli(['users', 'disable', 'plain', ...storage])).code, 0, 'and plain, which no import made')

    const updated = await runCli(['users', 'import', realm({ ann: true, bea: true, cal: false, plain: true }), '--update', ...storage])
    assert.equal(updated.code, 0, updated.stderr)
    assert.match(updated.stdout, /^disabled, as the file says: cal$/m)
    assert.match(updated.stdout, /^enabled, as the file says \(it disabled them at the last import\): bea$/m)
    assert.match(updated.stdout, /^left disabled, though the file enables them \(disabled in Gatehouse since the file last said so, or by no import; .*\): ann, plain$/m)
    assert.deepEqual(await activeByName(storage), { plain: false, ann: false, bea: true, cal: false })

    // The source enabling cal again, after its own disable reached Gatehouse, enables it; ann stays as its administrator left it.
    const again = await runCli(['users', 'import', realm({ ann: true, bea: true, cal: true }), '--update', ...storage])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /^enabled, as the file says .*: cal$/m)
    assert.match(again.stdout, /^left disabled, .*: ann$/m)
    assert.deepEqual(await activeByName(storage), { plain: false, ann: false, bea: true, cal: true })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('gatehouse users import --update', () => {
  onSqliteAndPostgres('disables or enables what the file changed since the last import, and leaves a disable made in Gatehouse, naming each', assertUpdateKeepsADisableMadeInGatehouse)
})

/** `check` with a gateway serving `storage`, and a directory for its files. */
async function withGatewayOn(storage: string[], check: (gw: TestGateway, dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir()
  const gw = await startGateway({ dataDir: storage[0] === '--data-dir' ? storage[1] : dir, databaseUrl: storage[0] === '--database' ? storage[1] : undefined })
  try {
    await check(gw, dir)
  } finally {
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A Keycloak realm export whose users are in groups: `tree`, the realm's `groups`; `users`, each user's group paths. */
function realmWithGroups(users: Record<string, unknown>, tree?: unknown): Record<string, unknown> {
  return { realm: 'old', ...(tree === undefined ? {} : { groups: tree }), users: Object.entries(users).map(([username, groups]) => ({ username, enabled: true, groups })) }
}

const group = (name: string, path: string, subGroups: unknown[] = []) => ({ id: `id-${path}`, name, path, subGroups, attributes: {}, realmRoles: [], clientRoles: {} })

async function assertGroupsBecomeTeams(storage: string[]): Promise<void> {
  await withGatewayOn(storage, async (gw, dir) => {
  const api = async (path: string, body?: unknown) => json(await gw.fetch(`/api/gateway/v1/${path}`, body === undefined
    ? { headers: adminAuth }
    : { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) }))
  const acme = await api('organizations/', { name: 'Acme' })
  await api('teams/', { name: 'Ops', organization: acme.id })
  const usernames = async () => (await api('users/?order_by=username')).results.map((user: { username: string }) => user.username)
  const importRealm = async (name: string, content: unknown, ...options: string[]) => {
    writeFileSync(join(dir, name), JSON.stringify(content))
    return runCli(['users', 'import', join(dir, name), ...storage, ...options])
  }
  const tree = [group('Ops', '/Ops'), group('Engineering', '/Engineering', [group('Backend', '/Engineering/Backend')])]

  const refusals: [string, unknown, RegExp, string?][] = [
    ['no organization', realmWithGroups({ ann: ['/Ops'] }, tree), /: nothing was imported: there is no organization "Nowhere" for --groups-to-teams; create it first/, 'Nowhere'],
    ['groups not paths', realmWithGroups({ ann: ['/Ops', 5] }), /users\[0\] \(ann\) has "groups" that are not a list of group paths/],
    ['no leading slash', realmWithGroups({ ann: ['Ops'] }), /users\[0\] \(ann\) is in the group "Ops", which is not a Keycloak group path/],
    ['empty segment', realmWithGroups({ ann: ['/Engineering//Backend'] }), /is in the group "\/Engineering\/\/Backend", which is not a Keycloak group path/],
    ['too long', realmWithGroups({ ann: [`/${'x'.repeat(513)}`] }), /is in the group "\/x{79}\.\.\.", whose path is longer than a team's name may be \(512 characters\)/],
    ['spaces around', realmWithGroups({ ann: ['/Ops '] }), /is in the group "\/Ops ", whose path no team's name can be/],
    ['NUL', realmWithGroups({ ann: ['/Ops\u0000'] }), /is in the group "\/Ops\\u0000", whose path no team's name can be/],
    ['lone surrogate', realmWithGroups({ ann: ['/Ops\ud800'] }), /is in the group "\/Ops\\ud800", whose path no team's name can be/],
    ['line break', realmWithGroups({ ann: ['/Ops\r\nX'] }), /is in the group "\/Ops\\r\\nX", whose path no team's name can be/],
    ['right-to-left override', realmWithGroups({ ann: ['/Ops\u202e'] }), /is in the group "\/Ops\\u202e", whose path no team's name can be/],
    ['not in the tree', realmWithGroups({ ann: ['/Sales'] }, tree), /is in the group "\/Sales", which the realm's "groups" does not have/],
    ['a group without a name', realmWithGroups({ ann: ['/Ops'] }, [...tree, { subGroups: [] }]), /groups\[2\] is not a group with a "name"/],
    ['subGroups not a list', realmWithGroups({ ann: ['/Ops'] }, [{ ...group('Ops', '/Ops'), subGroups: 'x' }]), /groups\[0\] has "subGroups" that are not a list/],
    ['two groups, one path', realmWithGroups({ ann: ['/a/b'] }, [group('a/b', '/a/b'), group('a', '/a', [group('b', '/a/b')])]), /is in the group "\/a\/b", which is the path of more than one of the realm's groups/],
    ['the platform\'s users', [{ username: 'ann' }], /--groups-to-teams reads a Keycloak realm export's groups/],
  ]
  for (const [what, content, message, organization = 'Acme'] of refusals) {
    const refused = await importRealm('refused.json', content, '--groups-to-teams', organization)
    assert.equal(refused.code, 2, `${what}: ${refused.stderr}`)
    assert.match(refused.stderr, message, what)
    assert.equal(refused.stderr.split('\n').length, 2, `${what}: one line`)
    assert.equal(refused.stdout, '', what)
  }
  assert.deepEqual(await usernames(), ['admin'], 'nothing was imported')
  const teamsOfAcme = async () => (await api(`teams/?organization=${acme.id}&order_by=name`)).results as { id: number; name: string }[]
  assert.deepEqual((await teamsOfAcme()).map((team) => team.name), ['Ops'], 'no team was made')

  const realm = realmWithGroups({ ann: ['/Ops', '/Engineering/Backend'], bob: ['/Engineering'], cy: [] }, tree)
  const imported = await importRealm('realm.json', realm, '--groups-to-teams', 'Acme')
  assert.equal(imported.code, 0, imported.stderr)
  assert.match(imported.stdout, /^3 users in the Keycloak realm export: 3 created/m)
  assert.match(imported.stdout, /^teams of the organization "Acme": 2 created \("Engineering\/Backend", "Engineering"\), 3 memberships given, 0 held already$/m)
  assert.doesNotMatch(imported.stdout, /groups/)
  const teams = await teamsOfAcme()
  assert.deepEqual(teams.map((team) => team.name), ['Engineering', 'Engineering/Backend', 'Ops'])
  const members = async () => Object.fromEntries(await Promise.all(teams.map(async (team) =>
    [team.name, (await api(`teams/${team.id}/users/?order_by=username`)).results.map((user: { username: string }) => user.username)])))
  assert.deepEqual(await members(), { 'Engineering': ['bob'], 'Engineering/Backend': ['ann'], 'Ops': ['ann'] })
  await gw.app.audit.flush()
  const stream = await api('activitystream/?order_by=id&page_size=100')
  const recorded = stream.results.filter((entry: any) => entry.auth_method === 'cli' && entry.content_type !== 'user')
    .map((entry: any) => [entry.operation, entry.content_type, entry.summary_fields.content_object?.name ?? entry.changes?.name?.[1]])
  assert.deepEqual(recorded.slice(0, 2), [['create', 'team', 'Engineering/Backend'], ['create', 'team', 'Engineering']])
  assert.deepEqual(recorded.slice(2).map((entry: string[]) => entry.slice(0, 2)), [['create', 'role_user_assignment'], ['create', 'role_user_assignment'], ['create', 'role_user_assignment']])

  const again = await importRealm('realm.json', realm, '--groups-to-teams', 'Acme', '--update')
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /^teams of the organization "Acme": 0 created, 0 memberships given, 3 held already$/m)
  const without = await importRealm('later.json', realmWithGroups({ dee: ['/Ops'] }))
  assert.equal(without.code, 0, without.stderr)
  assert.match(without.stdout, /^groups made no teams \(--groups-to-teams ORGANIZATION makes each a team of the organization, its users members\)$/m)
  assert.deepEqual(await members(), { 'Engineering': ['bob'], 'Engineering/Backend': ['ann'], 'Ops': ['ann'] })
  })
}

describe('gatehouse users import --groups-to-teams', () => {
  onSqliteAndPostgres('makes the Keycloak users\' groups teams of the organization and the users members, or refuses a bad file changing nothing', assertGroupsBecomeTeams)
})

async function assertKeycloakUpdateKeepsPrivilegesGivenInGatehouse(storage: string[]): Promise<void> {
  await withGatewayOn(storage, async (gw, dir) => {
  const file = join(dir, 'realm.json')
  writeFileSync(file, JSON.stringify({ realm: 'old', users: [{ username: 'alice', enabled: true, email: 'alice@example.com' }, { username: 'bert', enabled: true }] }))
  assert.equal((await runCli(['users', 'import', file, ...storage])).code, 0)
  const send = async (method: string, path: string, body: unknown) => json(await gw.fetch(`/api/gateway/v1/${path}`,
    { method, headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) }))
  const idOf = async (username: string) => (await json(await gw.fetch(`/api/gateway/v1/users/?username=${username}`, { headers: adminAuth }))).results[0].id
  // After the move, an administrator makes alice a superuser and bert a Platform Auditor in Gatehouse.
  await send('PATCH', `users/${await idOf('alice')}/`, { is_superuser: true })
  const auditor = (await json(await gw.fetch('/api/gateway/v1/role_definitions/?name=Platform%20Auditor', { headers: adminAuth }))).results[0].id
  await send('POST', 'role_user_assignments/', { role_definition: auditor, user: await idOf('bert') })

  writeFileSync(file, JSON.stringify({ realm: 'old', users: [{ username: 'alice', enabled: true, email: 'alice@new.example.com' }, { username: 'bert', enabled: true }] }))
  const updated = await runCli(['users', 'import', file, '--update', ...storage])
  assert.equal(updated.code, 0, updated.stderr)
  const listed = await runCli(['users', 'list', '--json', ...storage])
  const users = Object.fromEntries((JSON.parse(listed.stdout) as { username: string; email: string; is_superuser: boolean; is_platform_auditor: boolean }[])
    .map((user) => [user.username, [user.email, user.is_superuser, user.is_platform_auditor]]))
  assert.deepEqual([users.alice, users.bert], [['alice@new.example.com', true, false], ['', false, true]], 'a Keycloak file, which says nothing of either, takes neither away')
  })
}

describe('gatehouse users import --update of a Keycloak realm', () => {
  onSqliteAndPostgres('leaves the superuser flag and Platform Auditor role given in Gatehouse, which the realm has no word for', assertKeycloakUpdateKeepsPrivilegesGivenInGatehouse)
})

async function assertPlatformUpdateKeepsPrivilegesTakenInGatehouse(storage: string[]): Promise<void> {
  await withGatewayOn(storage, async (gw, dir) => {
    const file = join(dir, 'users.json')
    const importList = async (users: Record<string, unknown>[], ...options: string[]) => {
      writeFileSync(file, JSON.stringify(users))
      const result = await runCli(['users', 'import', file, ...storage, ...options])
      assert.equal(result.code, 0, result.stderr)
      return result.stdout
    }
    const get = async (path: string) => json(await gw.fetch(`/api/gateway/v1/${path}`, { headers: adminAuth }))
    const change = (method: string, path: string, body?: unknown) => gw.fetch(`/api/gateway/v1/${path}`,
      { method, headers: { ...adminAuth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }).then((response) => response.arrayBuffer())
    const list = [{ username: 'carol', is_superuser: true }, { username: 'audrey', is_platform_auditor: true }, { username: 'dan' }]
    await importList(list)
    const idOf = async (username: string) => (await get(`users/?username=${username}`)).results[0].id
    // An administrator takes carol's superuser flag and audrey's Platform Auditor role away in Gatehouse.
    await change('PATCH', `users/${await idOf('carol')}/`, { is_superuser: false })
    const auditorRole = (await get('role_definitions/?name=Platform%20Auditor')).results[0].id
    const held = (await get(`role_user_assignments/?user=${await idOf('audrey')}&role_definition=${auditorRole}`)).results[0].id
    await change('DELETE', `role_user_assignments/${held}/`)

    // The platform still shows both, and has made dan a superuser since.
    const updated = await importList([...list.slice(0, 2), { username: 'dan', is_superuser: true }], '--update')
    assert.match(updated, /^left without what the file gives them \(taken away in Gatehouse since the file last gave it, .*\): carol \(superuser\), audrey \(Platform Auditor\)$/m)
    const flags = async () => Object.fromEntries((await get('users/?order_by=username')).results
      .map((user: { username: string; is_superuser: boolean; is_platform_auditor: boolean }) => [user.username, [user.is_superuser, user.is_platform_auditor]]))
    assert.deepEqual(await flags(), { admin: [true, false], audrey: [false, false], carol: [false, false], dan: [true, false] })
    assert.equal((await get(`role_user_assignments/?user=${await idOf('audrey')}&role_definition=${auditorRole}`)).count, 0)
    // Taking a privilege away, as the file says, is always done.
    const revoked = await importList([{ username: 'dan', is_superuser: false }], '--update')
    assert.doesNotMatch(revoked, /left without/)
    assert.deepEqual((await flags()).dan, [false, false])
  })
}

describe('gatehouse users import --update of the platform\'s users', () => {
  onSqliteAndPostgres('gives the superuser flag and Platform Auditor role only to accounts an import left without them', assertPlatformUpdateKeepsPrivilegesTakenInGatehouse)
})

/**
 * An administrator's latest decision in Gatehouse wins over the file until the file itself changes, in whichever order
 * the two come: each account below is imported, changed in Gatehouse (with the API or `users disable`), and updated.
 */
async function assertLatestDecisionWins(storage: string[]): Promise<void> {
  await withGatewayOn(storage, async (gw, dir) => {
    const file = join(dir, 'users.json')
    const importList = async (active: Record<string, boolean>, superuser: Record<string, boolean>) => {
      writeFileSync(file, JSON.stringify([
        ...Object.entries(active).map(([username, on]) => ({ username, is_active: on })),
        ...Object.entries(superuser).map(([username, on]) => ({ username, is_superuser: on })),
      ]))
      const result = await runCli(['users', 'import', file, '--update', ...storage])
      assert.equal(result.code, 0, result.stderr)
      return result.stdout
    }
    const get = async (path: string) => json(await gw.fetch(`/api/gateway/v1/${path}`, { headers: adminAuth }))
    const idOf = async (username: string) => (await get(`users/?username=${username}`)).results[0].id
    const patch = async (username: string, body: Record<string, boolean>) => {
      const response = await gw.fetch(`/api/gateway/v1/users/${await idOf(username)}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      assert.equal(response.status, 200, await response.text())
    }
    const disable = async (username: string) => assert.equal((await runCli(['users', 'disable', username, ...storage])).code, 0)
    const flags = async () => Object.fromEntries((await get('users/?order_by=username')).results
      .map((user: { username: string; is_active: boolean; is_superuser: boolean }) => [user.username, ['s', 't'].includes(user.username) ? user.is_superuser : user.is_active]))

    await importList({ a: false, b: true, c: false, d: true, e: false, f: true }, { s: false, t: true })
    await patch('a', { is_active: true })
    await disable('b')
    await patch('c', { is_active: true })
    await disable('c')
    await disable('d')
    await patch('d', { is_active: true })
    await patch('e', { is_active: true })
    await disable('f')
    await patch('s', { is_superuser: true })
    await patch('t', { is_superuser: false })

    // a and b: the file now says what the administrator did; c and d: the administrator undid their own change; e, s
    // and t: the file says what it said, and the administrator's change stands; f: the file disables it too.
    const first = await importList({ a: true, b: false, c: false, d: true, e: false, f: false }, { s: false, t: true })
    assert.deepEqual(await flags(), { admin: true, a: true, b: false, c: false, d: true, e: true, f: false, s: true, t: false })
    assert.match(first, /^left enabled, though the file disables them \(.*\): e$/m)
    assert.match(first, /^left with what the file takes away \(.*\): s \(superuser\)$/m)
    assert.match(first, /^left without what the file gives them \(.*\): t \(superuser\)$/m)
    assert.doesNotMatch(first, /^(disabled|enabled), as the file says/m)

    // The administrator disables a and enables b again: the file, unchanged, does not undo either.
    await disable('a')
    await patch('b', { is_active: true })
    const second = await importList({ a: true, b: false, c: false, d: true, e: false, f: false }, { s: false, t: true })
    assert.deepEqual(await flags(), { admin: true, a: false, b: true, c: false, d: true, e: true, f: false, s: true, t: false })
    assert.match(second, /^left disabled, though the file enables them \(.*\): a$/m)
    assert.match(second, /^left enabled, though the file disables them \(.*\): b, e$/m)

    // The file changes its word: it wins over each earlier decision, until an administrator makes another.
    const third = await importList({ a: true, b: false, c: true, d: false, e: false, f: true }, { s: false, t: true })
    assert.match(third, /^enabled, as the file says .*: c, f$/m)
    assert.match(third, /^disabled, as the file says: d$/m)
    assert.deepEqual(await flags(), { admin: true, a: false, b: true, c: true, d: false, e: true, f: true, s: true, t: false })
    const fourth = await importList({ a: true, b: false, c: true, d: false, e: false, f: true }, { s: true, t: false })
    assert.deepEqual(await flags(), { admin: true, a: false, b: true, c: true, d: false, e: true, f: true, s: true, t: false })
    assert.doesNotMatch(fourth, /left (with|without) /)
  })
}

describe('gatehouse users import --update after changes in Gatehouse', () => {
  onSqliteAndPostgres('keeps an administrator\'s latest enable, disable or privilege change until the file changes its word, in each order', assertLatestDecisionWins)
})

describe('gatehouse users enable', () => {
  it('enables a disabled account with an audit entry, says so of an enabled one of any source, and leaves a disabled LDAP account to the API', async () => {
    const gw = await startGateway()
    try {
      const carl = await gw.app.accounts.create({ username: 'carl', password: 'carl-password-1', isActive: false })
      const directory = await gw.app.accounts.create({ username: 'dir-user', source: 'ldap', external: true })
      const enable = (name: string) => runCli(['users', 'enable', name, '--data-dir', gw.dataDir])

      const enabled = await enable('carl')
      assert.deepEqual([enabled.code, enabled.stdout, enabled.stderr], [0, 'enabled carl\n', ''])
      assert.equal((await gw.app.store.users.findById(carl.id))?.isActive, true)
      await gw.app.audit.flush()
      const stream = await json(await gw.fetch('/api/gateway/v1/activitystream/?operation=update&content_type=user&order_by=id', { headers: adminAuth }))
      assert.deepEqual(stream.results.filter((entry: any) => entry.auth_method === 'cli').map((entry: any) => [entry.object_id, entry.changes.changed_fields.is_active]), [[String(carl.id), [false, true]]])

      // An LDAP account that is enabled is told so, as a local one is: nothing is asked of the API.
      for (const name of ['carl', 'dir-user']) {
        const again = await enable(name)
        assert.deepEqual([again.code, again.stdout, again.stderr], [0, `${name} is enabled already\n`, ''], name)
      }

      await gw.app.accounts.update(directory.id, { isActive: false })
      const refused = await enable('dir-user')
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr, `gatehouse: dir-user is an LDAP account: enable it through the API, PATCH /api/gateway/v1/users/${directory.id}/ with {"is_active": true}, which first asks the directory whether it still lists the person\n`)
      assert.equal((await gw.app.store.users.findById(directory.id))?.isActive, false)

      const missing = await enable('nobody')
      assert.deepEqual([missing.code, missing.stderr], [2, 'gatehouse: no such user: nobody\n'])
    } finally {
      await gw.close()
    }
  })
})
