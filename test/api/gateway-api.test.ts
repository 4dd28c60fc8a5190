import assert from 'node:assert/strict'
import { type IncomingMessage, request } from 'node:http'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login } from '../helpers/session.ts'

describe('the gateway API', () => {
  let gw: TestGateway
  const userAuth = { authorization: basic('user1', 'user1-password') }
  const send = (method: string, path: string, body: unknown, headers: Record<string, string> = adminAuth) =>
    gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'user1', password: 'user1-password' })
  })
  after(() => gw.close())

  describe('public endpoints', () => {
    it('lists the APIs of the configured services at /api/', async () => {
      const body = await json(await gw.fetch('/api/'))
      assert.deepEqual(body.apis, { gateway: '/api/gateway/', controller: '/api/controller/', galaxy: '/api/galaxy/', eda: '/api/eda/', 'demo-app': '/demo-app/' })
    })

    it('answers ping with status, version, server time and database health', async (t) => {
      // A frozen clock: the times the gateway writes can be compared exactly.
      t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
      const body = await json(await gw.fetch('/api/gateway/v1/ping/'))
      assert.equal(body.status, 'good')
      assert.equal(body.db_connected, true)
      assert.match(body.version, /^\d+\.\d+\.\d+/)
      assert.equal(Date.parse(body.pong), Date.now())
    })

    it('says which login methods are enabled at ui_auth/', async () => {
      const body = await json(await gw.fetch('/api/gateway/v1/ui_auth/'))
      assert.equal(body.show_login_form, true)
      assert.equal(body.basic_auth_enabled, true)
      assert.ok(Array.isArray(body.ssos))
    })

    it('answers ui_auth/ with every field the platform\'s ui_auth has, at the platform\'s defaults where Gatehouse has no such setting', async () => {
      const body = await json(await gw.fetch('/api/gateway/v1/ui_auth/'))
      assert.deepEqual(
        { login_redirect_override: body.login_redirect_override, custom_login_info: body.custom_login_info, custom_logo: body.custom_logo, managed_cloud_install: body.managed_cloud_install },
        { login_redirect_override: '', custom_login_info: '', custom_logo: '', managed_cloud_install: false },
      )
    })

    it('publishes the identity JWKS with public keys only', async () => {
      const body = await json(await gw.fetch('/api/gateway/v1/jwks/'))
      assert.equal(body.keys.length, 1)
      assert.equal(body.keys[0].alg, 'ES256')
      assert.equal(body.keys[0].d, undefined)
    })

    it('requires authentication everywhere else', async () => {
      for (const path of ['/api/gateway/v1/me/', '/api/gateway/v1/users/', '/api/gateway/v1/settings/']) {
        const response = await gw.fetch(path)
        assert.equal(response.status, 401, path)
        assert.equal((await json(response)).code, 'not_authenticated')
      }
    })
  })

  describe('users', () => {
    it('returns the caller at me/', async () => {
      const body = await json(await gw.fetch('/api/gateway/v1/me/', { headers: userAuth }))
      assert.equal(body.count, 1)
      assert.equal(body.results[0].username, 'user1')
      assert.equal(body.results[0].is_superuser, false)
    })

    it('lets a superuser create, read, update and delete a user', async () => {
      const created = await send('POST', '/api/gateway/v1/users/', { username: 'dora', password: 'dora-password', email: 'dora@example.com', first_name: 'Dora' })
      assert.equal(created.status, 201)
      const dora = await json(created)
      assert.equal(dora.source, 'local')
      assert.equal(dora.password, '$encrypted$', 'the password is never shown, only that there is one')
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-password') } })).status, 200)

      const read = await json(await gw.fetch(`/api/gateway/v1/users/${dora.id}/`, { headers: adminAuth }))
      assert.equal(read.email, 'dora@example.com')
      const updated = await json(await send('PATCH', `/api/gateway/v1/users/${dora.id}/`, { last_name: 'Explorer', is_superuser: true }))
      assert.equal(updated.last_name, 'Explorer')
      assert.equal(updated.is_superuser, true)

      assert.equal((await gw.fetch(`/api/gateway/v1/users/${dora.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
      assert.equal((await gw.fetch(`/api/gateway/v1/users/${dora.id}/`, { headers: adminAuth })).status, 404)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-password') } })).status, 401)
    })

    it('pages the list as {count, next, previous, results}', async () => {
      for (let i = 0; i < 3; i++) await gw.app.accounts.create({ username: `pager${i}` })
      const first = await json(await gw.fetch('/api/gateway/v1/users/?page_size=2', { headers: adminAuth }))
      assert.equal(first.results.length, 2)
      assert.equal(first.previous, null)
      assert.equal(first.next, '/api/gateway/v1/users/?page_size=2&page=2')
      const second = await json(await gw.fetch(first.next, { headers: adminAuth }))
      assert.equal(second.previous, '/api/gateway/v1/users/?page_size=2', 'the first page\'s link has no page, as the platform writes it')
      assert.notEqual(second.results[0].id, first.results[0].id)
      assert.equal(first.count, second.count)
    })

    it('keeps writes to superusers', async () => {
      const response = await send('POST', '/api/gateway/v1/users/', { username: 'sneaky' }, userAuth)
      assert.equal(response.status, 403)
      assert.equal((await json(response)).code, 'permission_denied')
      assert.equal(await gw.store.users.findByUsername('sneaky'), undefined)
    })

    it('refuses a caller who may not use a route before reading the body, and reads a session form\'s own CSRF token', async () => {
      // Without credentials, with wrong ones, or without the right to the route: the refusal, not the body's problem.
      for (const [headers, status] of [[{}, 401], [{ authorization: basic('user1', 'wrong-password') }, 401], [userAuth, 403]] as const) {
        const response = await send('POST', '/api/gateway/v1/users/', '{"username": ', headers)
        assert.equal(response.status, status, JSON.stringify(await json(response)))
      }
      // Nor does it wait for a body that never comes: the refusal is sent while the client still owes a megabyte.
      const { hostname, port } = new URL(gw.url)
      const socket = connect(Number(port), hostname)
      let received = ''
      socket.on('data', (chunk) => (received += chunk))
      socket.write('POST /api/gateway/v1/users/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"username": ')
      try {
        for (let i = 0; i < 300 && !received.includes('\r\n\r\n'); i++) await sleep(50)
        assert.match(received, /^HTTP\/1\.1 401 /)
      } finally {
        socket.destroy()
      }
      // A browser's form carries its CSRF token in the body: read once the session is known to be valid.
      const session = await login(gw, 'user1', 'user1-password')
      const form = (token: string) => gw.fetch('/api/gateway/v1/tokens/', {
        method: 'POST',
        headers: { cookie: session.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ description: 'from a form', csrfmiddlewaretoken: token }).toString(),
      })
      const made = await form(session.csrf)
      assert.equal(made.status, 201, JSON.stringify(await json(made)))
      const forged = await form('x'.repeat(64))
      assert.equal(forged.status, 403)
      assert.equal((await json(forged)).code, 'csrf_token_incorrect')
      const stale = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { cookie: 'gateway_sessionid=stale; csrftoken=' + session.csrf, 'content-type': 'application/x-www-form-urlencoded' }, body: '{' })
      assert.equal(stale.status, 401)
    })

    it('refuses bad input with field errors and changes nothing', async () => {
      const cases: [unknown, string][] = [
        [{ username: 'bad name!' }, 'username'],
        [{ username: 'x'.repeat(151) }, 'username'],
        [{ username: 'ok', email: 'not-an-email' }, 'email'],
        [{ username: 'ok', is_superuser: 'maybe' }, 'is_superuser'],
        [{ username: 'ok', password: '' }, 'password'],
        [{ username: 'ok', shoe_size: 42 }, 'shoe_size'],
        [{}, 'username'],
      ]
      for (const [body, field] of cases) {
        const response = await send('POST', '/api/gateway/v1/users/', body)
        assert.equal(response.status, 400, JSON.stringify(body))
        const error = await json(response)
        assert.equal(error.code, 'invalid')
        assert.ok(field in error.errors, `${field} in ${JSON.stringify(error.errors)}`)
      }
      assert.equal(await gw.store.users.findByUsername('ok'), undefined)
    })

    it('says a missing field is required, in Django REST framework\'s words', async () => {
      const user = await json(await send('POST', '/api/gateway/v1/users/', {}))
      assert.deepEqual(user.errors, { username: ['This field is required.'] })
      const team = await json(await send('POST', '/api/gateway/v1/teams/', { description: 'no name, no organization' }))
      assert.deepEqual(team.errors, { name: ['This field is required.'], organization: ['This field is required.'] })
      const typed = await json(await send('POST', '/api/gateway/v1/teams/', { name: 7, organization: 'first' }))
      assert.notDeepEqual(typed.errors.name, ['This field is required.'], 'a field given with the wrong type is not missing')
      assert.notDeepEqual(typed.errors.organization, ['This field is required.'])
    })

    it('words what is wrong with a field as Django REST framework does', async () => {
      const cases: [string, string, unknown, string, string][] = [
        ['POST', 'users/', { username: 'worded', is_superuser: 'maybe' }, 'is_superuser', 'Must be a valid boolean.'],
        ['POST', 'users/', { username: 5 }, 'username', 'Not a valid string.'],
        // ASCII only (the platform takes letters of any script): the name travels unencoded in X-Gatehouse-User.
        ['POST', 'users/', { username: 'josé' }, 'username', 'Enter a valid username: 1-150 ASCII letters, digits and @ . + - _ only.'],
        ['POST', 'users/', { username: 'worded', last_name: null }, 'last_name', 'This field may not be null.'],
        ['POST', 'users/', { username: 'worded', first_name: 'x'.repeat(151) }, 'first_name', 'Ensure this field has no more than 150 characters.'],
        ['POST', 'users/', { username: 'worded', email: 'not-an-email' }, 'email', 'Enter a valid email address.'],
        // The column's width (Django's EmailField): PostgreSQL refused a longer one with a failure, SQLite stored it.
        ['POST', 'users/', { username: 'worded', email: `${'a'.repeat(64)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.example` }, 'email', 'Ensure this field has no more than 254 characters.'],
        ['PATCH', 'me/', { email: `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.com` }, 'email', 'Ensure this field has no more than 254 characters.'],
        ['POST', 'organizations/', { name: '' }, 'name', 'This field may not be blank.'],
        ['POST', 'role_definitions/', { name: 'worded', permissions: 'shared.view_team' }, 'permissions', 'Expected a list of items but got type "str".'],
        ['POST', 'applications/', { name: 'worded', client_type: 'secretive', authorization_grant_type: 'password' }, 'client_type', '"secretive" is not a valid choice.'],
        ['POST', 'tokens/', { expires_in: true }, 'expires_in', 'A valid integer is required.'],
        ['POST', 'tokens/', { expires_in: 0 }, 'expires_in', 'Ensure this value is greater than or equal to 1.'],
      ]
      for (const [method, path, body, field, message] of cases) {
        const error = await json(await send(method, `/api/gateway/v1/${path}`, body))
        assert.equal(error.code, 'invalid', JSON.stringify(body))
        assert.deepEqual(error.errors[field], [message], `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(error.errors)}`)
      }
    })

    it('ignores the fields the server fills in, as Django REST framework does, and still refuses unknown ones', async () => {
      const { id } = await gw.app.accounts.create({ username: 'read-only-fields', password: 'read-only-fields-password' })
      const before = await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth }))
      const response = await send('PATCH', `/api/gateway/v1/users/${id}/`, { id: id + 1, url: '/elsewhere/', created: before.created, last_name: 'Changed', shoe_size: 42 })
      assert.equal(response.status, 400)
      assert.deepEqual((await json(response)).errors, { shoe_size: ['Unknown field.'] })
      assert.deepEqual(await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth })), before)
    })

    it('ignores query parameters on views that are not lists, as Django REST framework does, and refuses unknown filters on lists', async () => {
      for (const path of ['users/1/', 'settings/all/', 'ping/', 'users/1/access/']) {
        const plain = await json(await gw.fetch(`/api/gateway/v1/${path}`, { headers: adminAuth }))
        const response = await gw.fetch(`/api/gateway/v1/${path}?shoe_size=42`, { headers: adminAuth })
        assert.equal(response.status, 200, path)
        assert.deepEqual(Object.keys(await json(response)), Object.keys(plain), path)
      }
      const list = await gw.fetch('/api/gateway/v1/users/?shoe_size=42', { headers: adminAuth })
      assert.equal(list.status, 400)
      assert.ok((await json(list)).errors.shoe_size)
    })

    it('takes back with PUT and PATCH the body a GET gave, read-only fields and all', async () => {
      const { id } = await gw.app.accounts.create({ username: 'echoed', password: 'echoed-password-1' })
      for (const method of ['PUT', 'PATCH']) {
        const shown = await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth }))
        const response = await send(method, `/api/gateway/v1/users/${id}/`, { ...shown, last_name: `Set by ${method}` })
        const body = await json(response)
        assert.equal(response.status, 200, JSON.stringify(body))
        assert.equal(body.last_name, `Set by ${method}`)
        assert.equal(body.id, id)
      }
    })

    it('takes back on every resource the body a GET gave, as the platform\'s clients send it', async () => {
      const created = async (path: string, body: unknown) => {
        const response = await send('POST', `/api/gateway/v1/${path}`, body)
        assert.equal(response.status, 201, path)
        return (await json(response)).id as number
      }
      const organization = await created('organizations/', { name: 'echoed-organization' })
      const team = await created('teams/', { name: 'echoed-team', organization })
      const role = await created('role_definitions/', { name: 'echoed-role', permissions: ['shared.view_team'], content_type: 'shared.team' })
      const application = await created('applications/', { name: 'echoed-application', organization, client_type: 'confidential', authorization_grant_type: 'password' })
      const token = await created('tokens/', { description: 'echoed' })
      const cases: [string, string[]][] = [
        [`organizations/${organization}/`, ['PATCH', 'PUT']],
        [`teams/${team}/`, ['PATCH', 'PUT']],
        [`role_definitions/${role}/`, ['PATCH', 'PUT']],
        [`applications/${application}/`, ['PATCH', 'PUT']],
        [`tokens/${token}/`, ['PATCH']],
      ]
      for (const [path, methods] of cases) {
        for (const method of methods) {
          const shown = await json(await gw.fetch(`/api/gateway/v1/${path}`, { headers: adminAuth }))
          const response = await send(method, `/api/gateway/v1/${path}`, { ...shown, description: `${method} again` })
          const body = await json(response)
          assert.equal(response.status, 200, `${method} ${path}: ${JSON.stringify(body)}`)
          assert.equal(body.description, `${method} again`)
        }
      }
      const shownToken = await json(await gw.fetch(`/api/gateway/v1/tokens/${token}/`, { headers: adminAuth }))
      const moved = await json(await send('PATCH', `/api/gateway/v1/tokens/${token}/`, { ...shownToken, user: shownToken.user + 1 }))
      assert.deepEqual(moved.errors, { user: ['This field is read-only.'] })
      const shownRole = await json(await gw.fetch(`/api/gateway/v1/role_definitions/${role}/`, { headers: adminAuth }))
      const managed = await json(await send('PATCH', `/api/gateway/v1/role_definitions/${role}/`, { managed: true }))
      assert.deepEqual(managed.errors, { managed: ['This field is read-only.'] })
      assert.deepEqual(await json(await gw.fetch(`/api/gateway/v1/role_definitions/${role}/`, { headers: adminAuth })), shownRole)
    })

    it('creates from a body holding the read-only fields a new object shows, and refuses other values by name', async () => {
      const shown = { source: 'local', external: false, is_system_auditor: false, is_platform_auditor: false, groups: [] }
      const user = await send('POST', '/api/gateway/v1/users/', { username: 'copied-shape', ...shown })
      assert.equal(user.status, 201, JSON.stringify(await user.clone().json()))
      assert.deepEqual((({ source, external, is_system_auditor, is_platform_auditor, groups }) => ({ source, external, is_system_auditor, is_platform_auditor, groups }))(await json(user)), shown)
      assert.equal((await send('POST', '/api/gateway/v1/organizations/', { name: 'copied-organization', managed: false })).status, 201)
      assert.equal((await send('POST', '/api/gateway/v1/role_definitions/', { name: 'copied-role', permissions: ['shared.view_team'], content_type: 'shared.team', managed: false })).status, 201)
      const refused: [string, Record<string, unknown>, string][] = [
        ['users/', { username: 'made-auditor', is_system_auditor: true }, 'is_system_auditor'],
        ['organizations/', { name: 'made-managed', managed: true }, 'managed'],
        ['role_definitions/', { name: 'made-managed', permissions: ['shared.view_team'], content_type: 'shared.team', managed: true }, 'managed'],
      ]
      for (const [path, body, field] of refused) {
        const response = await send('POST', `/api/gateway/v1/${path}`, body)
        assert.equal(response.status, 400, path)
        assert.deepEqual((await json(response)).errors, { [field]: ['This field is read-only.'] })
      }
      assert.equal((await json(await gw.fetch('/api/gateway/v1/users/?username=made-auditor', { headers: adminAuth }))).count, 0)
      assert.equal((await json(await gw.fetch('/api/gateway/v1/organizations/?name=made-managed', { headers: adminAuth }))).count, 0)
      assert.equal((await json(await gw.fetch('/api/gateway/v1/role_definitions/?name=made-managed', { headers: adminAuth }))).count, 0)
    })

    it('refuses a read-only field given a value other than the one shown, and changes nothing', async () => {
      const { id } = await gw.app.accounts.create({ username: 'not-an-auditor', password: 'not-an-auditor-password' })
      const before = await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth }))
      for (const [field, value] of [['is_system_auditor', true], ['source', 'ldap'], ['external', true], ['groups', ['admins']]] as const) {
        const response = await send('PATCH', `/api/gateway/v1/users/${id}/`, { [field]: value, last_name: 'Changed' })
        assert.equal(response.status, 400, field)
        const error = await json(response)
        assert.equal(error.code, 'invalid')
        assert.deepEqual(error.errors, { [field]: ['This field is read-only.'] })
      }
      assert.deepEqual(await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth })), before)
    })

    it('answers malformed JSON, non-object bodies and duplicate usernames clearly', async () => {
      const malformed = await send('POST', '/api/gateway/v1/users/', '{"username": ')
      assert.equal(malformed.status, 400)
      assert.equal((await json(malformed)).code, 'invalid_json')
      const array = await send('POST', '/api/gateway/v1/users/', '[1,2]')
      assert.equal(array.status, 400)
      assert.equal((await json(array)).code, 'invalid')
      const duplicate = await send('POST', '/api/gateway/v1/users/', { username: 'user1' })
      assert.equal(duplicate.status, 400)
      const taken = await json(duplicate)
      assert.equal(taken.code, 'username_taken')
      assert.deepEqual(taken.username, ['A user with that username already exists.'], 'keyed by field at the top level, as Django REST framework writes it')
      const huge = await send('POST', '/api/gateway/v1/users/', JSON.stringify({ username: 'big', email: 'x'.repeat(2 * 1024 * 1024) }))
      assert.equal(huge.status, 413)
      assert.equal((await json(huge)).code, 'payload_too_large')
    })

    it('refuses a username that another account already has in another letter case, on creation and on rename', async () => {
      // A realm login matches names without regard to case (as Keycloak does): two such accounts would make it fail.
      const variant = await send('POST', '/api/gateway/v1/users/', { username: 'USER1' })
      assert.equal(variant.status, 400)
      const taken = await json(variant)
      assert.equal(taken.code, 'username_taken')
      assert.deepEqual(taken.username, ['A user with that username already exists.'])
      assert.equal((await json(await gw.fetch('/api/gateway/v1/users/?username=USER1', { headers: adminAuth }))).count, 0)

      const { id } = await json(await send('POST', '/api/gateway/v1/users/', { username: 'case-renamed' }))
      const rename = await send('PATCH', `/api/gateway/v1/users/${id}/`, { username: 'User1' })
      assert.equal(rename.status, 400)
      assert.deepEqual((await json(rename)).username, ['A user with that username already exists.'])
      const own = await send('PATCH', `/api/gateway/v1/users/${id}/`, { username: 'Case-Renamed' })
      assert.equal(own.status, 200, 'its own name in another case is no clash')
      assert.equal((await json(own)).username, 'Case-Renamed')
    })

    it('answers unknown and malformed ids with 404', async () => {
      for (const id of ['999999', 'abc', '0', '-1', '1e3']) {
        const response = await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth })
        assert.equal(response.status, 404, id)
      }
    })

    it('refuses repeated or malformed paging parameters, and caps a page size above 200 as the platform does', async () => {
      for (const query of ['page=0', 'page_size=0', 'page=x', 'page=1&page=2']) {
        const response = await gw.fetch(`/api/gateway/v1/users/?${query}`, { headers: adminAuth })
        assert.equal(response.status, 400, query)
      }
      for (let i = 0; i < 205; i++) await gw.app.accounts.create({ username: `many${i}` })
      const capped = await gw.fetch('/api/gateway/v1/users/?page_size=1000', { headers: adminAuth })
      assert.equal(capped.status, 200)
      assert.equal((await json(capped)).results.length, 200)
      assert.equal((await json(await gw.fetch('/api/gateway/v1/users/', { headers: adminAuth }))).results.length, 50, 'the platform\'s default page size')
      // An empty page is the first, as Django REST framework's paginator reads it.
      const first = await json(await gw.fetch('/api/gateway/v1/users/?page=&page_size=3', { headers: adminAuth }))
      assert.deepEqual([first.previous, first.next, first.results.length], [null, '/api/gateway/v1/users/?page=2&page_size=3', 3])
    })

    it('does not let a superuser lock themselves out', async () => {
      const me = (await json(await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth }))).results[0]
      const response = await send('PATCH', `/api/gateway/v1/users/${me.id}/`, { is_active: false })
      assert.equal(response.status, 403)
      assert.equal((await json(response)).code, 'self_lockout')
    })
  })

  describe('settings', () => {
    it('shows the defaults to superusers only', async () => {
      const body = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
      assert.equal(body.gateway_basic_auth_enabled, true)
      assert.equal(body.session_cookie_age, 900)
      assert.equal(body.allow_external_users_to_create_oauth2_tokens, false)
      assert.equal(body.oauth2_access_token_expire_seconds, 31536000)
      assert.equal((await gw.fetch('/api/gateway/v1/settings/', { headers: userAuth })).status, 403)
    })

    it('saves valid changes', async () => {
      const body = await json(await send('PATCH', '/api/gateway/v1/settings/', { session_cookie_age: 1800 }))
      assert.equal(body.session_cookie_age, 1800)
      assert.equal((await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))).session_cookie_age, 1800)
    })

    it('refuses wrong types, out-of-range values and unknown keys by field, saving none of the request', async () => {
      const before = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
      const response = await send('PATCH', '/api/gateway/v1/settings/', { session_cookie_age: 59, gateway_basic_auth_enabled: 'maybe', no_such_setting: 1, oauth2_access_token_expire_seconds: 3600 })
      assert.equal(response.status, 400)
      const error = await json(response)
      assert.equal(error.code, 'invalid')
      assert.deepEqual(Object.keys(error.errors).sort(), ['gateway_basic_auth_enabled', 'no_such_setting', 'session_cookie_age'])
      assert.deepEqual(await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth })), before)
    })
  })

  describe('methods and spellings a path does not have', () => {
    const userCount = async () => (await json(await gw.fetch('/api/gateway/v1/users/', { headers: adminAuth }))).count

    it('answers a method the path does not have with 405 naming the methods it has, and changes nothing', async () => {
      const before = await userCount()
      for (const method of ['DELETE', 'PUT', 'PATCH']) {
        const response = await send(method, '/api/gateway/v1/users/', { username: 'never' })
        assert.equal(response.status, 405, method)
        assert.equal(response.headers.get('allow'), 'GET, POST, HEAD, OPTIONS')
        const body = await json(response)
        assert.equal(body.code, 'method_not_allowed')
        assert.match(body.detail, new RegExp(method))
      }
      // fetch refuses to send TRACE.
      const trace = await new Promise<IncomingMessage>((resolve, reject) => request(`${gw.url}/api/gateway/v1/users/`, { method: 'TRACE', headers: adminAuth }, resolve).on('error', reject).end())
      trace.resume()
      assert.equal(trace.statusCode, 405)
      assert.equal(trace.headers.allow, 'GET, POST, HEAD, OPTIONS')
      const revoke = await gw.fetch('/api/gateway/v1/tokens/revoke/', { headers: adminAuth })
      assert.equal(revoke.status, 405)
      assert.equal(revoke.headers.get('allow'), 'POST, OPTIONS')
      assert.equal(await userCount(), before)
    })

    it('asks for credentials before it says which methods a private path has, as the platform does', async () => {
      const anonymous = await gw.fetch('/api/gateway/v1/users/', { method: 'DELETE' })
      assert.equal(anonymous.status, 401)
      assert.equal(anonymous.headers.get('allow'), null)
      const open = await gw.fetch('/api/gateway/v1/ping/', { method: 'POST' })
      assert.equal(open.status, 405)
      assert.equal(open.headers.get('allow'), 'GET, HEAD, OPTIONS')
    })

    it('answers OPTIONS on every path with the methods it has, lists with their metadata too', async () => {
      const list = await gw.fetch('/api/gateway/v1/users/', { method: 'OPTIONS', headers: adminAuth })
      assert.equal(list.headers.get('allow'), 'GET, POST, HEAD, OPTIONS')
      assert.equal((await json(list)).name, 'User List')
      const response = await gw.fetch('/api/gateway/v1/users/1/', { method: 'OPTIONS', headers: adminAuth })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('allow'), 'GET, PUT, PATCH, DELETE, HEAD, OPTIONS')
      assert.deepEqual((await json(response)).renders, ['application/json'])
    })

    it('redirects a GET without the trailing slash to the path with it, and refuses other methods there', async () => {
      const redirected = await gw.fetch('/api/gateway/v1/users?username=admin', { headers: adminAuth })
      assert.equal(redirected.status, 301)
      assert.equal(redirected.headers.get('location'), '/api/gateway/v1/users/?username=admin')
      const before = await userCount()
      const posted = await send('POST', '/api/gateway/v1/users', { username: 'slashless', password: 'slashless-password' })
      assert.equal(posted.status, 404)
      const body = await json(posted)
      assert.equal(body.code, 'not_found')
      assert.match(body.detail, /\/api\/gateway\/v1\/users\//)
      assert.equal(await userCount(), before)
    })
  })
})
