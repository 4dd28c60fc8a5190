import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { passwordLogin, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { UNREADABLE_RUNS } from '../../src/directory/ldap-check.ts'
import { login } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

const ME = '/api/gateway/v1/me/'
/** The user filter leaves out entries marked as former staff: changing the mark takes a person out of it. */
const USER_FILTER = '(&(uid={username})(!(employeeType=former)))'
const personDn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`

/** What a directory user holds: a gateway session, a personal token, and a realm refresh token. */
interface Held {
  cookie: string
  token: string
  refreshToken: string
}

async function holdEverything(gw: TestGateway, username: string): Promise<Held> {
  const session = await login(gw, username, PASSWORDS[username]!)
  const { token } = await createToken(gw, { authorization: basic(username, PASSWORDS[username]!) })
  const { refresh_token: refreshToken } = await passwordLogin(gw, username, PASSWORDS[username]!)
  return { cookie: session.cookie, token, refreshToken }
}

const refresh = (gw: TestGateway, refreshToken: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })

/** The status of /me/ with the session, with the token, and of a refresh (which, when it succeeds, rotates `held`'s refresh token). */
async function statuses(gw: TestGateway, held: Held): Promise<{ session: number; token: number; refresh: number }> {
  const session = (await gw.fetch(ME, { headers: { cookie: held.cookie } })).status
  const token = (await gw.fetch(ME, { headers: bearer(held.token) })).status
  const refreshed = await refresh(gw, held.refreshToken)
  if (refreshed.status === 200) held.refreshToken = refreshed.body.refresh_token
  return { session, token, refresh: refreshed.status }
}

async function auditEntriesFor(gw: TestGateway, username: string): Promise<any[]> {
  await gw.app.audit.flush()
  const { entries } = await gw.store.audit.list({ offset: 0, limit: 100 })
  return entries.filter((entry) => entry.objectName === username && entry.operation === 'update')
}

function startWith(directory: TestDirectory, intervalSeconds: number, logLines?: Record<string, unknown>[]): Promise<TestGateway> {
  return startGateway({
    logLines,
    config: {
      ldap: directory.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: USER_FILTER }, account_check: { interval_seconds: intervalSeconds }, timeouts: { connect_seconds: 1, lookup_seconds: 2 } }),
      realms: testRealms,
    },
  })
}

describe('directory accounts whose entry goes away, checked periodically', () => {
  const INTERVAL_SECONDS = 1
  const logLines: Record<string, unknown>[] = []
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startWith(directory, INTERVAL_SECONDS, logLines)
    await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: true })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('ends the session, personal token and refresh token of a person deleted from the directory within the interval', async () => {
    const bob = await holdEverything(gw, 'bob')
    const carol = await holdEverything(gw, 'carol')
    assert.deepEqual(await statuses(gw, bob), { session: 200, token: 200, refresh: 200 })
    await directory.deleteEntry(personDn('bob'))
    const deadline = Date.now() + (INTERVAL_SECONDS * 3 + 3) * 1000
    while ((await gw.store.users.findByUsername('bob'))!.isActive && Date.now() < deadline) await sleep(100)
    assert.deepEqual(await statuses(gw, bob), { session: 401, token: 401, refresh: 400 })
    assert.equal((await refresh(gw, bob.refreshToken)).body.error, 'invalid_grant')
    assert.equal((await gw.store.users.findByUsername('bob'))!.isActive, false)
    assert.deepEqual(await statuses(gw, carol), { session: 200, token: 200, refresh: 200 }, 'a person still in the directory keeps everything')
    const [disabled] = await auditEntriesFor(gw, 'bob')
    assert.equal(disabled?.code, 'directory_entry_gone')
    assert.equal(disabled?.actorId, null)
    assert.deepEqual((disabled?.changes as any).changed_fields, { is_active: [true, false] })
    assert.ok(logLines.some((line) => line.user === 'bob' && line.level === 40 && /account disabled/.test(String(line.msg))), 'a warning names the account')
  })

  it('disables nobody while the directory does not answer, and carries on once it does', async () => {
    const dave = await holdEverything(gw, 'dave')
    await directory.stop()
    try {
      const outcome = await gw.app.directoryCheck!.run()
      assert.ok(outcome.unavailable, 'the run says the directory did not answer')
      assert.deepEqual(outcome.disabled, [])
      // Two periodic checks, too, each of which says the directory did not answer.
      const unanswered = () => logLines.filter((line) => line.level === 40 && /no account was disabled/.test(String(line.msg))).length
      const seen = unanswered()
      const deadline = Date.now() + INTERVAL_SECONDS * 10_000
      while (unanswered() < seen + 2) {
        assert.ok(Date.now() < deadline, 'the periodic check did not run twice')
        await sleep(50)
      }
      assert.deepEqual(await statuses(gw, dave), { session: 200, token: 200, refresh: 200 }, 'a refresh goes on without the directory')
      assert.equal((await gw.store.users.findByUsername('dave'))!.isActive, true)
      assert.deepEqual(await auditEntriesFor(gw, 'dave'), [])
      assert.ok(logLines.some((line) => line.level === 40 && /no account was disabled/.test(String(line.msg))), 'a warning says the check could not run')
    } finally {
      await directory.start()
    }
    const outcome = await gw.app.directoryCheck!.run()
    assert.equal(outcome.unavailable, undefined)
    assert.ok(outcome.checked >= 1)
    assert.deepEqual(outcome.disabled, [])
    assert.deepEqual(await statuses(gw, dave), { session: 200, token: 200, refresh: 200 })
  })
})

describe('a realm refresh checks the directory entry at once', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startWith(directory, 0)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('refuses the refresh of a person the user filter no longer matches, and disables the account', async () => {
    const session = await login(gw, 'alice', PASSWORDS.alice!)
    const { refresh_token: refreshToken } = await passwordLogin(gw, 'alice', PASSWORDS.alice!)
    await directory.replaceAttribute(personDn('alice'), 'employeeType', ['former'])
    const refused = await refresh(gw, refreshToken)
    assert.equal(refused.status, 400, JSON.stringify(refused.body))
    assert.equal(refused.body.error, 'invalid_grant')
    assert.equal((await gw.store.users.findByUsername('alice'))!.isActive, false)
    assert.equal((await gw.fetch(ME, { headers: { cookie: session.cookie } })).status, 401, 'the gateway session ended with it')
    const login401 = await gw.fetch(ME, { headers: { authorization: basic('alice', PASSWORDS.alice!) } })
    assert.equal(login401.status, 401)
    assert.equal((await json(login401)).code, 'invalid_credentials')
  })
})

describe('a directory that gives a deleted person\'s username to a new entry', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startWith(directory, 0)
    await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: true })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('ends what the first holder of the name holds, at a refresh and at the periodic check', async () => {
    const bob = await holdEverything(gw, 'bob')
    const carol = await holdEverything(gw, 'carol')
    for (const name of ['bob', 'carol']) {
      await directory.deleteEntry(personDn(name))
      await directory.addPerson(name, `new-${name}-password`)
    }
    const refused = await refresh(gw, bob.refreshToken)
    assert.equal(refused.status, 400, JSON.stringify(refused.body))
    assert.equal(refused.body.error, 'invalid_grant')
    assert.equal((await gw.store.users.findByUsername('bob'))!.isActive, false)
    assert.equal((await gw.fetch(ME, { headers: { cookie: bob.cookie } })).status, 401)

    const outcome = await gw.app.directoryCheck!.run()
    assert.deepEqual(outcome.disabled, ['carol'])
    assert.deepEqual(await statuses(gw, carol), { session: 401, token: 401, refresh: 400 })
    const [disabled] = await auditEntriesFor(gw, 'carol')
    assert.equal(disabled?.code, 'directory_entry_gone')
  })
})

/** A directory, and a gateway whose account check runs only when a test runs it, for the suite it is called in. */
function checkedByHand(): { logLines: Record<string, unknown>[]; readonly directory: TestDirectory; readonly gw: TestGateway } {
  const logLines: Record<string, unknown>[] = []
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startWith(directory, 0, logLines)
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })
  return { logLines, get directory() { return directory }, get gw() { return gw } }
}

describe('a periodic check in which the directory finds none of the accounts', () => {
  const fixture = checkedByHand()

  it('disables nobody and warns, as a user search that finds nobody would look the same; once it finds some, the rest are disabled', async () => {
    const { gw, directory, logLines } = fixture
    const people = ['alice', 'bob', 'carol']
    const sessions = await Promise.all(people.map((name) => login(gw, name, PASSWORDS[name]!)))
    for (const name of people) await directory.replaceAttribute(personDn(name), 'employeeType', ['former'])

    const kept = await gw.app.directoryCheck!.run()
    assert.equal(kept.notFoundKept, people.length)
    assert.deepEqual(kept.disabled, [])
    for (const name of people) assert.equal((await gw.store.users.findByUsername(name))!.isActive, true, name)
    for (const session of sessions) assert.equal((await gw.fetch(ME, { headers: { cookie: session.cookie } })).status, 200)
    assert.ok(logLines.some((line) => line.level === 40 && line.accounts === people.length && /found none of these accounts/.test(String(line.msg))))

    await directory.replaceAttribute(personDn('carol'), 'employeeType', ['staff'])
    const outcome = await gw.app.directoryCheck!.run()
    assert.equal(outcome.notFoundKept, 0)
    assert.deepEqual(outcome.disabled.sort(), ['alice', 'bob'])
    assert.equal((await gw.store.users.findByUsername('carol'))!.isActive, true)
  })
})

describe('an account whose directory entry cannot be read', () => {
  const fixture = checkedByHand()

  it('is passed over while the others are checked, and disabled once it stays unreadable for UNREADABLE_RUNS checks', async () => {
    const { gw, directory, logLines } = fixture
    // carol's account comes first in the check's order, dave's after hers; alice and bob are answered about.
    const carol = await login(gw, 'carol', PASSWORDS.carol!)
    const dave = await login(gw, 'dave', PASSWORDS.dave!)
    for (const name of ['alice', 'bob']) await login(gw, name, PASSWORDS[name]!)
    const me = async (cookie: string) => (await gw.fetch(ME, { headers: { cookie } })).status
    // An answer larger than the gateway reads from the directory: as a person who may edit their own name could make it.
    await directory.replaceAttribute(personDn('carol'), 'givenName', ['C'.repeat(1_200_000)])
    await directory.deleteEntry(personDn('dave'))
    const first = await gw.app.directoryCheck!.run()
    assert.equal(first.unavailable, undefined, 'the directory answered about the others')
    assert.deepEqual(first.disabled, ['dave'], 'the account after the unreadable one is still checked')
    assert.deepEqual(first.unreadable, ['carol'])
    assert.equal(await me(dave.cookie), 401)
    assert.equal(await me(carol.cookie), 200, 'not disabled for one unreadable answer')
    const warning = logLines.find((line) => line.user === 'carol' && line.level === 40 && /could not be read/.test(String(line.msg)))
    assert.ok(warning, 'a warning names the account')
    assert.match(String(warning.cause), /more than 1048576/, 'and says why')
    for (let run = 2; run < UNREADABLE_RUNS; run++) {
      const again = await gw.app.directoryCheck!.run()
      assert.deepEqual([again.disabled, again.unreadable], [[], ['carol']], `run ${run}`)
    }
    assert.equal(await me(carol.cookie), 200)
    const last = await gw.app.directoryCheck!.run()
    assert.deepEqual(last.disabled, ['carol'])
    assert.equal(await me(carol.cookie), 401)
    const entries = await auditEntriesFor(gw, 'carol')
    assert.equal(entries[0]?.code, 'directory_entry_unreadable')
    assert.ok(logLines.some((line) => line.user === 'carol' && /account disabled/.test(String(line.msg))))
  })

  it('takes a run whose every lookup fails for the directory being down, and disables nobody', async () => {
    const { gw, directory } = fixture
    const alice = await login(gw, 'alice', PASSWORDS.alice!)
    directory.pause()
    try {
      const outcome = await gw.app.directoryCheck!.run()
      assert.ok(outcome.unavailable, 'the run says the directory did not answer')
      assert.deepEqual([outcome.disabled, outcome.unreadable], [[], []])
    } finally {
      directory.resume()
    }
    assert.equal((await gw.fetch(ME, { headers: { cookie: alice.cookie } })).status, 200)
  })
})

describe('a directory that answers a search of its own but fails most lookups', () => {
  const fixture = checkedByHand()

  it('is taken for degraded, not for entries unreadable: run after run, nobody is disabled', async () => {
    const { gw, directory } = fixture
    const people = ['alice', 'bob', 'carol']
    const sessions = await Promise.all(people.map((name) => login(gw, name, PASSWORDS[name]!)))
    // Every entry's answer too large for the gateway, while the user search's base entry still answers.
    for (const name of people) await directory.replaceAttribute(personDn(name), 'givenName', ['G'.repeat(1_200_000)])
    for (let run = 1; run <= UNREADABLE_RUNS + 1; run++) {
      const outcome = await gw.app.directoryCheck!.run()
      assert.deepEqual(outcome.disabled, [], `run ${run}`)
    }
    for (const session of sessions) assert.equal((await gw.fetch(ME, { headers: { cookie: session.cookie } })).status, 200)
  })
})
