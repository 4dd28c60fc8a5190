import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { realmWith, tokenRequest } from '../helpers/oidc.ts'
import { AwxkitSession, awxkitOauth2Token, CollectionClient } from '../helpers/platform-clients.ts'
import { login } from '../helpers/session.ts'

describe('the platform\'s clients', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  describe('API roots', () => {
    it('answers the roots anonymously with the csrftoken cookie, as the collection\'s first request needs', async () => {
      for (const path of ['/api/', '/api/gateway/', '/api/gateway/v1/']) {
        const response = await gw.fetch(path, { headers: { accept: 'application/json' } })
        assert.equal(response.status, 200, path)
        assert.match(response.headers.get('set-cookie') ?? '', /^csrftoken=[^;]+;/, path)
        await response.json()
      }
      const index = await json(await gw.fetch('/api/gateway/v1/'))
      assert.equal(index.tokens, '/api/gateway/v1/tokens/')
      assert.equal((await json(await gw.fetch('/api/gateway/'))).current_version, '/api/gateway/v1/')
    })

    it('lists in the versioned root every list of objects the collection\'s modules manage, each answering a list', async () => {
      const index = await json(await gw.fetch('/api/gateway/v1/'))
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }
      for (const name of ['users', 'tokens', 'applications', 'settings', 'organizations', 'teams', 'role_definitions', 'role_user_assignments', 'role_team_assignments', 'activitystream']) {
        assert.equal(index[name], `/api/gateway/v1/${name}/`, name)
        const list = await json(await gw.fetch(index[name], { headers: admin }))
        assert.ok(Array.isArray(list.results), `${name}: ${JSON.stringify(list)}`)
      }
    })

    it('serves the demo controller\'s API root anonymously, as the real controller does', async () => {
      const response = await gw.fetch('/api/controller/')
      assert.equal(response.status, 200)
      assert.equal((await json(response)).identity, null)
    })

    it('still asks for credentials below the roots', async () => {
      assert.equal((await gw.fetch('/api/gateway/v1/users/')).status, 401)
      assert.equal((await gw.fetch('/api/controller/v2/hosts/')).status, 401)
    })
  })

  describe('the collection\'s token module', () => {
    const admin = () => new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })

    it('creates a token with username and password, and deletes it by existing_token', async () => {
      const client = admin()
      await client.authenticate()
      const created = await client.send('POST', 'tokens', { description: 'from ansible', scope: 'write' })
      assert.equal(created.status, 201)
      const fact = created.json
      assert.match(fact.token, /^gatehouse_pat_/)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${fact.token}` } })).status, 200)

      assert.equal(await client.deleteIfNeeded(fact), 204)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${fact.token}` } })).status, 401)
    })

    it('deletes a token by existing_token_id, finding exactly that one', async () => {
      const client = admin()
      await client.authenticate()
      const kept = (await client.send('POST', 'tokens', { scope: 'write' })).json
      const doomed = (await client.send('POST', 'tokens', { scope: 'read' })).json
      const found = await client.getOne('tokens', { data: { id: doomed.id } })
      assert.equal(found.id, doomed.id)
      assert.equal(found.token, '$encrypted$')
      assert.equal(await client.deleteIfNeeded(found), 204)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${doomed.token}` } })).status, 401)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${kept.token}` } })).status, 200)
    })

    it('creates a token with an existing token', async () => {
      const first = admin()
      await first.authenticate()
      const existing = (await first.send('POST', 'tokens', { scope: 'write' })).json
      const client = new CollectionClient(gw.url, { token: existing.token })
      await client.authenticate()
      const created = await client.send('POST', 'tokens', { description: 'made with a token', scope: 'write' })
      assert.equal(created.status, 201, JSON.stringify(created.json))
      assert.ok(Date.parse(created.json.expires) <= Date.parse(existing.expires))
    })
  })

  describe('the collection\'s user module', () => {
    it('finds a user by username, creates it, then changes it with the same request a second run sends', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const wanted = { username: 'svc-backup', first_name: 'Backup', last_name: 'Service', email: 'backup@example.com', is_superuser: false, password: 'a-long-service-password' }
      assert.equal(await client.getOne('users', { nameOrId: 'svc-backup', nameField: 'username' }), undefined)
      const created = await client.send('POST', 'users', wanted)
      assert.equal(created.status, 201, JSON.stringify(created.json))
      assert.equal(created.json.username, 'svc-backup')

      const existing = await client.getOne('users', { nameOrId: 'svc-backup', nameField: 'username' })
      assert.equal(existing.id, created.json.id)
      assert.equal((await client.getOne('users', { nameOrId: String(existing.id), nameField: 'username' })).id, existing.id, 'by id through or__id')
      const updated = await client.send('PATCH', existing.url, { ...wanted, last_name: 'Job' })
      assert.equal(updated.status, 200, JSON.stringify(updated.json))
      assert.equal(updated.json.last_name, 'Job')
      assert.equal(updated.json.is_platform_auditor, false)
      const duplicate = await client.send('POST', 'users', wanted)
      assert.equal(duplicate.status, 400)
      assert.deepEqual(duplicate.json.username, ['A user with that username already exists.'])
    })
  })

  describe('the collection\'s organization and team modules', () => {
    /** AAPObject.manage with state present: find by the identity field, POST when missing, PATCH only what differs. */
    const ensure = async (client: CollectionClient, endpoint: string, wanted: Record<string, unknown>, data?: Record<string, number>) => {
      const existing = await client.getOne(endpoint, { nameOrId: String(wanted.name), data })
      if (!existing) {
        const created = await client.send('POST', endpoint, wanted)
        assert.equal(created.status, 201, JSON.stringify(created.json))
        return { changed: true, item: created.json }
      }
      const differs = Object.entries(wanted).some(([field, value]) => JSON.stringify(existing[field]) !== JSON.stringify(value))
      if (!differs) return { changed: false, item: existing }
      const patched = await client.send('PATCH', existing.url, wanted)
      assert.equal(patched.status, 200, JSON.stringify(patched.json))
      return { changed: true, item: patched.json }
    }

    it('creates, finds by name, renames and deletes an organization, and a second run changes nothing', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const first = await ensure(client, 'organizations', { name: 'Engineering', description: 'builds things' })
      assert.equal(first.changed, true)
      assert.equal(first.item.name, 'Engineering')
      const second = await ensure(client, 'organizations', { name: 'Engineering', description: 'builds things' })
      assert.equal(second.changed, false)
      assert.equal(second.item.id, first.item.id)
      assert.equal((await client.getOne('organizations', { nameOrId: String(first.item.id) })).id, first.item.id, 'by id through or__id')

      const existing = await client.getOne('organizations', { nameOrId: 'Engineering' })
      const renamed = await client.send('PATCH', existing.url, { name: 'Platform Engineering', description: 'builds things' })
      assert.equal(renamed.status, 200, JSON.stringify(renamed.json))
      assert.equal(await client.getOne('organizations', { nameOrId: 'Engineering' }), undefined)
      const found = await client.getOne('organizations', { nameOrId: 'Platform Engineering' })
      assert.equal(found.id, first.item.id)

      assert.equal(await client.deleteIfNeeded(found), 204)
      assert.equal(await client.getOne('organizations', { nameOrId: 'Platform Engineering' }), undefined, 'a second absent run finds nothing to delete')
    })

    it('creates a team in an organization found by name, refuses new_organization, and deletes it', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const home = (await ensure(client, 'organizations', { name: 'Home Org' })).item
      const other = (await ensure(client, 'organizations', { name: 'Other Org' })).item
      const lookupOrganization = async (name: string) => {
        const organization = await client.getOne('organizations', { nameOrId: name })
        assert.ok(organization, `the module fails when organization ${name} does not exist`)
        return organization
      }

      const organization = await lookupOrganization('Home Org')
      const first = await ensure(client, 'teams', { name: 'Operators', description: 'on call', organization: organization.id }, { organization: organization.id })
      assert.equal(first.changed, true)
      assert.equal(first.item.organization, home.id)
      assert.equal(first.item.summary_fields.organization.name, 'Home Org')
      const second = await ensure(client, 'teams', { name: 'Operators', description: 'on call', organization: organization.id }, { organization: organization.id })
      assert.equal(second.changed, false)
      assert.equal(second.item.id, first.item.id)
      assert.equal(await client.getOne('teams', { nameOrId: 'Operators', data: { organization: other.id } }), undefined, 'a team is found only in its organization')

      const stays = await client.getOne('teams', { nameOrId: 'Operators', data: { organization: organization.id } })
      const moved = await client.send('PATCH', stays.url, { name: 'Operators', organization: (await lookupOrganization('Other Org')).id })
      assert.equal(moved.status, 400, 'new_organization is refused: a team stays in its organization (docs/api.md)')
      assert.ok(moved.json.organization, JSON.stringify(moved.json))
      assert.equal((await client.getOne('teams', { nameOrId: 'Operators', data: { organization: home.id } })).id, first.item.id)

      const existing = await client.getOne('teams', { nameOrId: 'Operators', data: { organization: home.id } })
      assert.equal(await client.deleteIfNeeded(existing), 204)
      assert.equal(await client.getOne('teams', { nameOrId: 'Operators', data: { organization: home.id } }), undefined)
      const missingOrganization = await client.send('POST', 'teams', { name: 'Orphans', organization: 999999 })
      assert.equal(missingOrganization.status, 400, JSON.stringify(missingOrganization.json))
      assert.ok(missingOrganization.json.organization, JSON.stringify(missingOrganization.json))
    })

    it('the user module makes a user a Platform Auditor, leaves it on a second run and takes it away', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const created = await client.send('POST', 'users', { username: 'auditor-to-be', password: 'an-auditor-password-1' })
      assert.equal(created.status, 201, JSON.stringify(created.json))
      /** audit_user: look the user and the role up, then assign or remove it as is_platform_auditor asks. */
      const auditUser = async (wanted: boolean) => {
        const user = await client.getOne('users', { nameOrId: 'auditor-to-be', nameField: 'username' })
        const role = await client.getOne('role_definitions', { nameOrId: 'Platform Auditor' })
        assert.ok(role, 'role_definitions/?name=Platform Auditor finds the role')
        if (wanted && !user.is_platform_auditor) {
          const assigned = await client.send('POST', 'role_user_assignments/', { role_definition: role.id, user: user.id })
          assert.equal(assigned.status, 201, JSON.stringify(assigned.json))
          return true
        }
        if (!wanted && user.is_platform_auditor) {
          const assignment = await client.getOne('role_user_assignments', { data: { role_definition: role.id, user: user.id } })
          assert.ok(assignment, 'the assignment is found by role_definition and user')
          const removed = await client.send('DELETE', `role_user_assignments/${assignment.id}`)
          assert.equal(removed.status, 204, JSON.stringify(removed.json))
          return true
        }
        return false
      }
      assert.equal(await auditUser(true), true)
      assert.equal((await client.getOne('users', { nameOrId: 'auditor-to-be', nameField: 'username' })).is_platform_auditor, true)
      assert.equal(await auditUser(true), false, 'a second run changes nothing')
      assert.equal(await auditUser(false), true)
      assert.equal((await client.getOne('users', { nameOrId: 'auditor-to-be', nameField: 'username' })).is_platform_auditor, false)
      assert.equal(await auditUser(false), false)
    })

    it('the user module adds a user to organizations through the Organization Member role', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const organization = (await ensure(client, 'organizations', { name: 'Members Org' })).item
      const user = (await client.send('POST', 'users', { username: 'org-member', password: 'an-org-member-password-1' })).json
      const role = await client.getOne('role_definitions', { nameOrId: 'Organization Member' })
      assert.ok(role, 'role_definitions/?name=Organization Member finds the role')
      const assigned = await client.send('POST', 'role_user_assignments', { object_id: organization.id, user: user.id, role_definition: role.id })
      assert.ok([200, 201].includes(assigned.status), JSON.stringify(assigned.json))
      const found = await client.getOne('role_user_assignments', { data: { role_definition: role.id, user: user.id, object_id: organization.id } })
      assert.equal(found.id, assigned.json.id)
    })
  })

  describe('the collection\'s settings module', () => {
    it('reads settings/all/, compares by the names it was given, and PUTs the differences', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      // As the module's examples name them, among them the platform's `password_min_length`.
      const wanted = { SESSION_COOKIE_AGE: 3600, ALLOW_OAUTH2_FOR_EXTERNAL_USERS: true, OAUTH2_PROVIDER: { ACCESS_TOKEN_EXPIRE_SECONDS: 7200 }, password_min_length: 14, gateway_basic_auth_enabled: true }
      const existing = (await client.send('GET', 'settings/all')).json
      for (const name of Object.keys(wanted)) assert.ok(name in existing, `${name} is readable under the name the module compares`)
      const changed = Object.fromEntries(Object.entries(wanted).filter(([name, value]) => JSON.stringify(existing[name]) !== JSON.stringify(value)))
      assert.deepEqual(Object.keys(changed).sort(), ['ALLOW_OAUTH2_FOR_EXTERNAL_USERS', 'OAUTH2_PROVIDER', 'SESSION_COOKIE_AGE', 'password_min_length'])
      const saved = await client.send('PUT', 'settings/all', changed)
      assert.equal(saved.status, 200, JSON.stringify(saved.json))
      // main() of plugins/modules/settings.py reads response["json"][name] for each name it sent.
      for (const [name, value] of Object.entries(changed)) assert.deepEqual(saved.json[name], value, `the answer carries ${name}`)
      assert.equal(gw.app.settings.current.session_cookie_age, 3600)
      assert.equal(gw.app.settings.current.allow_external_users_to_create_oauth2_tokens, true)
      assert.equal(gw.app.settings.current.oauth2_access_token_expire_seconds, 7200)
      assert.equal(gw.app.settings.current.local_password_min_length, 14)
      const again = (await client.send('GET', 'settings/all')).json
      for (const [name, value] of Object.entries(wanted)) assert.deepEqual(again[name], value, `a second run finds ${name} unchanged`)
    })

    it('lists the categories, all first, and reverts a category to its defaults with DELETE', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const index = (await client.send('GET', 'settings')).json
      assert.equal(index.results[0].slug, 'all')
      assert.equal(index.results[0].url, '/api/gateway/v1/settings/all/')
      assert.equal(index.count, index.results.length)
      const session = (await client.send('PATCH', 'settings/session', { SESSION_COOKIE_AGE: 1200 })).json
      assert.deepEqual(Object.keys(session).sort(), ['SESSION_COOKIE_AGE', 'session_cookie_age', 'sessions_per_user_limit'])
      assert.equal((await client.send('DELETE', 'settings/session')).status, 204)
      assert.equal(gw.app.settings.current.session_cookie_age, 900)
    })

    it('refuses unknown names, names of another category and two names that disagree, saving nothing', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const before = (await client.send('GET', 'settings/all')).json
      for (const [path, body, field] of [
        ['settings/all', { CUSTOM_LOGIN_INFO: 'hello', session_cookie_age: 1000 }, 'CUSTOM_LOGIN_INFO'],
        ['settings/session', { gateway_basic_auth_enabled: false }, 'gateway_basic_auth_enabled'],
        ['settings/all', { SESSION_COOKIE_AGE: 1000, session_cookie_age: 2000 }, 'SESSION_COOKIE_AGE'],
        ['settings/all', { OAUTH2_PROVIDER: { REFRESH_TOKEN_EXPIRE_SECONDS: 5 } }, 'OAUTH2_PROVIDER.REFRESH_TOKEN_EXPIRE_SECONDS'],
        ['settings/all', { OAUTH2_PROVIDER: { ACCESS_TOKEN_EXPIRE_SECONDS: 'soon' } }, 'OAUTH2_PROVIDER.ACCESS_TOKEN_EXPIRE_SECONDS'],
      ] as const) {
        const refused = await client.send('PATCH', path, body)
        assert.equal(refused.status, 400, JSON.stringify(body))
        assert.ok(refused.json[field], `${field} in ${JSON.stringify(refused.json)}`)
      }
      assert.deepEqual((await client.send('GET', 'settings/all')).json, before)
      assert.equal((await client.send('GET', 'settings/nonsense')).status, 404)
    })
  })

  describe('the collection\'s gateway_api lookup', () => {
    /** LookupModule.run: GET the endpoint with query_params urlencoded (Python's True as `True`), then with return_all each `next`. */
    const lookup = async (client: CollectionClient, endpoint: string, query: Record<string, string | number> = {}, options: { returnAll?: boolean } = {}) => {
      const first = await client.send('GET', endpoint, {}, query)
      assert.equal(first.status, 200, JSON.stringify(first.json))
      const data = first.json
      if (options.returnAll && 'results' in data) {
        for (let next = data.next; next !== null; ) {
          const page = (await client.send('GET', next)).json
          data.results.push(...page.results)
          next = page.next
        }
      }
      return 'results' in data ? data.results : [data]
    }

    it('filters with Python\'s booleans, walks every page, and reads a detail view', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      for (const name of ['Lookup A', 'Lookup B', 'Lookup C']) assert.equal((await client.send('POST', 'organizations', { name })).status, 201)
      const admins = await lookup(client, 'users', { is_superuser: 'True' })
      assert.deepEqual(admins.map((user: { username: string }) => user.username), ['admin'])
      const all = await lookup(client, 'organizations', { name__startswith: 'Lookup', page_size: 2 }, { returnAll: true })
      assert.deepEqual(all.map((organization: { name: string }) => organization.name), ['Lookup A', 'Lookup B', 'Lookup C'])
      const [detail] = await lookup(client, `organizations/${all[0].id}`)
      assert.equal(detail.name, 'Lookup A')
      assert.equal(detail.summary_fields.resource, undefined, 'no resource registry: object_ansible_id lookups are not served (docs/access.md)')
    })
  })

  describe('objects and errors in the platform\'s shapes', () => {
    it('says in detail why an ansible_id is refused, in a body or a lookup: the collection shows only detail', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const ansibleId = '5c8e1b0a-2f0d-4f59-a0b1-6f1f2d3c4b5a'
      const refusals = [
        await client.send('POST', 'role_user_assignments', { role_definition: 1, user: 1, object_ansible_id: ansibleId }),
        await client.send('POST', 'role_team_assignments', { role_definition: 1, team_ansible_id: ansibleId, object_id: 1 }),
        await client.send('GET', 'role_user_assignments', undefined, { object_ansible_id: ansibleId }),
        await client.send('GET', 'role_user_assignments', undefined, { user_ansible_id__in: ansibleId }),
      ]
      for (const [i, refusal] of refusals.entries()) {
        assert.equal(refusal.status, 400, `${i}: ${JSON.stringify(refusal.json)}`)
        const field = Object.keys(refusal.json.errors).find((name) => name.includes('ansible_id'))
        assert.ok(field, `${i}: ${JSON.stringify(refusal.json)}`)
        const [why] = refusal.json.errors[field!]
        assert.match(why, /resource registry/, `${i}: ${why}`)
        assert.equal(refusal.json.detail, `Invalid value for ${field}: ${why}`, `${i}`)
      }
    })

    it('describes a list\'s POST fields at OPTIONS, to those who may POST', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const users = await client.send('OPTIONS', 'users')
      assert.equal(users.status, 200)
      const post = users.json.actions.POST
      assert.deepEqual(post.username, { type: 'string', required: true, read_only: false, label: 'Username' })
      assert.equal(post.is_superuser.type, 'boolean')
      assert.equal(post.id.read_only, true)
      assert.equal(post.password.required, false)
      const tokens = (await client.send('OPTIONS', 'tokens')).json.actions.POST
      assert.equal(tokens.description.max_length, 1000)
      assert.equal(tokens.token.read_only, true)
      // A list-valued field is a `list` with its items' description under `child`, as Django REST framework's
      // metadata describes a ListField (role definitions' permissions are one in django-ansible-base).
      const roles = (await client.send('OPTIONS', 'role_definitions')).json.actions.POST
      assert.deepEqual(roles.permissions, { type: 'list', required: true, read_only: false, label: 'Permissions', child: { type: 'string', required: true, read_only: false } })
      // Organizations are named by name or id: an item of no one type, which DRF calls a `field`.
      assert.deepEqual(post.organizations, { type: 'list', required: false, read_only: false, label: 'Organizations', child: { type: 'field', required: true, read_only: false } })
      assert.deepEqual(post.groups, { type: 'list', required: false, read_only: true, label: 'Groups', child: { type: 'string', required: true, read_only: false } })

      await gw.app.accounts.create({ username: 'reader', password: 'reader-password-1' })
      const reader = new CollectionClient(gw.url, { username: 'reader', password: 'reader-password-1' })
      await reader.authenticate()
      const forReader = await reader.send('OPTIONS', 'users')
      assert.equal(forReader.status, 200)
      assert.equal(forReader.json.actions, undefined, 'no POST for those who may not create users')
    })

    it('answers login\'s GET as the platform for */* and text/html, and with the CSRF token for JSON (docs/api.md)', async () => {
      for (const accept of ['*/*', 'text/html']) {
        const page = await gw.fetch('/api/gateway/v1/login/', { headers: { accept } })
        assert.equal(page.status, 200, accept)
        assert.match(page.headers.get('content-type') ?? '', /^text\/html/, accept)
        assert.match(page.headers.get('set-cookie') ?? '', /^csrftoken=[^;]+;/, accept)
        await page.text()
      }
      const asked = await gw.fetch('/api/gateway/v1/login/', { headers: { accept: 'application/json' } })
      assert.equal(asked.status, 200)
      const body = await json(asked)
      assert.deepEqual(Object.keys(body).sort(), ['csrf_token', 'login_url', 'next'])
      assert.equal(asked.headers.get('set-cookie')?.match(/^csrftoken=([^;]+);/)?.[1], body.csrf_token)
    })

    it('links only to what exists: every related link of every kind of object answers 200', async () => {
      const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      await client.authenticate()
      const create = async (endpoint: string, body: Record<string, unknown>) => {
        const created = await client.send('POST', endpoint, body)
        assert.equal(created.status, 201, `${endpoint}: ${JSON.stringify(created.json)}`)
        return created.json
      }
      const organization = await create('organizations', { name: 'Linked' })
      const team = await create('teams', { name: 'Linked Team', organization: organization.id })
      const user = await create('users', { username: 'linked-user' })
      const member = await client.getOne('role_definitions', { nameOrId: 'Organization Member' })
      const objects = [
        organization, team, user, member,
        await create('applications', { name: 'linked app', organization: organization.id, client_type: 'public', authorization_grant_type: 'password' }),
        await create('tokens', { scope: 'read' }),
        await create('role_user_assignments', { role_definition: member.id, user: user.id, object_id: organization.id }),
        await create('role_team_assignments', { role_definition: member.id, team: team.id, object_id: organization.id }),
      ]
      for (const object of objects) {
        assert.ok(Object.keys(object.related).length, object.url)
        for (const [name, link] of Object.entries(object.related)) {
          assert.equal((await client.send('GET', String(link))).status, 200, `${object.url} related.${name}: ${link}`)
        }
      }
    })

    it('answers user and me objects with url, related and summary_fields', async () => {
      const me = (await json(await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } }))).results[0]
      for (const field of ['url', 'related', 'summary_fields', 'created_by', 'modified_by', 'is_platform_auditor']) assert.ok(field in me, field)
      assert.equal(me.url, `/api/gateway/v1/users/${me.id}/`)
      assert.equal(me.related.tokens, `/api/gateway/v1/users/${me.id}/tokens/`)
    })

    it('shows created_by and modified_by on organizations, teams and role definitions, as django-ansible-base\'s CommonModelSerializer does', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }
      const create = async (list: string, body: object) => {
        const created = await gw.fetch(`/api/gateway/v1/${list}/`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
        assert.equal(created.status, 201)
        return json(created)
      }
      const organization = await create('organizations', { name: 'Shapes Org' })
      await create('teams', { name: 'Shapes Team', organization: organization.id })
      for (const list of ['organizations', 'teams', 'role_definitions']) {
        const { results } = await json(await gw.fetch(`/api/gateway/v1/${list}/?page_size=1`, { headers: admin }))
        assert.ok(results.length, list)
        for (const field of ['created', 'created_by', 'modified', 'modified_by']) assert.ok(field in results[0], `${list}: ${field}`)
        assert.equal(results[0].created_by, null, 'not recorded, as for users (docs/api.md)')
        const shown = await json(await gw.fetch(results[0].url, { headers: admin }))
        assert.deepEqual(Object.keys(shown), Object.keys(results[0]), `${list}: the detail view shows what the list does`)
      }
    })
  })

  describe('awxkit', () => {
    const createApplication = async (body: Record<string, unknown>) => {
      const response = await gw.fetch('/api/gateway/v1/applications/', {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      const created = await json(response)
      assert.equal(response.status, 201, JSON.stringify(created))
      return created
    }

    it('get_oauth2_token() with the client id of a public application returns a working token', async () => {
      const application = await createApplication({ name: 'AWX CLI', client_type: 'public', authorization_grant_type: 'password' })
      // A public application has no secret: the platform leaves the field out of its answers, on create and after.
      assert.equal('client_secret' in application, false)
      const shown = await json(await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } }))
      assert.equal('client_secret' in shown, false)
      const { status, token, body } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      assert.equal(status, 201, JSON.stringify(body))
      const me = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } })
      assert.equal(me.status, 200)
      assert.equal((await json(me)).results[0].username, 'admin')
      const write = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
      assert.equal(write.status, 201, 'scope write lets the token change things')
      // `awx login` prints it for CONTROLLER_OAUTH_TOKEN: the controller, which takes personal tokens and not the
      // realm's (accepts: basic, session, token), takes it as the platform's does, reading and writing.
      for (const method of ['GET', 'POST']) {
        const controller = await gw.fetch('/api/controller/v2/users/', { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) })
        const echoed = await json(controller)
        assert.equal(controller.status, 200, JSON.stringify(echoed))
        assert.deepEqual([echoed.service, echoed.identity?.username, echoed.identity?.auth_method, echoed.identity?.verified], ['controller', 'admin', 'oidc', true])
      }
    })

    it('keeps the controller to the platform\'s tokens: a token of a client of the realm is refused there', async () => {
      const realmToken = await gw.fetch('/realms/platform/protocol/openid-connect/token', { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }) })
      const { access_token: accessToken } = await json(realmToken)
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${accessToken}` } })).status, 200, 'a service that takes the realm\'s tokens takes it')
      // Neither it, nor a value that is no JWT, is one of the platform's tokens: both get the personal tokens' refusal.
      for (const token of [accessToken, 'abcdef']) {
        const refused = await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${token}` } })
        assert.equal(refused.status, 401)
        const body = await json(refused)
        assert.equal(body.code, 'invalid_token')
        assert.match(body.detail, /gatehouse_pat_/)
      }
      // A browser's session beside it still signs the request in, as before such tokens were taken there.
      const { cookie } = await login(gw, 'admin', ADMIN_PASSWORD)
      const withSession = await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${accessToken}`, cookie } })
      assert.deepEqual([withSession.status, (await json(withSession)).identity?.auth_method], [200, 'session'])
    })

    it('holds an application\'s token to its scope at the controller, and at a service taking the realm\'s tokens, as on the gateway\'s API: without write it only reads', async () => {
      const application = await createApplication({ name: 'reader app', client_type: 'public', authorization_grant_type: 'password' })
      for (const scope of ['openid', 'profile', 'read']) {
        const { status, token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, scope })
        assert.equal(status, 201)
        assert.equal((await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${token}` } })).status, 200, scope)
        assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 200, scope)
        for (const path of ['/api/controller/v2/users/', '/api/gateway/v1/tokens/', '/demo-app/x']) {
          const write = await gw.fetch(path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
          assert.deepEqual([write.status, (await json(write)).code], [403, 'insufficient_scope'], `${scope} ${path}`)
        }
      }
    })

    it('reads what an application\'s token is from its verification once verified, not by decoding it at every request', async () => {
      const application = await createApplication({ name: 'busy script', client_type: 'public', authorization_grant_type: 'password' })
      const { token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      const realmToken = await json(await gw.fetch('/realms/platform/protocol/openid-connect/token', { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }) }))
      const policy = gw.app.oidc.policyFor('controller') as { applicationsOnly: (token: string) => boolean }
      const decode = policy.applicationsOnly
      let decoded = 0
      policy.applicationsOnly = (value) => (decoded++, decode(value))
      try {
        for (let i = 0; i < 3; i++) {
          assert.equal((await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
        }
        assert.equal(decoded, 1, 'decoded before its first verification only')
        // A realm client's token verified at a service that takes it stays refused at the controller, from memory.
        assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${realmToken.access_token}` } })).status, 200)
        for (let i = 0; i < 2; i++) {
          assert.equal((await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${realmToken.access_token}` } })).status, 401)
        }
        assert.equal(decoded, 1)
      } finally {
        policy.applicationsOnly = decode
      }
    })

    it('get_oauth2_token() with the client id and secret of a confidential application returns a working token', async () => {
      const application = await createApplication({ name: 'backup job', client_type: 'confidential', authorization_grant_type: 'password' })
      assert.ok(application.client_secret.length >= 32)
      const listed = await json(await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } }))
      assert.equal(listed.client_secret, '$encrypted$')
      const { status, token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, clientSecret: application.client_secret, scope: 'read' })
      assert.equal(status, 201)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
      const refused = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
      assert.equal(refused.status, 403, 'a read token only reads')
      // At a service that takes the realm's tokens as well: it reads and writes nothing there either.
      const read = await gw.fetch('/demo-app/reports/', { headers: { authorization: `Bearer ${token}` } })
      assert.deepEqual([read.status, (await json(read)).identity?.auth_method], [200, 'oidc'])
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const write = await gw.fetch('/demo-app/reports/', { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
        assert.deepEqual([write.status, (await json(write)).code], [403, 'insufficient_scope'], method)
      }
      // So at the controller, which takes the applications' tokens as personal ones.
      assert.equal((await gw.fetch('/api/controller/v2/users/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
      const controllerWrite = await gw.fetch('/api/controller/v2/users/', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
      assert.deepEqual([controllerWrite.status, (await json(controllerWrite)).code], [403, 'insufficient_scope'])
      const writer = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, clientSecret: application.client_secret, scope: 'write' })
      assert.equal((await gw.fetch('/demo-app/reports/', { method: 'POST', headers: { authorization: `Bearer ${writer.token}`, 'content-type': 'application/json' }, body: '{}' })).status, 200)
      const wrongSecret = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, clientSecret: 'x'.repeat(64) })
      assert.equal(wrongSecret.status, 401)
      const hashAsSecret = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, clientSecret: `sha256:${'0'.repeat(64)}` })
      assert.equal(hashAsSecret.status, 401)
    })

    it('ignores client_id and client_secret in a body, as the platform\'s serializer has them read-only', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const chosen = { client_id: 'chosen-client-id', client_secret: 'chosen-secret-'.repeat(4) }
      const application = await createApplication({ name: 'chosen credentials', client_type: 'confidential', authorization_grant_type: 'password', ...chosen })
      assert.notEqual(application.client_id, chosen.client_id)
      assert.notEqual(application.client_secret, chosen.client_secret)
      assert.ok(application.client_secret.length >= 32)
      const tokenWith = (clientId: string, clientSecret: string) => awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId, clientSecret })
      assert.equal((await tokenWith(chosen.client_id, chosen.client_secret)).status, 401)
      assert.equal((await tokenWith(application.client_id, chosen.client_secret)).status, 401)
      for (const method of ['PATCH', 'PUT']) {
        const body = { name: 'chosen credentials', client_type: 'confidential', authorization_grant_type: 'password', description: `${method}ed`, client_id: `${method}-id`, client_secret: `${method}-secret`.repeat(8) }
        const response = await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method, headers: admin, body: JSON.stringify(body) })
        const updated = await json(response)
        assert.equal(response.status, 200, `${method}: ${JSON.stringify(updated)}`)
        assert.equal(updated.description, `${method}ed`)
        assert.equal(updated.client_id, application.client_id)
        assert.equal(updated.client_secret, '$encrypted$')
        assert.equal((await tokenWith(application.client_id, body.client_secret)).status, 401, method)
      }
      assert.equal((await tokenWith(application.client_id, application.client_secret)).status, 201, 'the secret made at creation still works')
      const misspelt = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: admin, body: JSON.stringify({ name: 'misspelt', client_type: 'public', authorization_grant_type: 'password', ...chosen, client_secrets: 'x' }) })
      assert.equal(misspelt.status, 400)
      assert.deepEqual((await json(misspelt)).errors, { client_secrets: ['Unknown field.'] }, 'other unknown fields are still refused')
    })

    it('stops issuing tokens to an application once it is deleted, at once', async () => {
      const application = await createApplication({ name: 'short-lived', client_type: 'public', authorization_grant_type: 'password' })
      assert.equal((await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })).status, 201)
      const deleted = await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'DELETE', headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } })
      assert.equal(deleted.status, 204)
      assert.equal((await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })).status, 401)
    })

    it('ends the tokens an application issued when it is deleted, at once, as Keycloak ends a removed client\'s sessions', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }
      const me = (token: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } }).then((response) => response.status)
      const organization = await json(await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Short-lived applications' }) }))
      // The platform deletes a user's applications with the user (OAuth2Application.user: on_delete CASCADE).
      const owner = await json(await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'application-owner' }) }))
      const deletions: [string, (application: { id: number }) => Promise<Response>][] = [
        ['the application', (application) => gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'DELETE', headers: admin })],
        ['its owner', () => gw.fetch(`/api/gateway/v1/users/${owner.id}/`, { method: 'DELETE', headers: admin })],
        ['its organization', () => gw.fetch(`/api/gateway/v1/organizations/${organization.id}/`, { method: 'DELETE', headers: admin })],
      ]
      const kept = await createApplication({ name: 'kept', client_type: 'public', authorization_grant_type: 'password' })
      const keptToken = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: kept.client_id })
      for (const [deleted, remove] of deletions) {
        const application = await createApplication({ name: `ended with ${deleted}`, organization: organization.id, client_type: 'public', authorization_grant_type: 'password', ...(deleted === 'its owner' ? { user: owner.id } : {}) })
        const { token, body } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
        // Used once before, so that the gateway holds it as verified.
        assert.equal(await me(token!), 200, deleted)
        assert.equal((await remove(application)).status, 204, deleted)
        assert.equal(await me(token!), 401, `the access token, once ${deleted} is deleted`)
        const refreshed = await json(await gw.fetch('/o/token/', { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: application.client_id, refresh_token: body.refresh_token }) }))
        assert.ok(refreshed.error, `the refresh token, once ${deleted} is deleted`)
        assert.equal((await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: admin })).status, 404, `the application, once ${deleted} is deleted`)
      }
      assert.equal(await me(keptToken.token!), 200, 'another application\'s token')
    })

    it('leaves an application created without a user ownerless, as the platform does: its creator\'s deletion takes nothing with it', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const creator = await json(await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: admin, body: JSON.stringify({ username: 'departing-admin', password: 'departing-admin-password', is_superuser: true }) }))
      const asCreator = { authorization: `Basic ${Buffer.from('departing-admin:departing-admin-password').toString('base64')}`, 'content-type': 'application/json' }
      const created = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: asCreator, body: JSON.stringify({ name: 'outlives its creator', client_type: 'public', authorization_grant_type: 'password' }) })
      const application = await json(created)
      assert.equal(created.status, 201, JSON.stringify(application))
      assert.equal(application.user, null)
      const { token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      assert.equal((await gw.fetch(`/api/gateway/v1/users/${creator.id}/`, { method: 'DELETE', headers: admin })).status, 204)
      assert.equal((await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: admin })).status, 200)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } })).status, 200, 'its tokens stay')
    })

    it('rotates an application\'s refresh tokens, as django-oauth-toolkit does: an earlier one is refused, and its reuse ends the sign-in', async () => {
      const application = await createApplication({ name: 'rotating', client_type: 'public', authorization_grant_type: 'password' })
      const refresh = async (token: string) => json(await gw.fetch('/o/token/', { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: application.client_id, refresh_token: token }) }))
      const { body } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      const first = await refresh(body.refresh_token)
      assert.ok(first.access_token, JSON.stringify(first))
      assert.notEqual(first.refresh_token, body.refresh_token)
      const again = await refresh(body.refresh_token)
      assert.equal(again.error, 'invalid_grant', 'the used refresh token')
      assert.equal((await refresh(first.refresh_token)).error, 'invalid_grant', 'its reuse ended the sign-in, the newest refresh token with it')
    })

    it('ends an application\'s tokens when its grant type changes, as the new grant would not give them', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const me = (token: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } }).then((response) => response.status)
      const application = await createApplication({ name: 'switching', client_type: 'public', authorization_grant_type: 'password' })
      const { token, body } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      assert.equal(await me(token!), 200)
      // A change that keeps the grant type keeps the tokens.
      assert.equal((await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ description: 'still password' }) })).status, 200)
      assert.equal(await me(token!), 200)
      const switched = await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ authorization_grant_type: 'authorization-code', redirect_uris: 'https://app.example.com/callback' }) })
      assert.equal(switched.status, 200)
      assert.equal(await me(token!), 401, 'the access token')
      const refreshed = await json(await gw.fetch('/o/token/', { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: application.client_id, refresh_token: body.refresh_token }) }))
      assert.equal(refreshed.error, 'invalid_grant', 'the refresh token')
    })

    it('refuses bad applications by field, creating nothing', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const count = async () => (await json(await gw.fetch('/api/gateway/v1/applications/', { headers: admin }))).count
      const before = await count()
      for (const [body, field] of [
        [{ name: 'x', authorization_grant_type: 'password' }, 'client_type'],
        [{ name: 'x', client_type: 'public', authorization_grant_type: 'implicit' }, 'authorization_grant_type'],
        [{ name: 'x', client_type: 'public', authorization_grant_type: 'password', organization: 999999 }, 'organization'],
        [{ name: 'x', client_type: 'public', authorization_grant_type: 'password', organization: 'Default' }, 'organization'],
        [{ name: 'x', client_type: 'public', authorization_grant_type: 'authorization-code' }, 'redirect_uris'],
        [{ name: 'x', client_type: 'public', authorization_grant_type: 'authorization-code', redirect_uris: 'javascript:alert(1)' }, 'redirect_uris'],
        [{ name: '', client_type: 'public', authorization_grant_type: 'password' }, 'name'],
      ] as const) {
        const response = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: admin, body: JSON.stringify(body) })
        const error = await json(response)
        assert.equal(response.status, 400, JSON.stringify(body))
        assert.ok(error[field], `${field}: ${JSON.stringify(error)}`)
      }
      assert.equal(await count(), before)
      const application = await createApplication({ name: 'fixed type', client_type: 'public', authorization_grant_type: 'password' })
      const viaTokens = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: admin, body: JSON.stringify({ application: application.id }) })
      assert.equal(viaTokens.status, 400)
      assert.ok((await json(viaTokens)).application)
      const missing = await gw.fetch('/api/gateway/v1/applications/999999/', { headers: admin })
      assert.equal(missing.status, 404)
      const user = await gw.fetch('/api/gateway/v1/applications/', { headers: { authorization: `Basic ${Buffer.from('reader:reader-password-1').toString('base64')}` } })
      assert.equal(user.status, 403)
    })

    it('changes an application\'s client type, as the platform does: made confidential it gets a secret, shown once; made public it has none', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const application = await createApplication({ name: 'changing type', client_type: 'public', authorization_grant_type: 'password' })
      const signIn = (secret?: string) => gw.fetch('/o/token/', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(secret ? { authorization: `Basic ${Buffer.from(`${application.client_id}:${secret}`).toString('base64')}` } : {}) },
        body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, ...(secret ? {} : { client_id: application.client_id }) }),
      })
      const { token: publicToken } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id })
      const url = `/api/gateway/v1/applications/${application.id}/`
      const confidential = await gw.fetch(url, { method: 'PATCH', headers: admin, body: JSON.stringify({ client_type: 'confidential' }) })
      const made = await json(confidential)
      assert.equal(confidential.status, 200, JSON.stringify(made))
      assert.equal(made.client_type, 'confidential')
      assert.match(made.client_secret, /^[\w-]{32,}$/, 'the new secret, shown in this answer')
      assert.equal((await json(await gw.fetch(url, { headers: admin }))).client_secret, '$encrypted$', 'and never again')
      assert.equal((await signIn()).status, 401, 'no longer without a secret')
      assert.equal((await signIn(made.client_secret)).status, 201)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${publicToken}` } })).status, 200, 'its tokens stay')
      const madePublic = await gw.fetch(url, { method: 'PATCH', headers: admin, body: JSON.stringify({ client_type: 'public' }) })
      const publicAgain = await json(madePublic)
      assert.equal(madePublic.status, 200, JSON.stringify(publicAgain))
      assert.equal('client_secret' in publicAgain, false)
      assert.equal((await signIn()).status, 201, 'without a secret again')
    })

    it('compares an application\'s redirect URIs exactly, as django-oauth-toolkit does: a * in one is no wildcard', async () => {
      const application = await createApplication({
        name: 'starred', client_type: 'public', authorization_grant_type: 'authorization-code',
        redirect_uris: 'https://app.example.com/cb https://app.example.com* https://* https://app.example.com/app/*',
      })
      // With the PKCE challenge a new application requires, so that only the redirect URI decides.
      const pkce = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
      const authorize = (redirectUri: string) => gw.fetch(`/o/authorize/?${new URLSearchParams({ client_id: application.client_id, response_type: 'code', redirect_uri: redirectUri, ...pkce })}`, { headers: { accept: 'text/html' } })
      const exact = await authorize('https://app.example.com/cb')
      assert.equal(exact.status, 302)
      assert.match(exact.headers.get('location')!, /\/login-actions\//)
      for (const uri of ['https://app.example.com.evil.example/cb', 'https://evil.example/', 'https://app.example.com/app/x']) {
        const refused = await authorize(uri)
        assert.equal(refused.status, 400, uri)
        assert.equal(refused.headers.get('location'), null, uri)
        await refused.arrayBuffer()
      }
    })

    it('keeps an application in an existing organization, shows it and filters by it', async () => {
      const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }
      const organization = await json(await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Apps Org' }) }))
      const application = await createApplication({ name: 'org app', organization: organization.id, client_type: 'public', authorization_grant_type: 'password' })
      assert.equal(application.organization, organization.id)
      assert.equal(application.summary_fields.organization.name, 'Apps Org')
      assert.equal(application.related.organization, `/api/gateway/v1/organizations/${organization.id}/`)
      // Left out, the organization is none (as the platform's model allows); asked for as null, it is refused there.
      await createApplication({ name: 'org app', client_type: 'public', authorization_grant_type: 'password' })
      const refusedNull = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: admin, body: JSON.stringify({ name: 'null org app', organization: null, client_type: 'public', authorization_grant_type: 'password' }) })
      assert.equal(refusedNull.status, 400)
      assert.deepEqual((await json(refusedNull)).organization, ['This field may not be null.'])

      const inOrganization = await json(await gw.fetch(`/api/gateway/v1/applications/?name=org+app&organization=${organization.id}`, { headers: admin }))
      assert.deepEqual(inOrganization.results.map((a: { id: number }) => a.id), [application.id], 'the collection finds an application by name within its organization')
      const without = await json(await gw.fetch('/api/gateway/v1/applications/?name=org+app&organization__isnull=true', { headers: admin }))
      assert.equal(without.count, 1)
      assert.notEqual(without.results[0].id, application.id)

      const moved = await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ organization: 999999 }) })
      assert.equal(moved.status, 400)
      assert.ok((await json(moved)).organization)
      const unchanged = await json(await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: admin }))
      assert.equal(unchanged.organization, organization.id)
      const cleared = await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ organization: null }) })
      assert.equal(cleared.status, 400)
      assert.deepEqual((await json(cleared)).organization, ['This field may not be null.'])
      assert.equal((await json(await gw.fetch(`/api/gateway/v1/applications/${application.id}/`, { headers: admin }))).organization, organization.id)
    })

    it('logs in with a session as load_session does, learning the cookie\'s name from X-API-Session-Cookie-Name', async () => {
      const session = new AwxkitSession(gw.url)
      const login = await session.loadSession('/api/gateway/v1/', 'admin', ADMIN_PASSWORD)
      assert.equal(login.status, 200)
      await login.arrayBuffer()
      assert.equal(session.sessionCookieName, 'gateway_sessionid')
      assert.ok(session.cookies.get(session.sessionCookieName), 'the session id awxkit keeps (connection.session_id)')
      const me = await session.request('GET', '/api/gateway/v1/me/')
      assert.equal((await json(me)).results[0].username, 'admin')
      const created = await session.request('POST', '/api/gateway/v1/tokens/', { json: { description: 'from a session', scope: 'read' } })
      assert.equal(created.status, 201, 'a POST with the session, X-CSRFToken and Referer')
      await created.arrayBuffer()
      const hosts = await session.request('GET', '/api/controller/v2/hosts/')
      assert.equal((await json(hosts)).identity.auth_method, 'session')
    })

    it('get_oauth2_token() without a client id returns a working personal token', async () => {
      const { status, token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD })
      assert.equal(status, 201)
      assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
    })
  })
})

describe('an OAuth2 application\'s token on the gateway\'s API, whose accepts leaves out oidc', () => {
  const realms = realmWith([{ client_id: 'console', public_client: true, direct_access_grants: true, audiences: ['gateway'] }], { client_scopes: ['read', 'write'] })
  const applicationToken = async (gw: TestGateway, scope: string) => {
    const created = await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: `app ${scope}`, client_type: 'public', authorization_grant_type: 'password' }) })
    const application = await json(created)
    assert.equal(created.status, 201, JSON.stringify(application))
    const { status, token } = await awxkitOauth2Token(gw.url, { username: 'admin', password: ADMIN_PASSWORD, clientId: application.client_id, scope })
    assert.equal(status, 201)
    return token!
  }
  const asBearer = (token: string, method = 'GET') => ({ method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(method === 'GET' ? {} : { body: '{"scope": "read"}' }) })

  it('takes it where the API takes personal tokens, as a service does, held to its scope, and still no other realm token', async () => {
    const gw = await startGateway({ config: { realms, gateway: { accepts: ['basic', 'session', 'token'] } } })
    try {
      const writer = await applicationToken(gw, 'write')
      const me = await gw.fetch('/api/gateway/v1/me/', asBearer(writer))
      assert.equal(me.status, 200, await me.clone().text())
      assert.equal((await json(me)).results[0].username, 'admin')
      assert.equal((await gw.fetch('/api/gateway/v1/tokens/', asBearer(writer, 'POST'))).status, 201)
      // As at the controller behind the gateway, which takes personal tokens alike.
      assert.equal((await gw.fetch('/api/controller/v2/hosts/', asBearer(writer))).status, 200)
      const reader = await gw.fetch('/api/gateway/v1/tokens/', asBearer(await applicationToken(gw, 'openid'), 'POST'))
      assert.deepEqual([reader.status, (await json(reader)).code], [403, 'insufficient_scope'])
      // A configured client's token, meant for the gateway, is an `oidc` credential: refused without it.
      const client = await tokenRequest(gw, { client_id: 'console', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope: 'openid write' })
      assert.equal(client.status, 200, JSON.stringify(client.body))
      const refused = await gw.fetch('/api/gateway/v1/me/', asBearer(client.body.access_token))
      assert.deepEqual([refused.status, (await json(refused)).code], [401, 'invalid_token'])
    } finally {
      await gw.close()
    }
  })

  it('refuses it where the API takes neither personal tokens nor oidc, as a service does', async () => {
    const gw = await startGateway({ config: { realms, gateway: { accepts: ['basic', 'session'] } } })
    try {
      const refused = await gw.fetch('/api/gateway/v1/me/', asBearer(await applicationToken(gw, 'write')))
      assert.equal(refused.status, 401)
    } finally {
      await gw.close()
    }
  })
})
