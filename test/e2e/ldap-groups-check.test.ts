import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, userId } from '../helpers/access.ts'
import { basic, json, spawnGateway, startGateway, tempDir, type GatewayProcess, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { passwordLogin, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { at, login, withCsrf, type LoggedIn, type Target } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

const ME = '/api/gateway/v1/me/'
const INTERVAL_SECONDS = 1
const personDn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`

/** A gateway session and a personal token of a directory user, both made before the directory changes. */
interface Held {
  session: LoggedIn
  token: string
  password: string
}

async function hold(gw: TestGateway, username: string): Promise<Held> {
  const password = PASSWORDS[username]!
  const session = await login(gw, username, password)
  const { token } = await createToken(gw, { authorization: basic(username, password) })
  return { session, token, password }
}

/** Each credential's headers: the session's cookie, the personal token, and the (cached) basic credential. */
function credentials(username: string, held: Held): Record<string, Record<string, string>> {
  return { session: withCsrf(held.session), token: bearer(held.token), basic: { authorization: basic(username, held.password) } }
}

async function superuserFlags(gw: TestGateway, username: string, held: Held): Promise<Record<string, boolean>> {
  const flags: Record<string, boolean> = {}
  for (const [method, headers] of Object.entries(credentials(username, held))) {
    const response = await gw.fetch(ME, { headers })
    assert.equal(response.status, 200, `${method} still signs ${username} in`)
    flags[method] = (await json(response)).results[0].is_superuser
  }
  return flags
}

/** Creating a user is for superusers only: 201, or 403 `permission_denied`. */
async function createUser(gw: TestGateway, headers: Record<string, string>, username: string): Promise<number> {
  const response = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ username }) })
  if (response.status === 403) assert.equal((await json(response)).code, 'permission_denied')
  return response.status
}

/** A write the demo eda rules give to members of the team Platform/Automation only. */
async function activation(gw: TestGateway, headers: Record<string, string>): Promise<number> {
  return (await gw.fetch('/api/eda/v1/activations/', { method: 'POST', headers })).status
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + (INTERVAL_SECONDS * 5 + 10) * 1000
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`)
    await sleep(100)
  }
}

async function auditedGroupChanges(gw: TestGateway, username: string): Promise<any[]> {
  await gw.app.audit.flush()
  const { entries } = await gw.store.audit.list({ offset: 0, limit: 200 })
  return entries.filter((entry) => entry.objectName === username && entry.code === 'directory_groups_changed')
}

/** A gateway whose account check runs every INTERVAL_SECONDS, mapping `group` to the Automation team of Platform. */
async function checkedGateway(directory: TestDirectory, group: string): Promise<TestGateway> {
  const gw = await startGateway({
    config: {
      ldap: directory.config({
        account_check: { interval_seconds: INTERVAL_SECONDS },
        memberships: [{ organization: 'Platform', team: 'Automation', groups: [group] }],
        timeouts: { connect_seconds: 1, lookup_seconds: 5 },
      }),
    },
  })
  await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: true })
  await createOrgAndTeam(gw, 'Platform', 'Automation')
  return gw
}

describe('the periodic directory account check re-reads the groups of accounts holding something live', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await checkedGateway(directory, GROUPS.developers)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('takes the superuser flag from an existing session, personal token and cached basic credential once the directory removes the person from the superuser group', async () => {
    const alice = await hold(gw, 'alice')
    assert.deepEqual(await superuserFlags(gw, 'alice', alice), { session: true, token: true, basic: true })
    assert.equal(await createUser(gw, bearer(alice.token), 'made-by-alice-before'), 201)
    await directory.setMembers(GROUPS.admins, [personDn('dave')])
    try {
      await until(async () => !(await gw.store.users.findByUsername('alice'))!.isSuperuser, 'the check clears alice\'s flag')
      assert.deepEqual(await superuserFlags(gw, 'alice', alice), { session: false, token: false, basic: false })
      assert.equal(await createUser(gw, bearer(alice.token), 'made-by-alice-after'), 403)
      assert.equal(await createUser(gw, withCsrf(alice.session), 'made-by-alice-session'), 403)
      const [audited] = await auditedGroupChanges(gw, 'alice')
      assert.equal(audited?.operation, 'update')
      assert.equal(audited?.actorId, null, 'made by the system')
      assert.deepEqual((audited?.changes as any)?.changed_fields?.is_superuser, [true, false])
    } finally {
      await directory.setMembers(GROUPS.admins, [personDn('alice')])
    }
    await until(async () => (await gw.store.users.findByUsername('alice'))!.isSuperuser, 'the check gives alice\'s flag back')
    assert.deepEqual(await superuserFlags(gw, 'alice', alice), { session: true, token: true, basic: true })
  })

  it('ends a mapped team membership the directory no longer gives, and gives one it newly gives, without a new password login', async () => {
    const bob = await hold(gw, 'bob')
    const carol = await hold(gw, 'carol')
    assert.equal(await activation(gw, bearer(bob.token)), 200, 'bob is in developers, so in the team')
    assert.equal(await activation(gw, bearer(carol.token)), 403, 'carol is in no mapped group')
    await directory.setMembers(GROUPS.developers, [personDn('alice'), personDn('carol')])
    try {
      const teams = async (username: string) => (await call(gw, 'GET', `users/${await userId(gw, username)}/teams/`)).body.count
      await until(async () => await teams('bob') === 0 && await teams('carol') === 1, 'the check moves the membership from bob to carol')
      for (const [method, headers] of Object.entries(credentials('bob', bob))) {
        assert.equal(await activation(gw, headers), 403, `bob's ${method} lost the team's rights`)
      }
      for (const [method, headers] of Object.entries(credentials('carol', carol))) {
        assert.equal(await activation(gw, headers), 200, `carol's ${method} has the team's rights`)
      }
    } finally {
      await directory.setMembers(GROUPS.developers, [personDn('alice'), personDn('bob')])
    }
  })
})

describe('a superuser flag the directory takes away, with several processes on one database', () => {
  const dir = tempDir()
  let directory: TestDirectory
  const gateways: GatewayProcess[] = []
  before(async () => {
    directory = await startDirectory()
    const configFile = join(dir, 'gatehouse.json')
    writeFileSync(configFile, JSON.stringify({ ldap: directory.config({ account_check: { interval_seconds: INTERVAL_SECONDS } }) }))
    // One after the other: the first makes the database.
    for (let i = 0; i < 2; i++) gateways.push(await spawnGateway(['--config', configFile, '--data-dir', dir]))
  })
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    await directory?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** is_superuser as each process sees it, for the session and the basic credential (each process caches both). */
  async function flagsEverywhere(session: LoggedIn): Promise<boolean[]> {
    const flags: boolean[] = []
    for (const target of gateways.map((g): Target => at(g.url))) {
      for (const headers of [withCsrf(session), { authorization: basic('alice', PASSWORDS.alice!) }]) {
        const response = await target.fetch(ME, { headers })
        assert.equal(response.status, 200)
        flags.push((await json(response)).results[0].is_superuser)
      }
    }
    return flags
  }

  it('is gone on every process at the next request, whichever process ran the check', async () => {
    const session = await login(at(gateways[1]!.url), 'alice', PASSWORDS.alice!)
    assert.deepEqual(await flagsEverywhere(session), [true, true, true, true])
    await directory.setMembers(GROUPS.admins, [personDn('dave')])
    const admin = at(gateways[0]!.url)
    const aliceIsSuperuser = async () => (await call(admin, 'GET', `users/${await userId(admin, 'alice')}/`)).body.is_superuser as boolean
    await until(async () => !(await aliceIsSuperuser()), 'the check clears alice\'s flag')
    assert.deepEqual(await flagsEverywhere(session), [false, false, false, false])
  })
})

describe('a realm refresh re-reads the refreshing user\'s groups, with no periodic check', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ account_check: { interval_seconds: 0 } }), realms: testRealms } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('takes the superuser flag from the gateway session at the refresh, which goes on', async () => {
    const session = await login(gw, 'alice', PASSWORDS.alice!)
    const { refresh_token: refreshToken } = await passwordLogin(gw, 'alice', PASSWORDS.alice!)
    const flag = async () => (await json(await gw.fetch(ME, { headers: withCsrf(session) }))).results[0].is_superuser
    assert.equal(await flag(), true)
    await directory.setMembers(GROUPS.admins, [personDn('dave')])
    try {
      assert.equal(await flag(), true, 'nothing asks the directory before the refresh')
      const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
      assert.equal(refreshed.status, 200)
      assert.equal(await flag(), false)
    } finally {
      await directory.setMembers(GROUPS.admins, [personDn('alice')])
    }
  })
})

describe('the periodic directory account check, for a person who joins more groups than a login reads', () => {
  const MANY = 1001
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    // Groups of dave's that alice joins later, as a person may where the directory lets people join lists.
    const groups = Array.from({ length: MANY }, (_, i) => `dn: cn=list-${i},ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: list-${i}\nmember: ${personDn('dave')}\n`).join('\n')
    directory = await startDirectory({ sizeLimit: 'unlimited', moreEntries: groups })
    gw = await checkedGateway(directory, GROUPS.admins)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('takes the superuser flag and the mapped team from a person removed from the group who joined a thousand others meanwhile', async () => {
    const alice = await hold(gw, 'alice')
    assert.deepEqual(await superuserFlags(gw, 'alice', alice), { session: true, token: true, basic: true })
    assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'alice')}/teams/`)).body.count, 1)
    for (let first = 0; first < MANY; first += 50) {
      await Promise.all(Array.from({ length: Math.min(50, MANY - first) }, (_, i) => directory.setMembers(`cn=list-${first + i},ou=groups,${SUFFIX}`, [personDn('dave'), personDn('alice')])))
    }
    await directory.setMembers(GROUPS.admins, [personDn('dave')])
    await until(async () => !(await gw.store.users.findByUsername('alice'))!.isSuperuser, 'the check clears alice\'s flag')
    assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'alice')}/teams/`)).body.count, 0, 'the mapped team is gone too')
    assert.equal((await gw.fetch(ME, { headers: bearer(alice.token) })).status, 200, 'the personal token still signs alice in')
    assert.equal((await json(await gw.fetch(ME, { headers: bearer(alice.token) }))).results[0].is_superuser, false)
    assert.equal(await createUser(gw, bearer(alice.token), 'made-by-alice-in-many-groups'), 403)
    assert.equal((await gw.fetch(ME, { headers: { authorization: basic('alice', alice.password) } })).status, 503, 'her login is refused')
  })
})
