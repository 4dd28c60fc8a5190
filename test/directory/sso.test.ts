import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { App } from '../../src/app.ts'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import type { SsoProviderConfig } from '../../src/config/sso.ts'
import { syncSsoAccount } from '../../src/directory/sso-sync.ts'
import { flowSecrets, newFlowKey, SsoRelyingParty, type UpstreamIdentity } from '../../src/directory/sso.ts'
import { DirectoryUnavailable, GatehouseError } from '../../src/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { appOnTempStore } from '../helpers/app.ts'

const base = { name: 'corp', label: 'Corp', issuer: 'https://id.example.com/realms/corp', client_id: 'gatehouse', client_secret: 's' }

function problems(sso: unknown): string[] {
  try {
    validateConfig({ sso })
    return []
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
}

describe('single sign-on configuration', () => {
  it('has defaults for a standard OpenID Connect provider, and no providers by default', () => {
    const [provider] = validateConfig({ sso: [base] }).sso
    assert.deepEqual(provider!.scopes, ['openid', 'profile', 'email'])
    assert.deepEqual(provider!.claims, { username: 'preferred_username', email: 'email', first_name: 'given_name', last_name: 'family_name', groups: 'groups' })
    assert.equal(provider!.allow_insecure_http, false)
    assert.deepEqual(validateConfig({}).sso, [])
  })

  it('reports every mistake at once', () => {
    const found = problems([
      { ...base, issuer: 'http://id.example.com', client_secret_env: 'ALSO', scopes: ['profile'] },
      { ...base, name: 'Corp ID', client_secret: undefined, token_endpoint_auth_method: 'client_secret_post' },
      { ...base, unknown: true },
    ])
    for (const path of ['sso.0.issuer', 'sso.0.client_secret', 'sso.0.scopes', 'sso.1.name', 'sso.1.token_endpoint_auth_method', 'sso.2']) {
      assert.ok(found.some((p) => p.startsWith(path + ':')), `${path} in ${found.join(' | ')}`)
    }
    assert.ok(problems([base, base]).some((p) => p.startsWith('sso.1.name:') && p.includes('duplicate')))
  })

  it('allows an http issuer only when told to', () => {
    assert.deepEqual(problems([{ ...base, issuer: 'http://127.0.0.1:9000', allow_insecure_http: true }]), [])
  })

  it('allows an http issuer only on a loopback host, since its codes and tokens cross the network in clear', () => {
    for (const issuer of ['http://127.0.0.1:9000', 'http://127.8.9.10/realms/x', 'http://localhost:8080', 'http://LOCALHOST', 'http://[::1]:9000', 'https://id.example.com']) {
      assert.deepEqual(problems([{ ...base, issuer, allow_insecure_http: true }]), [], issuer)
    }
    for (const issuer of ['http://id.example.com', 'http://10.0.0.5:8080', 'http://128.0.0.1', 'http://[::2]', 'http://localhost.example.com', 'http://127.0.0.1.nip.io']) {
      assert.deepEqual(problems([{ ...base, issuer, allow_insecure_http: true }]),
        ['sso.0.issuer: must be https:// (allow_insecure_http allows http:// only on a loopback host: 127.0.0.0/8, ::1 or localhost)'], issuer)
    }
  })

  it('reads the client secret from the environment, and refuses to start without it', () => {
    const [config] = validateConfig({ sso: [{ ...base, client_secret: undefined, client_secret_env: 'TEST_SSO_SECRET' }] }).sso
    assert.throws(() => new SsoRelyingParty(config!, {}), ConfigError)
    assert.ok(new SsoRelyingParty(config!, { TEST_SSO_SECRET: 'x' }))
  })
})

describe('single sign-on flow secrets', () => {
  it('derives state, nonce and a valid PKCE verifier from the cookie key, different for every key', () => {
    const key = newFlowKey()
    assert.match(key, /^[A-Za-z0-9_-]{43}$/)
    const secrets = flowSecrets(key)
    assert.deepEqual(flowSecrets(key), secrets, 'the callback derives the same values')
    assert.equal(new Set(Object.values(secrets)).size, 3)
    // RFC 7636 section 4.1: 43-128 unreserved characters.
    assert.match(secrets.codeVerifier, /^[A-Za-z0-9._~-]{43,128}$/)
    assert.notEqual(flowSecrets(newFlowKey()).state, secrets.state)
  })
})

describe('single sign-on accounts', () => {
  const made = appOnTempStore()
  let store: Store
  let app: App
  before(() => ({ store, app } = made))

  const provider = (extra: Record<string, unknown> = {}): SsoProviderConfig => validateConfig({ sso: [{ ...base, ...extra }] }).sso[0]!
  const identity = (subject: string, claims: Record<string, unknown>): UpstreamIdentity => ({ issuer: base.issuer, subject, claims: { sub: subject, ...claims }, freshLogin: false })
  const codeOf = async (promise: Promise<unknown>) => {
    try {
      await promise
    } catch (error) {
      assert.ok(error instanceof GatehouseError, String(error))
      return error.code
    }
    assert.fail('expected a refusal')
  }

  it('maps configured claims and groups, leaving unmapped flags to administrators', async () => {
    const mapped = provider({
      claims: { username: 'upn', email: 'mail', first_name: 'first', last_name: 'last', groups: 'roles' },
      superuser_groups: ['admins'],
      named_groups: { ops: ['operators', 'sre'], devs: ['developers'] },
    })
    const user = await syncSsoAccount(store, app.accounts, mapped, identity('s-1', { upn: 'ulla', mail: 'not-an-email', first: 'Ulla', last: 'U'.repeat(200), roles: 'sre' }))
    assert.equal(user.username, 'ulla')
    assert.equal(user.source, 'sso')
    assert.equal(user.external, true)
    assert.equal(user.email, '', 'an invalid email is dropped')
    assert.equal(user.firstName, 'Ulla')
    assert.equal(user.lastName.length, 150)
    assert.deepEqual(user.groups, ['ops'], 'a single string counts as one group')
    assert.equal(user.isSuperuser, false)

    const promoted = await syncSsoAccount(store, app.accounts, mapped, identity('s-1', { upn: 'ulla', roles: ['admins', 'developers'] }))
    assert.equal(promoted.id, user.id)
    assert.equal(promoted.isSuperuser, true)
    assert.deepEqual(promoted.groups, ['devs'])

    await app.accounts.update(user.id, { isSuperuser: false })
    const unmapped = await syncSsoAccount(store, app.accounts, provider(), identity('s-1', { preferred_username: 'ulla' }))
    assert.equal(unmapped.isSuperuser, false, 'without superuser_groups the administrator\'s choice stays')
    await app.accounts.update(user.id, { isSuperuser: true })
    assert.equal((await syncSsoAccount(store, app.accounts, provider(), identity('s-1', { preferred_username: 'ulla' }))).isSuperuser, true)
  })

  it('refuses a missing or unusable username claim and creates nothing', async () => {
    const before = await store.users.count()
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-2', {}))), 'sso_username_invalid')
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-2', { preferred_username: 'a b(c)*' }))), 'sso_username_invalid')
    assert.equal(await store.users.count(), before)
  })

  it('removes bidirectional formatting characters from the names a provider sends, which could make text read backwards', async () => {
    const marks = '\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u200E\u200F'
    const user = await syncSsoAccount(store, app.accounts, provider(), identity('s-bidi', {
      preferred_username: 'bidi', given_name: `Mal${marks}lory`, family_name: '\u202Egnp.exe', email: 'm\u202Eal@corp.example',
    }))
    assert.equal(user.firstName, 'Mallory')
    assert.equal(user.lastName, 'gnp.exe')
    assert.equal(user.email, '', 'an address with such a character is none')
  })

  it('refuses a name kept for a client\'s service account, new or renamed to, in any letter case, and changes nothing', async () => {
    const before = await store.users.count()
    for (const name of ['service-account-reports', 'Service-Account-Reports']) {
      assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-svc', { preferred_username: name }))), 'sso_username_invalid')
    }
    assert.equal(await store.users.count(), before)
    const linked = await syncSsoAccount(store, app.accounts, provider(), identity('s-svc', { preferred_username: 'reporter' }))
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-svc', { preferred_username: 'service-account-reports' }))), 'sso_username_invalid')
    assert.equal((await store.users.findById(linked.id))!.username, 'reporter')
  })

  it('answers a first sign-in that meets its own account made a moment ago (not linked yet) as one in progress, not as another person\'s name', async () => {
    // Another sign-in of the same person, between its account's creation and its link.
    const halfway = await app.accounts.create({ username: 'zelda', source: 'sso', external: true })
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-race', { preferred_username: 'zelda' }))), 'sso_login_in_progress')
    await store.sso.link({ issuer: base.issuer, subject: 's-race', userId: halfway.id, provider: base.name })
    assert.equal((await syncSsoAccount(store, app.accounts, provider(), identity('s-race', { preferred_username: 'zelda' }))).id, halfway.id, 'tried again, it signs in')
    // An account of that name linked to another identity is someone else's.
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-other', { preferred_username: 'ZELDA' }))), 'sso_identity_conflict')
  })

  it('refuses a rename onto a name another account has, keeping both accounts as they were', async () => {
    const victor = await syncSsoAccount(store, app.accounts, provider(), identity('s-3', { preferred_username: 'victor' }))
    const local = await app.accounts.create({ username: 'walter', password: 'long-enough-password' })
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-3', { preferred_username: 'walter' }))), 'account_source_conflict')
    assert.equal((await store.users.findById(victor.id))!.username, 'victor')
    assert.equal((await store.users.findById(local.id))!.source, 'local')
  })

  it('refuses a name that is the email address another account signs in with, new or renamed to, and keeps every account as it was', async () => {
    // A realm login by address finds an exact username first: the SSO account, which has no password, would take it.
    const root = await app.accounts.create({ username: 'root', password: 'long-enough-password', email: 'Root@Corp.example' })
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-mail-1', { preferred_username: 'root@corp.example' }))), 'account_source_conflict')
    assert.equal(await store.users.findByUsername('root@corp.example'), undefined, 'no account made')
    const eve = await syncSsoAccount(store, app.accounts, provider(), identity('s-mail-2', { preferred_username: 'eve' }))
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-mail-2', { preferred_username: 'ROOT@corp.example' }))), 'account_source_conflict')
    assert.equal((await store.users.findById(eve.id))!.username, 'eve')
    assert.equal((await store.users.findById(root.id))!.email, 'Root@Corp.example')
    // An SSO account's own address is whatever its provider sent, and is no sign-in name: it takes nothing.
    await syncSsoAccount(store, app.accounts, provider(), identity('s-mail-3', { preferred_username: 'fay', email: 'fay@corp.example' }))
    assert.equal((await syncSsoAccount(store, app.accounts, provider(), identity('s-mail-4', { preferred_username: 'fay@corp.example' }))).username, 'fay@corp.example')
  })

  it('refuses a new name the directory has, or cannot say about, and keeps a linked account\'s own name without asking', async () => {
    const directory = (answer: boolean | 'down') => ({
      asked: [] as string[],
      async has(username: string) {
        this.asked.push(username)
        if (answer === 'down') throw new DirectoryUnavailable()
        return answer
      },
    })
    const before = await store.users.count()
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-5', { preferred_username: 'xenia' }), directory(true))), 'account_source_conflict')
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-5', { preferred_username: 'xenia' }), directory('down'))), 'directory_unavailable')
    assert.equal(await store.users.count(), before, 'nothing was created')

    const free = directory(false)
    const xenia = await syncSsoAccount(store, app.accounts, provider(), identity('s-5', { preferred_username: 'xenia' }), free)
    assert.deepEqual(free.asked, ['xenia'])
    const again = directory('down')
    assert.equal((await syncSsoAccount(store, app.accounts, provider(), identity('s-5', { preferred_username: 'xenia' }), again)).id, xenia.id)
    assert.deepEqual(again.asked, [], 'a name the account has already is not asked about')
    assert.equal(await codeOf(syncSsoAccount(store, app.accounts, provider(), identity('s-5', { preferred_username: 'yusuf' }), directory(true))), 'account_source_conflict')
    assert.equal((await store.users.findById(xenia.id))!.username, 'xenia', 'no rename onto a directory name')
  })

  it('makes a new account when the linked one was deleted', async () => {
    const first = await syncSsoAccount(store, app.accounts, provider(), identity('s-4', { preferred_username: 'yara' }))
    await app.accounts.delete(first.id)
    assert.equal(await store.sso.findIdentity(base.issuer, 's-4'), undefined, 'the link went with the account')
    const second = await syncSsoAccount(store, app.accounts, provider(), identity('s-4', { preferred_username: 'yara' }))
    assert.notEqual(second.id, first.id)
    assert.equal((await store.sso.findIdentity(base.issuer, 's-4'))!.userId, second.id)
  })
})
