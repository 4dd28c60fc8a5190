import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { openStore } from '../../src/store/store.ts'
import { ADMIN_PASSWORD, adminAuth, json, runCli, spawnGateway, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { realmWith, tokenRequest } from '../helpers/oidc.ts'
import { awxkitOauth2Token } from '../helpers/platform-clients.ts'

/** rita, a member of the organization Research, dora, a disabled member of it, and otto, a member of nothing. */
async function seedUsers(dir: string): Promise<void> {
    const store = await openStore({ dataDir: dir })
    const research = await store.access.createOrganization({ name: 'Research' })
    const member = await store.users.create({ username: 'rita' })
    await store.users.create({ username: 'otto' })
    const role = (await store.access.findRoleDefinitionByName('Organization Member'))!
    await store.access.assign({ roleDefinitionId: role.id, actor: 'user', actorId: member.id, objectType: 'organization', objectId: research.id })
    const disabled = await store.users.create({ username: 'dora', isActive: false })
    await store.access.assign({ roleDefinitionId: role.id, actor: 'user', actorId: disabled.id, objectType: 'organization', objectId: research.id })
    await store.close()
}

describe('bin/gatehouse access check', () => {
  const dir = tempDir()
  const check = (...args: string[]) => runCli(['access', 'check', ...args, '--config', demoConfigFile, '--data-dir', dir])

  before(async () => {
    await seedUsers(dir)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('prints the allowing rule and the user\'s memberships, for the account named in any letter case', async () => {
    for (const name of ['rita', 'RITA']) {
      const result = await check(name, 'GET', '/api/eda/v1/activations/')
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /organizations: Research/)
      assert.match(result.stdout, /decision: allow by rule 4: allow organizations=Research methods=GET,HEAD,OPTIONS/)
    }
  })

  it('exits 1 and says no rule matched when the request is refused', async () => {
    const result = await check('rita', 'post', '/api/eda/v1/activations/')
    assert.equal(result.code, 1)
    assert.match(result.stdout, /decision: deny \(no rule matched\)/)
    assert.equal((await check('otto', 'GET', '/api/eda/v1/admin/x')).code, 1)
    assert.match((await check('otto', 'GET', '/api/eda/v1/admin/x')).stdout, /deny by rule 2: deny paths=\/api\/eda\/v1\/admin\/\*/)
  })

  it('judges a path spelled with escapes or doubled slashes as the gateway does, and says which paths it refuses', async () => {
    // The gateway merges runs of slashes before it routes, and the rules judge the path with its escapes decoded.
    for (const spelling of ['/api/eda/v1/%61dmin/x', '/api/eda//v1/admin/x', '//api/eda/v1/admin/x', '/api/eda/v1/admin/x?a=1']) {
      const result = await check('rita', 'GET', spelling)
      assert.equal(result.code, 1, `${spelling}: ${result.stdout}${result.stderr}`)
      assert.match(result.stdout, /deny by rule 2: deny paths=\/api\/eda\/v1\/admin\/\*/, spelling)
    }
    // Paths the gateway answers with 400 before any rule: said so, exit 1, as the request is refused.
    for (const [spelling, code] of [['/api/eda/v1/../v1/admin/x', 'unsafe_path'], ['/api/eda/v1/a%2Fb', 'unsafe_path'], ['/api/eda/v1/%ZZ', 'malformed_escape']]) {
      const result = await check('rita', 'GET', spelling!)
      assert.equal(result.code, 1, `${spelling}: ${result.stdout}${result.stderr}`)
      assert.match(result.stdout, new RegExp(`decision: deny \\(the gateway refuses this path: 400 ${code}`), spelling)
    }
  })

  it('says a service without rules lets every signed-in caller through', async () => {
    const result = await check('otto', 'DELETE', '/api/controller/v2/hosts/1/')
    assert.equal(result.code, 0)
    assert.match(result.stdout, /no access rules/)
    // The gateway without gateway.access: a user route lets every signed-in caller through, for its own reason.
    const own = await check('otto', 'GET', '/api/gateway/v1/me/')
    assert.equal(own.code, 0)
    assert.match(own.stdout, /decision: allow \(the gateway has no access rules/)
    assert.doesNotMatch(own.stdout, /session/)
  })

  it('refuses what the gateway refuses before the rules: a credential type the place does not accept, a read token\'s writes', async () => {
    const readToken = await check('otto', 'DELETE', '/api/controller/v2/hosts/1/', '--auth-method', 'token', '--scope', 'read')
    assert.equal(readToken.code, 1, readToken.stdout)
    assert.match(readToken.stdout, /decision: deny \(This token is read-only: it allows GET, HEAD and OPTIONS only\.\)/)
    const ownApi = await check('otto', 'POST', '/api/gateway/v1/tokens/', '--auth-method', 'token', '--scope', 'read')
    assert.equal(ownApi.code, 1, ownApi.stdout)
    assert.equal((await check('otto', 'GET', '/api/controller/v2/hosts/1/', '--auth-method', 'token', '--scope', 'read')).code, 0)
    assert.equal((await check('otto', 'DELETE', '/api/controller/v2/hosts/1/', '--auth-method', 'token', '--scope', 'write')).code, 0)
    // An OIDC token is held to read when it carries read and not write (an OAuth2 application's), and not otherwise.
    assert.equal((await check('otto', 'GET', '/demo-app/x', '--client', 'platform/end-users', '--scope', 'openid', 'profile')).code, 0)
    const notAccepted = await check('otto', 'GET', '/demo-app/x', '--auth-method', 'token')
    assert.equal(notAccepted.code, 1, notAccepted.stdout)
    assert.match(notAccepted.stdout, /decision: deny \(the service does not accept token credentials; it accepts: oidc, basic\)/)
  })

  it('says a disabled account is refused wherever its rules would let it in, and lets it reach public paths', async () => {
    const refused = await check('dora', 'GET', '/api/eda/v1/activations/')
    assert.equal(refused.code, 1)
    assert.match(refused.stdout, /decision: deny \(the account is disabled\)/)
    assert.doesNotMatch(refused.stdout, /decision: allow/)
    // A public path lets anyone in: the gateway answers a disabled account's credential there as no credential.
    const open = await check('dora', 'GET', '/api/controller/v2/ping/')
    assert.equal(open.code, 0)
    assert.match(open.stdout, /decision: allow \(a public path/)
  })

  it('refuses an unknown user or a path no service serves as usage mistakes', async () => {
    assert.equal((await check('nobody', 'GET', '/api/eda/')).code, 2)
    assert.equal((await check('otto', 'GET', '/nowhere/')).code, 2)
    const notAPath = await check('otto', 'GET', 'api/eda/')
    assert.equal(notAPath.code, 2)
    assert.match(notAPath.stderr, /no service or gateway path at api\/eda\//)
  })

  it('refuses a client address that is not an IP address as a usage mistake', async () => {
    const result = await check('rita', 'GET', '/api/eda/v1/activations/', '--address', 'office')
    assert.equal(result.code, 2)
    assert.equal(result.stderr, 'gatehouse: --address must be an IP address, got "office"\n')
    const client = await runCli(['access', 'check-client', 'rita', 'platform/end-users', '--address', '10.0.0', '--config', demoConfigFile, '--data-dir', dir])
    assert.equal(client.code, 2)
    assert.match(client.stderr, /--address must be an IP address/)
  })

  it('says a service path is served by no service, and how to give the configuration when none was given', async () => {
    const withoutConfig = await runCli(['access', 'check', 'otto', 'GET', '/api/eda/v1/activations/', '--data-dir', dir])
    assert.equal(withoutConfig.code, 2)
    assert.equal(withoutConfig.stderr, 'gatehouse: no service or gateway API route at GET /api/eda/v1/activations/ (the configuration has no services: give the one the gateway runs with --config, or --demo for the demo\'s)\n')
    // The demo's configuration, as `serve --demo` (npm start) reads it.
    const demo = await runCli(['access', 'check', 'rita', 'GET', '/api/eda/v1/activations/', '--demo', '--data-dir', dir])
    assert.notEqual(demo.code, 2, demo.stderr)
    assert.match(demo.stdout, /eda/)
    const unknownService = await check('otto', 'GET', '/api/nothing/')
    assert.equal(unknownService.code, 2)
    assert.equal(unknownService.stderr, 'gatehouse: no service or gateway API route at GET /api/nothing/\n')
  })
})

describe('bin/gatehouse access check of a POST naming another method', () => {
  const dir = tempDir()
  const config = join(dir, 'gatehouse.yaml')
  const check = (...args: string[]) => runCli(['access', 'check', ...args, '--config', config, '--data-dir', dir])

  before(async () => {
    writeFileSync(config, [
      'services:',
      '  - name: things',
      '    prefix: /things/',
      '    upstream: "http://127.0.0.1:9"',
      '    access:',
      '      - { deny: { methods: [DELETE] } }',
      '      - { allow: { organizations: [Research] } }',
      '  - { name: plain, prefix: /plain/, upstream: "http://127.0.0.1:9", method_override_parameter: false, access: [{ deny: { methods: [DELETE] } }, { allow: {} }] }',
    ].join('\n'))
    await seedUsers(dir)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('judges the method the query names in the service\'s override parameter as the gateway does', async () => {
    assert.match((await check('rita', 'POST', '/things/x')).stdout, /decision: allow by rule 2/)
    for (const query of ['_method=DELETE', '_method=delete', 'a=1;_method=DELETE']) {
      const refused = await check('rita', 'POST', `/things/x?${query}`)
      assert.equal(refused.code, 1, query)
      assert.match(refused.stdout, /decision: deny by rule 1: deny methods=DELETE \(.*names the method DELETE in _method/i, query)
    }
    assert.equal((await check('rita', 'POST', '/things/x?_method=PATCH')).code, 0, 'a method the rules let in')
    assert.equal((await check('rita', 'GET', '/things/x?_method=DELETE')).code, 0, 'only a POST names one')
    assert.equal((await check('rita', 'POST', '/plain/x?_method=DELETE')).code, 0, 'a service that takes no override parameter')
  })
})

describe('bin/gatehouse access check for the gateway\'s own paths, and check-client for realm clients', () => {
  const dir = tempDir()
  const config = join(dir, 'gatehouse.yaml')
  const run = (...args: string[]) => runCli(['access', ...args, '--config', config, '--data-dir', dir])

  before(async () => {
    writeFileSync(config, [
      'services:',
      '  - { name: api, prefix: /api/things/, upstream: "http://127.0.0.1:9" }',
      'gateway:',
      '  access:',
      '    - { allow: { superuser: true } }',
      '    - { allow: { organizations: [Research] } }',
      'realms:',
      '  - name: platform',
      '    clients:',
      '      - { client_id: console, public_client: true, direct_access_grants: true, access: [{ allow: { organizations: [Research] } }], roles: { researcher: [{ allow: { organizations: [Research] } }], keeper: [{ allow: { superuser: true } }] } }',
      '      - { client_id: other, public_client: true }',
    ].join('\n'))
    await seedUsers(dir)
    const store = await openStore({ dataDir: dir })
    await store.users.create({ username: 'sue', isSuperuser: true })
    await store.users.create({ username: 'audrey', isSystemAuditor: true })
    await store.close()
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('judges the gateway API and the web interface by gateway.access', async () => {
    const allowed = await run('check', 'rita', 'GET', '/api/gateway/v1/me/')
    assert.equal(allowed.code, 0, allowed.stderr)
    assert.match(allowed.stdout, /gateway\.access/)
    assert.match(allowed.stdout, /decision: allow by rule 2: allow organizations=Research/)
    const refused = await run('check', 'otto', 'GET', '/ui/')
    assert.equal(refused.code, 1)
    assert.match(refused.stdout, /decision: deny \(no rule matched\)/)
  })

  it('judges a gateway API route by the access it declares, then by gateway.access, and names the route', async () => {
    // A superusers' route: refused to rita, whom gateway.access would let in elsewhere.
    const refused = await run('check', 'rita', 'POST', '/api/gateway/v1/applications/')
    assert.equal(refused.code, 1, refused.stderr)
    assert.match(refused.stdout, /route POST \/api\/gateway\/v1\/applications\/: superusers/)
    assert.match(refused.stdout, /built-in check: superusers only .*: deny/)
    assert.match(refused.stdout, /decision: deny \(the route is for superusers/)
    // A superuser passes both; the route is found by its parameters.
    const superuser = await run('check', 'sue', 'DELETE', '/api/gateway/v1/users/5/sessions/')
    assert.equal(superuser.code, 0, superuser.stdout)
    assert.match(superuser.stdout, /route DELETE \/api\/gateway\/v1\/users\/:id\/sessions\/: superusers/)
    assert.match(superuser.stdout, /built-in check: .*: allow/)
    assert.match(superuser.stdout, /decision: allow by rule 1/)
    // A Platform Auditor may read a superusers' route, not change it; gateway.access still judges the read.
    const auditorReads = await run('check', 'audrey', 'GET', '/api/gateway/v1/settings/')
    assert.equal(auditorReads.code, 1)
    assert.match(auditorReads.stdout, /built-in check: .*: allow/)
    assert.match(auditorReads.stdout, /decision: deny \(no rule matched\)/)
    const auditorWrites = await run('check', 'audrey', 'PATCH', '/api/gateway/v1/settings/')
    assert.equal(auditorWrites.code, 1)
    assert.match(auditorWrites.stdout, /built-in check: .*: deny/)
    // Ending one's own session is never refused by gateway.access; the API root is public.
    const logout = await run('check', 'otto', 'POST', '/api/gateway/v1/logout/')
    assert.equal(logout.code, 0)
    assert.match(logout.stdout, /gateway\.access does not apply/)
    assert.equal((await run('check', 'otto', 'GET', '/api/')).code, 0)
    // The web interface's administration is for superusers.
    const admin = await run('check', 'rita', 'GET', '/ui/admin/users')
    assert.equal(admin.code, 1)
    assert.match(admin.stdout, /administration: superusers/)
    // A path no route serves, or the wrong method for one, is a usage mistake.
    const nothing = await run('check', 'otto', 'GET', '/api/gateway/v1/nothing/')
    assert.equal(nothing.code, 2)
    assert.match(nothing.stderr, /no gateway API route for GET \/api\/gateway\/v1\/nothing\//)
    assert.equal((await run('check', 'otto', 'DELETE', '/api/gateway/v1/me/')).code, 2)
    // Nor is a path a route's parameters refuse: the gateway answers 404 for it, whoever asks.
    for (const id of ['abc', '0', '99999999999']) {
      const noId = await run('check', 'sue', 'GET', `/api/gateway/v1/users/${id}/`)
      assert.equal(noId.code, 2, `${id}: ${noId.stdout}`)
      assert.match(noId.stderr, /no gateway API route for GET \/api\/gateway\/v1\/users\//)
    }
  })

  it('judges a sign-in to a realm client by the client\'s rules, and shows the client\'s roles the user holds', async () => {
    const allowed = await run('check-client', 'rita', 'platform/console')
    assert.equal(allowed.code, 0, allowed.stderr)
    assert.match(allowed.stdout, /decision: allow/)
    assert.match(allowed.stdout, /^client roles: researcher$/m)
    const refused = await run('check-client', 'otto', 'platform/console')
    assert.equal(refused.code, 1)
    assert.match(refused.stdout, /decision: deny \(No access rule of the client "platform\/console"/)
    assert.match(refused.stdout, /^client roles: \(none\)$/m)
    assert.doesNotMatch((await run('check-client', 'rita', 'platform/other')).stdout, /client roles/, 'a client without roles')
    assert.equal((await run('check-client', 'rita', 'platform/nothing')).code, 2)
    assert.equal((await run('check-client', 'rita', 'console')).code, 2)
  })
})

describe('bin/gatehouse serve with access rules', () => {
  it('warns at start of a rule naming a team that does not exist yet, with its path', async () => {
    const dir = tempDir()
    const config = join(dir, 'gatehouse.yaml')
    writeFileSync(config, [
      'services:',
      '  - { name: api, prefix: /api/things/, upstream: "http://127.0.0.1:9", access: [{ allow: { teams: [Ghosts] } }] }',
    ].join('\n'))
    const gateway = await spawnGateway(['--config', config, '--data-dir', dir])
    try {
      // The warning follows the line that says the gateway listens.
      for (let i = 0; i < 500 && !/Ghosts/.test(gateway.output()); i++) await sleep(20)
      assert.match(gateway.output(), /services\.0\.access\.0\.allow\.teams: no team \\?"Ghosts\\?" yet/)
    } finally {
      await gateway.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bin/gatehouse access check and the running gateway, for OpenID Connect tokens', () => {
  let gw: TestGateway
  let config: string
  // A configured client whose tokens are meant for the gateway's API and demo-app, and the realm offering the platform's scopes.
  const realms = realmWith([{ client_id: 'console', public_client: true, direct_access_grants: true, audiences: ['gateway', 'demo-app'] }], { client_scopes: ['read', 'write'] })

  before(async () => {
    gw = await startGateway({ config: { realms } })
    config = join(gw.dataDir, 'gatehouse.yaml')
    writeFileSync(config, JSON.stringify({ ...loadConfigFile(demoConfigFile), realms }))
  })
  after(() => gw.close())

  it('decides as the gateway does for an OAuth2 application\'s token (--application) and a realm client\'s, by their scopes, at every kind of place', async () => {
    const created = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'cli', client_type: 'public', authorization_grant_type: 'password' }) })
    const application = await json(created)
    assert.equal(created.status, 201, JSON.stringify(application))
    const tokens: { name: string; token: string; args: string[] }[] = []
    for (const scope of ['openid', 'openid write']) {
      const fromApplication = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, scope })
      assert.equal(fromApplication.status, 201, JSON.stringify(fromApplication.body))
      tokens.push({ name: `application, ${scope}`, token: fromApplication.token!, args: ['--application', '--scope', ...scope.split(' ')] })
      const fromClient = await tokenRequest(gw, { client_id: 'console', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope })
      assert.equal(fromClient.status, 200, JSON.stringify(fromClient.body))
      tokens.push({ name: `client, ${scope}`, token: fromClient.body.access_token, args: ['--client', 'platform/console', '--scope', ...scope.split(' ')] })
    }
    // A service taking the realm's tokens, the gateway's own API, and a service taking personal tokens.
    const requests = [['POST', '/demo-app/x'], ['POST', '/api/gateway/v1/tokens/'], ['GET', '/api/controller/v2/hosts/'], ['POST', '/api/controller/v2/hosts/']] as const
    const cases = tokens.flatMap((token) => requests.map(([method, path]) => ({ ...token, method, path })))
    const answers = await Promise.all(cases.map(async ({ name, token, args, method, path }) => {
      const response = await gw.fetch(path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{"scope": "read"}' } : {}) })
      await response.body?.cancel()
      return `${name}: ${method} ${path} ${response.status < 400 ? 'allowed' : 'refused'}`
    }))
    const explained: string[] = []
    for (const { name, args, method, path } of cases) {
      const result = await runCli(['access', 'check', 'admin', method, path, ...args, '--config', config, '--data-dir', gw.dataDir])
      assert.ok(result.code === 0 || result.code === 1, result.stderr)
      explained.push(`${name}: ${method} ${path} ${result.code === 0 ? 'allowed' : 'refused'}`)
    }
    assert.deepEqual(explained, answers)
    // What the gateway decided, so that the comparison is not empty: an application's token writes only with write.
    assert.ok(answers.includes('application, openid: POST /demo-app/x refused'))
    assert.ok(answers.includes('application, openid: GET /api/controller/v2/hosts/ allowed'))
    assert.ok(answers.includes('client, openid: POST /demo-app/x allowed'))
    assert.ok(answers.includes('client, openid: GET /api/controller/v2/hosts/ refused'))
  })

  it('says why a place refuses a token, and refuses --application with another credential type as a usage mistake', async () => {
    const run = (...args: string[]) => runCli(['access', 'check', 'admin', ...args, '--config', config, '--data-dir', gw.dataDir])
    const client = await run('GET', '/api/controller/v2/hosts/', '--client', 'platform/console')
    assert.match(client.stdout, /decision: deny \(the service does not accept a realm client's token \(oidc\); it accepts: basic, session, token \(and, of OpenID Connect tokens, only those of OAuth2 applications\)\)/)
    const readOnly = await run('POST', '/demo-app/x', '--application')
    assert.match(readOnly.stdout, /decision: deny \(This token is read-only/)
    const mixed = await run('GET', '/demo-app/x', '--application', '--auth-method', 'token')
    assert.equal(mixed.code, 2)
    assert.match(mixed.stderr, /--application describes an OpenID Connect token: it goes with --auth-method oidc, not token/)
  })
})

describe('bin/gatehouse access check and the running gateway, for the tokens a place is not meant to take', () => {
  let gw: TestGateway
  let config: string
  const demo = loadConfigFile(demoConfigFile) as { services: Record<string, unknown>[] }
  // `console`'s tokens name the gateway and demo-app; `elsewhere`'s name neither; `other` is a realm of its own.
  const realms = [
    ...realmWith([
      { client_id: 'console', public_client: true, direct_access_grants: true, audiences: ['gateway', 'demo-app'] },
      { client_id: 'elsewhere', public_client: true, direct_access_grants: true },
    ]),
    { name: 'other', clients: [{ client_id: 'other-users', public_client: true, direct_access_grants: true }] },
  ]
  const services = [
    ...demo.services,
    { name: 'other-app', prefix: '/other-app/', upstream: 'builtin:demo', accepts: ['oidc'], oidc: { realm: 'other', client_id: 'other-users' } },
    // A personal token's scope, as rules read it: read-only under /scoped/read/, write everywhere.
    { name: 'scoped', prefix: '/scoped/', upstream: 'builtin:demo', accepts: ['token'], access: [{ allow: { scopes: ['read'], paths: ['/scoped/read/*'] } }, { allow: { scopes: ['write'] } }] },
  ]

  before(async () => {
    gw = await startGateway({ config: { realms, services } })
    config = join(gw.dataDir, 'gatehouse.yaml')
    writeFileSync(config, JSON.stringify({ ...loadConfigFile(demoConfigFile), realms, services }))
  })
  after(() => gw.close())

  /** What the gateway answered for each token at each request, and what `access check` decided, as lines to compare. */
  async function compare(tokens: readonly { name: string; token: string; args: string[] }[], requests: readonly (readonly [string, string])[]) {
    const cases = tokens.flatMap((token) => requests.map(([method, path]) => ({ ...token, method, path })))
    const answers: string[] = []
    const explained: string[] = []
    for (const { name, token, args, method, path } of cases) {
      const response = await gw.fetch(path, { method, headers: { authorization: `Bearer ${token}` } })
      await response.body?.cancel()
      answers.push(`${name}: ${method} ${path} ${response.status < 400 ? 'allowed' : `refused ${response.status}`}`)
      const result = await runCli(['access', 'check', 'admin', method, path, ...args, '--config', config, '--data-dir', gw.dataDir])
      assert.ok(result.code === 0 || result.code === 1, result.stderr)
      explained.push(`${name}: ${method} ${path} ${result.code === 0 ? 'allowed' : `refused ${response.status}`}`)
    }
    assert.deepEqual(explained, answers)
    return answers
  }

  it('refuses a realm client\'s token at a place of another realm or audience, as the gateway answers 401', async () => {
    const tokens = []
    for (const [realm, client] of [['platform', 'end-users'], ['platform', 'console'], ['platform', 'elsewhere'], ['other', 'other-users']] as const) {
      const issued = await gw.fetch(`/realms/${realm}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: client, grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }) })
      const body = await json(issued)
      assert.equal(issued.status, 200, JSON.stringify(body))
      tokens.push({ name: `${realm}/${client}`, token: body.access_token, args: ['--client', `${realm}/${client}`] })
    }
    const answers = await compare(tokens, [['GET', '/demo-app/x'], ['GET', '/other-app/x'], ['GET', '/api/gateway/v1/me/']])
    // What the gateway decided, so that the comparison is not empty.
    assert.ok(answers.includes('platform/end-users: GET /demo-app/x allowed'))
    assert.ok(answers.includes('platform/elsewhere: GET /demo-app/x refused 401'))
    assert.ok(answers.includes('platform/console: GET /other-app/x refused 401'))
    assert.ok(answers.includes('other/other-users: GET /other-app/x allowed'))
    assert.ok(answers.includes('platform/console: GET /api/gateway/v1/me/ allowed'))
    const explained = await runCli(['access', 'check', 'admin', 'GET', '/demo-app/x', '--client', 'platform/elsewhere', '--config', config, '--data-dir', gw.dataDir])
    assert.match(explained.stdout, /decision: deny \(401: The access token is not meant for this service \(aud, azp\)\. The token's realm is platform, its aud and azp name account, elsewhere\)/)
    const otherRealm = await runCli(['access', 'check', 'admin', 'GET', '/other-app/x', '--client', 'platform/end-users', '--config', config, '--data-dir', gw.dataDir])
    assert.match(otherRealm.stdout, /decision: deny \(401: This service does not accept tokens of that realm\./)
  })

  it('decides for a personal token as the gateway does, one made without a scope as a write token, and says so', async () => {
    const tokens = []
    for (const scope of [undefined, 'read', 'write', 'read write']) {
      const created = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(scope === undefined ? {} : { scope }) })
      const body = await json(created)
      assert.equal(created.status, 201, JSON.stringify(body))
      tokens.push({ name: `personal, ${scope ?? 'no scope'}`, token: body.token, args: ['--auth-method', 'token', ...(scope === undefined ? [] : ['--scope', ...scope.split(' ')])] })
    }
    const answers = await compare(tokens, [['GET', '/scoped/read/x'], ['POST', '/scoped/x'], ['GET', '/scoped/x']])
    // What the gateway decided, so that the comparison is not empty: a token made without a scope writes.
    assert.ok(answers.includes('personal, no scope: POST /scoped/x allowed'))
    assert.ok(answers.includes('personal, read: POST /scoped/x refused 403'))
    assert.ok(answers.includes('personal, read: GET /scoped/read/x allowed'))
    const assumed = await runCli(['access', 'check', 'admin', 'GET', '/scoped/x', '--auth-method', 'token', '--config', config, '--data-dir', gw.dataDir])
    assert.match(assumed.stdout, /token scope: write \(no --scope given: a personal token made without one has write; --scope read for a read-only one\)/)
    const notPersonal = await runCli(['access', 'check', 'admin', 'GET', '/scoped/x', '--auth-method', 'token', '--scope', 'openid', '--config', config, '--data-dir', gw.dataDir])
    assert.equal(notPersonal.code, 2)
    assert.match(notPersonal.stderr, /--scope of a personal token \(--auth-method token\) is read or write, not "openid"/)
  })

  it('asks which client a realm token is of, as a usage mistake', async () => {
    const run = (...args: string[]) => runCli(['access', 'check', 'admin', 'GET', '/demo-app/x', ...args, '--config', config, '--data-dir', gw.dataDir])
    const none = await run('--auth-method', 'oidc')
    assert.equal(none.code, 2)
    assert.match(none.stderr, /--auth-method oidc: give --client REALM\/CLIENT_ID/)
    const unknown = await run('--client', 'platform/nobody')
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no realm client "platform\/nobody"/)
    const both = await run('--client', 'platform/end-users', '--application')
    assert.equal(both.code, 2)
    assert.match(both.stderr, /give one of them/)
  })
})
