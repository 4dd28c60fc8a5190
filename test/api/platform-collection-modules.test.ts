import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { AwxkitSession, CheckModeExit, CollectionClient } from '../helpers/platform-clients.ts'

/**
 * The `ansible.platform` collection's application, role_definition, role_user_assignment and role_team_assignment
 * modules, request by request as their source sends them (plugins/modules/*.py, plugins/module_utils/*.py).
 */
describe('the collection\'s access and application modules', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  const admin = async (options: { checkMode?: boolean } = {}) => {
    const client = new CollectionClient(gw.url, { username: 'admin', password: ADMIN_PASSWORD }, options)
    await client.authenticate()
    return client
  }
  const createOrganization = async (client: CollectionClient, name: string) => (await client.send('POST', 'organizations', { name })).json
  const createTeam = async (client: CollectionClient, name: string, organization: number) => (await client.send('POST', 'teams', { name, organization })).json
  const createUser = async (client: CollectionClient, username: string) => (await client.send('POST', 'users', { username })).json
  /** assign_user_role / assign_team_role: the assignment found by `data` is checked, deleted, or created when missing. */
  const applyAssignment = async (client: CollectionClient, endpoint: string, data: Record<string, number>, state = 'present'): Promise<any> => {
    const assignment = await client.getOne(endpoint, { data })
    if (state === 'exists') return { changed: false, exists: Boolean(assignment) }
    if (state === 'absent') return assignment ? { changed: true, status: await client.deleteIfNeeded(assignment) } : { changed: false }
    if (assignment) return { changed: false, item: assignment }
    const created = await client.send('POST', endpoint, data)
    assert.equal(created.status, 201, JSON.stringify(created.json))
    return { changed: true, item: created.json }
  }

  describe('user', () => {
    /**
     * main() of plugins/modules/user.py: the user by username (AAPUser.manage POSTs or PATCHes every field the
     * module sets, `organizations` included, as aap_user.py's set_new_fields puts it in the body), then
     * process_organizations: the Organization Member role and each organization by name or id, and a POST to
     * role_user_assignments for each, whatever the user held before.
     */
    const run = async (client: CollectionClient, params: { username: string; first_name?: string; password?: string; organizations?: string[]; update_secrets?: boolean }): Promise<any> => {
      const { username, organizations, update_secrets: updateSecrets, ...fields } = params
      const existing = await client.getOne('users', { nameOrId: username, nameField: 'username' })
      const wanted: Record<string, unknown> = { username: existing?.username ?? username, ...fields }
      if (organizations !== undefined) wanted.organizations = organizations
      const user = await client.createOrUpdateIfNeeded('users', existing, wanted, { updateSecrets })
      if (!organizations?.length) return user
      const member = await client.getOne('role_definitions', { nameOrId: 'Organization Member' })
      for (const name of organizations) {
        const organization = await client.getOne('organizations', { nameOrId: name })
        assert.ok(organization, `Organization '${name}' not found. Please ensure it exists and is accessible.`)
        const assigned = await client.send('POST', 'role_user_assignments', { object_id: organization.id, user: user.item.id, role_definition: member.id })
        assert.ok([200, 201].includes(assigned.status), JSON.stringify(assigned.json))
      }
      return { ...user, changed: true }
    }
    const membersOf = async (client: CollectionClient, organization: number, user: number) =>
      (await client.send('GET', 'role_user_assignments', {}, { object_id: organization, user, content_type: 'shared.organization' })).json.results.map((a: any) => a.summary_fields.role_definition.name)

    it('creates a user with organizations in the body, as the module sends them, and makes it a member of each', async () => {
      const client = await admin()
      const first = await createOrganization(client, 'Users Org One')
      const second = await createOrganization(client, 'Users Org Two')
      const created = await run(client, { username: 'doe', first_name: 'Doe', password: 'a-long-doe-password', organizations: ['Users Org One', String(second.id)] })
      assert.equal(created.status, 201, 'the POST with organizations in its body creates the user')
      assert.equal(created.item.organizations, undefined, 'a user shows its organizations at users/{id}/organizations/')
      assert.deepEqual(await membersOf(client, first.id, created.item.id), ['Organization Member'])
      assert.deepEqual(await membersOf(client, second.id, created.item.id), ['Organization Member'], 'an organization named by its id, as get_one finds it')

      const again = await run(client, { username: 'doe', first_name: 'Doe', password: 'a-long-doe-password', organizations: ['Users Org One'] })
      assert.equal(again.status, 200, 'the PATCH a second run sends, organizations included')
      assert.deepEqual(await membersOf(client, first.id, created.item.id), ['Organization Member'], 'given once')
      assert.deepEqual(await membersOf(client, second.id, created.item.id), ['Organization Member'], 'an organization left out keeps its member')
      const listed = (await client.send('GET', `users/${created.item.id}/organizations`)).json
      assert.deepEqual(listed.results.map((o: any) => o.name).sort(), ['Users Org One', 'Users Org Two'])
    })

    it('refuses organizations that do not exist, creating no user, so the module fails without leaving one behind', async () => {
      const client = await admin()
      await createOrganization(client, 'Users Org Real')
      for (const organizations of [['Users Org Missing'], ['Users Org Real', '999999'], [''], 'Users Org Real']) {
        const refused = await client.send('POST', 'users', { username: 'invalid-org', password: 'a-long-invalid-password', organizations })
        assert.equal(refused.status, 400, JSON.stringify(organizations))
        assert.ok(refused.json.organizations, JSON.stringify(refused.json))
        assert.equal(typeof refused.json.code, 'string')
      }
      assert.equal(await client.getOne('users', { nameOrId: 'invalid-org', nameField: 'username' }), undefined)
      const user = await createUser(client, 'kept-org-less')
      const patched = await client.send('PATCH', user.url, { first_name: 'Changed', organizations: ['Users Org Missing'] })
      assert.equal(patched.status, 400)
      assert.equal((await client.send('GET', user.url)).json.first_name, '', 'a refused PATCH changes nothing')
    })

    it('records each membership it gives in the activity stream, as the assignment\'s own POST does', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Users Org Audit')
      const given = async () => (await gw.app.audit.flush(), await client.send('GET', 'activitystream', {}, { content_type: 'role_user_assignment', operation: 'create' })).json.count
      const before = await given()
      const created = await client.send('POST', 'users', { username: 'audited-member', organizations: ['Users Org Audit'] })
      assert.equal(created.status, 201, JSON.stringify(created.json))
      assert.equal(await given(), before + 1, 'the membership given')
      assert.equal((await client.send('PATCH', created.json.url, { organizations: ['Users Org Audit'] })).status, 200)
      assert.equal(await given(), before + 1, 'a membership held is not given again')
      assert.deepEqual(await membersOf(client, organization.id, created.json.id), ['Organization Member'])
    })

    it('takes the password every run sends again as no change: the user\'s session lasts, and a stricter policy since does not refuse it', async () => {
      const client = await admin()
      const password = 'a-long-runner-password'
      assert.equal((await run(client, { username: 'runner', first_name: 'Run', password })).status, 201)
      const session = new AwxkitSession(gw.url)
      assert.equal((await session.loadSession('/api/gateway/v1/', 'runner', password)).status, 200)
      const signedIn = async () => (await session.request('GET', '/api/gateway/v1/me/')).status
      assert.equal(await signedIn(), 200)

      const again = await run(client, { username: 'runner', first_name: 'Run', password })
      assert.equal(again.status, 200, 'objects_could_be_different finds the write-only password different: the module PATCHes it')
      assert.equal(again.changed, false, 'and reports no change, as the answer shows the password as before, $encrypted$')
      assert.equal(await signedIn(), 200, 'the same password ends nothing')
      await gw.app.audit.flush()
      const updates = (await client.send('GET', 'activitystream', {}, { operation: 'update', object_name: 'runner', order_by: '-id' })).json.results
      assert.deepEqual(updates, [], 'and is no change in the activity stream, of the password or anything else')
      const stricter = await client.send('PATCH', 'settings/all', { local_password_min_length: 40 })
      assert.equal(stricter.status, 200, JSON.stringify(stricter.json))
      try {
        assert.equal((await run(client, { username: 'runner', first_name: 'Run', password })).status, 200, 'the password kept is not set, so the policy is not asked')
        const weak = await run(client, { username: 'runner', password: 'another-long-password' }).catch((error: Error) => error)
        assert.match(String(weak), /400/, 'a new one meets the policy')
      } finally {
        await client.send('PATCH', 'settings/all', { local_password_min_length: 12 })
      }
      assert.equal(await signedIn(), 200)
      assert.equal((await run(client, { username: 'runner', password: 'another-long-password' })).status, 200)
      assert.equal(await signedIn(), 401, 'a new password ends the session')
    })

    it('shows the password as the platform does, so that update_secrets: false leaves a password its user changed alone', async () => {
      const client = await admin()
      const password = 'a-playbook-password'
      assert.equal((await run(client, { username: 'keeper', first_name: 'Keep', password })).item.password, '$encrypted$')
      assert.equal((await run(client, { username: 'nopassword', first_name: 'None' })).item.password, 'Password Disabled')
      const own = new AwxkitSession(gw.url)
      assert.equal((await own.loadSession('/api/gateway/v1/', 'keeper', password)).status, 200)
      const changedOwn = await own.request('POST', '/api/gateway/v1/me/password/', { json: { current_password: password, new_password: 'keepers-own-password' } })
      assert.equal(changedOwn.status, 204)

      const kept = await run(client, { username: 'keeper', first_name: 'Keep', password, update_secrets: false })
      assert.deepEqual([kept.status, kept.changed], [0, false], 'fields_could_be_same takes $encrypted$ for any password: nothing is sent')
      const signIn = async (secret: string) => (await new AwxkitSession(gw.url).loadSession('/api/gateway/v1/', 'keeper', secret)).status
      assert.equal(await signIn('keepers-own-password'), 200)
      // A body read and sent back, password and all, changes no password.
      const read = (await client.send('GET', kept.item.url)).json
      const sentBack = await client.send('PATCH', read.url, { ...read, first_name: 'Kept' })
      assert.equal(sentBack.status, 200, JSON.stringify(sentBack.json))
      assert.equal(await signIn('keepers-own-password'), 200)
      // Neither shown value is ever taken for a password: sent back to an account that has one since, it changes nothing.
      for (const shown of ['Password Disabled', '$encrypted$']) {
        assert.equal((await client.send('PATCH', read.url, { password: shown })).status, 200)
        assert.equal(await signIn(shown), 401, shown)
        assert.equal(await signIn('keepers-own-password'), 200, shown)
      }

      // update_secrets: true, the module's default, always sends it: the playbook's password is the user's again.
      const reset = await run(client, { username: 'keeper', first_name: 'Kept', password })
      assert.equal(reset.status, 200)
      assert.equal(await signIn(password), 200)
    })

    it('finds a user whose username is a number beyond 32 bits, which get_one looks up as an id too', async () => {
      const client = await admin()
      const params = { username: '98765432101', first_name: 'Employee' }
      assert.equal((await run(client, params)).status, 201)
      const again = await run(client, params)
      assert.equal(again.changed, false, 'a second run finds it: ?or__id=98765432101&or__username=98765432101')
      assert.equal(again.item.username, '98765432101')
    })

    it('refuses the authenticator fields by name: Gatehouse has no authenticators', async () => {
      const client = await admin()
      for (const [field, value] of [['authenticators', [1]], ['authenticator_uid', 'test_uid'], ['associated_authenticators', { 1: { uid: 'x' } }]] as const) {
        const refused = await client.send('POST', 'users', { username: `with-${field}`, [field]: value })
        assert.equal(refused.status, 400, field)
        assert.ok(refused.json[field], JSON.stringify(refused.json))
        assert.equal(await client.getOne('users', { nameOrId: `with-${field}`, nameField: 'username' }), undefined)
      }
    })
  })

  describe('organization and team, by names of any characters', () => {
    /**
     * get_one with a name: first, when it holds `++`, a GET of `<endpoint>/<name>/` (an AWX named URL), which fails
     * the module unless it answers 200; then `?name=` (or `?or__id=&or__name=` for a number), with the team's
     * organization as `organization`.
     */
    const find = async (client: CollectionClient, endpoint: string, name: string, data?: Record<string, number>) => {
      if (name.includes('++')) {
        const named = await client.send('GET', `${endpoint}/${encodeURIComponent(name).replaceAll('%2B', '+')}`)
        if (named.status !== 200) return { failed: named.status }
      }
      return { item: await client.getOne(endpoint, { nameOrId: name, data }) }
    }
    /** AAPObject.manage for AAPOrganization and AAPTeam: present POSTs or PATCHes what differs; absent DELETEs. */
    const run = async (client: CollectionClient, endpoint: string, params: { name: string; description?: string; organization?: string; state?: string }): Promise<any> => {
      let data: Record<string, number> | undefined
      if (params.organization !== undefined) {
        const organization = await find(client, 'organizations', params.organization)
        if (organization.failed) return organization
        if (!organization.item) return params.state === 'absent' ? { changed: false } : { failed: 'Item organization does not exist' }
        data = { organization: organization.item.id }
      }
      const found = await find(client, endpoint, params.name, data)
      if (found.failed) return found
      if (params.state === 'absent') return found.item ? { changed: true, status: await client.deleteIfNeeded(found.item) } : { changed: false }
      const wanted: Record<string, unknown> = { name: found.item?.name ?? params.name, ...(params.description === undefined ? {} : { description: params.description }), ...data }
      return client.createOrUpdateIfNeeded(endpoint, found.item, wanted)
    }

    it('creates, finds again, updates and deletes organizations and teams named with spaces, unicode, + and &', async () => {
      const client = await admin()
      for (const name of ['Dev Ops', 'R&D + QA', 'Ünïcødé 組織 🚀', 'a+b=c&d=%20', '42x', 'x/y?z#w']) {
        const created = await run(client, 'organizations', { name, description: 'one' })
        assert.deepEqual([created.changed, created.item.name], [true, name])
        assert.equal((await run(client, 'organizations', { name, description: 'one' })).changed, false, name)
        const updated = await run(client, 'organizations', { name, description: 'two' })
        assert.deepEqual([updated.changed, updated.item.description], [true, 'two'])
        const team = await run(client, 'teams', { name: `${name} team`, organization: name })
        assert.deepEqual([team.changed, team.item.organization], [true, created.item.id])
        assert.equal((await run(client, 'teams', { name: `${name} team`, organization: name })).changed, false, `${name} team`)
        assert.deepEqual(await run(client, 'teams', { name: `${name} team`, organization: name, state: 'absent' }), { changed: true, status: 204 })
        assert.deepEqual(await run(client, 'organizations', { name, state: 'absent' }), { changed: true, status: 204 })
        assert.deepEqual(await run(client, 'organizations', { name, state: 'absent' }), { changed: false })
        assert.deepEqual(await run(client, 'teams', { name: `${name} team`, organization: name, state: 'absent' }), { changed: false })
      }
    })

    it('answers the named URL a name with ++ is looked up by with a 404, as no named URLs are served, so nothing is sent after it', async () => {
      const client = await admin()
      assert.equal((await client.send('POST', 'organizations', { name: 'C++ Guild' })).status, 201)
      const checking = await admin({ checkMode: true })
      assert.deepEqual(await run(checking, 'organizations', { name: 'C++ Guild', description: 'changed' }), { failed: 404 })
      assert.deepEqual(await run(checking, 'teams', { name: 'Compilers', organization: 'C++ Guild' }), { failed: 404 })
      assert.deepEqual(await run(checking, 'organizations', { name: 'Missing++Guild', state: 'absent' }), { failed: 404 })
      assert.ok(checking.sent.every((line) => line.startsWith('GET ')), checking.sent.join('\n'))
      assert.equal((await client.getOne('organizations', { nameOrId: 'C++ Guild' })).description, '')
    })
  })

  describe('modules Gatehouse does not implement', () => {
    /**
     * Each module's first request after the API root is its get_one lookup (aap_authenticator.py,
     * aap_authenticator_map.py, aap_authenticator_users.py, aap_http_port.py, aap_route.py, aap_service*.py,
     * aap_ui_plugin_route.py); make_request_raw_reponse fails the module on a 404 with "The requested object could
     * not be found at <path>", before anything is sent that would change something, in check mode or not.
     */
    const ENDPOINTS = ['authenticators', 'authenticator_maps', 'authenticator_users', 'http_ports', 'routes', 'services', 'service_clusters', 'service_keys', 'service_nodes', 'service_types', 'ui_plugin_routes']

    it('answers their lookups with a 404 naming the path, and their writes too', async () => {
      const client = await admin()
      const index = (await client.send('GET', '')).json
      for (const endpoint of ENDPOINTS) {
        assert.equal(index[endpoint], undefined, `the API root does not list ${endpoint}`)
        for (const [method, query] of [['GET', { name: 'local' }], ['GET', { or__id: 1, or__name: '1' }], ['POST', undefined], ['DELETE', undefined]] as const) {
          const answer = await client.send(method, method === 'DELETE' ? `${endpoint}/1` : endpoint, method === 'POST' ? { name: 'x' } : {}, query)
          assert.equal(answer.status, 404, `${method} ${endpoint}`)
          assert.equal(answer.json.code, 'not_found', `${method} ${endpoint}: ${JSON.stringify(answer.json)}`)
          assert.match(answer.json.detail, new RegExp(`/api/gateway/v1/${endpoint}/`))
        }
      }
    })
  })

  describe('application', () => {
    /** AAPApplication.manage: the organization by name (it must exist unless absent), then the application by name within it. */
    const run = async (client: CollectionClient, params: { name: string; organization: string; state?: 'present' | 'absent' | 'exists'; [field: string]: unknown }): Promise<any> => {
      const { name, organization: organizationName, state = 'present', redirect_uris: redirectUris, user, ...rest } = params
      const organization = await client.getOne('organizations', { nameOrId: organizationName })
      if (state === 'absent' && !organization) return { changed: false }
      assert.ok(organization, `the module fails: organization ${organizationName} does not exist`)
      const owner = state === 'present' && user !== undefined ? await client.getOne('users', { nameOrId: String(user), nameField: 'username' }) : undefined
      const existing = await client.getOne('applications', { nameOrId: name, data: { organization: organization.id } })
      if (state === 'exists') return { changed: false, item: existing }
      if (state === 'absent') return existing ? { changed: true, status: await client.deleteIfNeeded(existing) } : { changed: false }
      const wanted: Record<string, unknown> = { name: existing?.name ?? name, organization: organization.id, ...rest }
      if (Array.isArray(redirectUris)) wanted.redirect_uris = redirectUris.join(' ')
      if (owner) wanted.user = owner.id
      return client.createOrUpdateIfNeeded('applications', existing, wanted)
    }

    it('creates an application in an organization found by name, shows its secret once, and a second run changes nothing', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Apps')
      const params = { name: 'deploy bot', organization: 'Apps', description: 'CI', client_type: 'confidential', authorization_grant_type: 'authorization-code', redirect_uris: ['https://ci.example.com/cb', 'https://ci.example.com/cb2'] }
      const first = await run(client, params)
      assert.equal(first.changed, true)
      assert.equal(first.item.organization, organization.id)
      assert.ok(first.item.client_id)
      assert.ok(first.item.client_secret.length >= 32, 'json_output carries the secret the create answered')
      assert.equal(first.item.redirect_uris, 'https://ci.example.com/cb https://ci.example.com/cb2')

      const second = await run(client, params)
      assert.equal(second.changed, false)
      assert.equal(second.item.id, first.item.id)
      assert.equal(second.item.client_secret, '$encrypted$')
    })

    it('updates with every field the module sets, client_type and skip_authorization included', async () => {
      const client = await admin()
      await createOrganization(client, 'Updates')
      const params = { name: 'reporting', organization: 'Updates', client_type: 'public', authorization_grant_type: 'password', skip_authorization: true, algorithm: '' }
      const created = await run(client, params)
      assert.equal(created.changed, true)
      assert.equal((await run(client, params)).changed, false)
      const updated = await run(client, { ...params, description: 'nightly reports' })
      assert.equal(updated.changed, true)
      assert.equal(updated.item.description, 'nightly reports')
      assert.equal(updated.item.client_type, 'public')

      const confidential = await run(client, { ...params, client_type: 'confidential' })
      assert.equal(confidential.changed, true)
      assert.equal(confidential.item.client_type, 'confidential')
      const consent = await client.send('PATCH', created.item.url, { skip_authorization: false })
      assert.equal(consent.status, 400, 'the realm never asks for consent')
      assert.ok(consent.json.skip_authorization, JSON.stringify(consent.json))
      const algorithm = await client.send('PATCH', created.item.url, { algorithm: 'HS256' })
      assert.equal(algorithm.status, 400)
      assert.ok(algorithm.json.algorithm, JSON.stringify(algorithm.json))
    })

    it('sets the owner the module finds by username', async () => {
      const client = await admin()
      await createOrganization(client, 'Owners')
      const owner = await createUser(client, 'app-owner')
      const created = await run(client, { name: 'owned', organization: 'Owners', client_type: 'public', authorization_grant_type: 'password', user: 'app-owner' })
      assert.equal(created.changed, true)
      assert.equal(created.item.user, owner.id)
      assert.equal(created.item.summary_fields.user.username, 'app-owner')
      assert.equal((await run(client, { name: 'owned', organization: 'Owners', client_type: 'public', authorization_grant_type: 'password', user: 'app-owner' })).changed, false)
      const missing = await client.send('PATCH', created.item.url, { user: 999999 })
      assert.equal(missing.status, 400)
      assert.ok(missing.json.user, JSON.stringify(missing.json))
    })

    it('keeps names unique within an organization, so the module\'s lookup finds one', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Unique Names')
      const other = await createOrganization(client, 'Other Names')
      const fields = { client_type: 'public', authorization_grant_type: 'password' }
      assert.equal((await client.send('POST', 'applications', { name: 'twin', organization: organization.id, ...fields })).status, 201)
      const twin = await client.send('POST', 'applications', { name: 'twin', organization: organization.id, ...fields })
      assert.equal(twin.status, 400)
      assert.deepEqual(twin.json.non_field_errors, ['The fields name, organization must make a unique set.'])
      const elsewhere = await client.send('POST', 'applications', { name: 'twin', organization: other.id, ...fields })
      assert.equal(elsewhere.status, 201, 'the same name in another organization')
      const moved = await client.send('PATCH', elsewhere.json.url, { organization: organization.id })
      assert.equal(moved.status, 400)
      assert.ok(moved.json.non_field_errors)
      const renamed = await client.send('PATCH', elsewhere.json.url, { name: 'twin' })
      assert.equal(renamed.status, 200, 'its own name is no conflict')
      assert.equal((await run(client, { name: 'twin', organization: 'Unique Names', ...fields })).changed, false)
    })

    it('sends only lookups in check mode, and deletes with state absent once', async () => {
      await createOrganization(await admin(), 'Checked')
      const checking = await admin({ checkMode: true })
      await assert.rejects(run(checking, { name: 'checked app', organization: 'Checked', client_type: 'public', authorization_grant_type: 'password' }), CheckModeExit)
      assert.ok(checking.sent.every((line) => line.startsWith('GET ')), checking.sent.join('\n'))
      const client = await admin()
      assert.equal((await client.send('GET', 'applications', {}, { name: 'checked app' })).json.count, 0, 'check mode created nothing')

      await run(client, { name: 'checked app', organization: 'Checked', client_type: 'public', authorization_grant_type: 'password' })
      const removed = await run(client, { name: 'checked app', organization: 'Checked', state: 'absent' })
      assert.deepEqual(removed, { changed: true, status: 204 })
      assert.deepEqual(await run(client, { name: 'checked app', organization: 'Checked', state: 'absent' }), { changed: false })
      assert.deepEqual(await run(client, { name: 'checked app', organization: 'Gone', state: 'absent' }), { changed: false })
    })
  })

  describe('role_definition', () => {
    /** AAPRoleDefinition.manage: found by name; name, description, content_type and permissions compared and sent. */
    const run = async (client: CollectionClient, params: { name: string; new_name?: string; description?: string; content_type: string; permissions: string[]; state?: string }): Promise<any> => {
      const existing = await client.getOne('role_definitions', { nameOrId: params.name })
      if (params.state === 'absent') return existing ? { changed: true, status: await client.deleteIfNeeded(existing) } : { changed: false }
      const wanted: Record<string, unknown> = { name: existing?.name ?? params.name }
      if (params.new_name !== undefined) wanted.name = params.new_name
      if (params.description !== undefined) wanted.description = params.description
      wanted.content_type = params.content_type
      wanted.permissions = params.permissions
      return client.createOrUpdateIfNeeded('role_definitions', existing, wanted)
    }

    it('creates a role definition, finds it by name, updates and renames it, and deletes it', async () => {
      const client = await admin()
      const params = { name: 'Team Viewer', description: 'sees the team', content_type: 'shared.team', permissions: ['shared.view_team', 'shared.member_team'] }
      const created = await run(client, params)
      assert.equal(created.changed, true)
      assert.deepEqual(created.item.permissions, ['shared.member_team', 'shared.view_team'], 'in django-ansible-base\'s order')
      assert.equal(created.item.content_type, 'shared.team')
      assert.equal((await run(client, params)).changed, false)

      const updated = await run(client, { ...params, description: 'sees and joins the team' })
      assert.equal(updated.changed, true, 'the update sends content_type with the other fields')
      assert.equal(updated.item.description, 'sees and joins the team')
      const renamed = await run(client, { ...params, new_name: 'Team Watcher' })
      assert.equal(renamed.item.name, 'Team Watcher')
      // Another type is taken while no one holds the role, as the platform's PATCH takes it (docs/access.md).
      const moved = await client.send('PATCH', renamed.item.url, { content_type: 'shared.organization' })
      assert.equal(moved.status, 200, JSON.stringify(moved.json))
      assert.equal(moved.json.content_type, 'shared.organization')

      assert.deepEqual(await run(client, { ...params, name: 'Team Watcher', state: 'absent' }), { changed: true, status: 204 })
      assert.deepEqual(await run(client, { ...params, name: 'Team Watcher', state: 'absent' }), { changed: false })
    })

    it('reports no change for the same permissions listed in another order, showing them in django-ansible-base\'s order', async () => {
      const client = await admin()
      // DABPermission's ordering: the content type's model, then the codename (add_team is the team model's).
      const inOrder = ['shared.change_organization', 'shared.member_organization', 'shared.view_organization', 'shared.add_team', 'shared.change_team', 'shared.view_team']
      const params = { name: 'Org Team Keeper', content_type: 'shared.organization', permissions: ['shared.view_team', 'shared.add_team', 'shared.view_organization', 'shared.change_team', 'shared.member_organization', 'shared.change_organization'] }
      const created = await run(client, params)
      assert.equal(created.changed, true)
      assert.deepEqual(created.item.permissions, inOrder)
      assert.equal((await run(client, params)).changed, false, 'the PATCH a second run sends changes nothing')
      const reordered = await run(client, { ...params, permissions: [...params.permissions].reverse() })
      assert.equal(reordered.changed, false, 'the module compares the lists with Python\'s ==')
      assert.deepEqual((await client.getOne('role_definitions', { nameOrId: 'Org Team Keeper' })).permissions, inOrder)
      assert.deepEqual((await client.getOne('role_definitions', { nameOrId: 'Organization Admin' })).permissions, [
        'shared.change_organization', 'shared.delete_organization', 'shared.member_organization', 'shared.view_organization',
        'shared.add_team', 'shared.change_team', 'shared.delete_team', 'shared.member_team', 'shared.view_team',
      ], 'a managed role too')
      await gw.app.audit.flush()
      const updates = (await client.send('GET', 'activitystream', {}, { operation: 'update', content_type: 'role_definition', object_id: created.item.id })).json
      assert.equal(updates.count, 0, JSON.stringify(updates.results.map((entry: any) => entry.changes)))
    })
  })

  describe('role_user_assignment', () => {
    /**
     * main(): the role definition by name or id (it must exist), the user by name or id, then for each object the
     * object by name or id (its type from the role's name) and the assignment by `role_definition`, `object_id` and
     * `user`; create_if_needed or delete_if_needed. A platform role is the one whose id is 1.
     */
    const run = async (client: CollectionClient, params: { role_definition: string; user: string; object_ids?: string[]; state?: string }) => {
      const role = await client.getOne('role_definitions', { nameOrId: params.role_definition })
      assert.ok(role, `Request returned 0 items for ${params.role_definition}`)
      const user = await client.getOne('users', { nameOrId: params.user, nameField: 'username' })
      const query: Record<string, number> = { role_definition: role.id }
      if (user) query.user = user.id
      const entityType = params.role_definition.startsWith('Team') ? 'teams' : params.role_definition.startsWith('Organization') ? 'organizations' : undefined
      const targets: Array<number | undefined> = []
      if (params.role_definition.toLowerCase().startsWith('platform') && role.id === 1) targets.push(undefined)
      else if (entityType && params.object_ids) {
        for (const entity of params.object_ids) {
          const object = await client.getOne(entityType, { nameOrId: entity })
          assert.ok(object, `Unable to find ${entityType} with name or id: ${entity}`)
          targets.push(object.id)
        }
      }
      const results = []
      for (const objectId of targets) {
        results.push(await applyAssignment(client, 'role_user_assignments', objectId === undefined ? query : { ...query, object_id: objectId }, params.state))
      }
      return { changed: results.some((r) => r.changed), results }
    }

    it('assigns organization and team roles by object names and ids, idempotently, and removes them', async () => {
      const client = await admin()
      const first = await createOrganization(client, 'Assign One')
      await createOrganization(client, 'Assign Two')
      const team = await createTeam(client, 'Assign Team', first.id)
      const user = await createUser(client, 'assignee')

      const organizations = { role_definition: 'Organization Admin', user: String(user.id), object_ids: [String(first.id), 'Assign Two'] }
      const granted = await run(client, organizations)
      assert.equal(granted.changed, true)
      assert.equal(granted.results.length, 2)
      for (const result of granted.results) {
        assert.equal(result.item.user, user.id)
        assert.equal(result.item.content_type, 'shared.organization')
        assert.equal(result.item.summary_fields.role_definition.name, 'Organization Admin')
      }
      assert.equal((await run(client, organizations)).changed, false, 'a second run finds both')

      const teams = { role_definition: 'Team Member', user: 'assignee', object_ids: ['Assign Team'] }
      const member = await run(client, teams)
      assert.equal(member.changed, true)
      assert.equal(member.results[0]!.item.object_id, String(team.id))
      assert.equal((await run(client, teams)).changed, false)
      assert.deepEqual((await run(client, { ...teams, state: 'exists' })).results, [{ changed: false, exists: true }])

      const removed = await run(client, { ...teams, state: 'absent' })
      assert.deepEqual(removed.results, [{ changed: true, status: 204 }])
      assert.equal((await run(client, { ...teams, state: 'absent' })).changed, false)
      assert.deepEqual((await run(client, { ...teams, state: 'exists' })).results, [{ changed: false, exists: false }])
    })

    it('assigns Platform Auditor, the platform role the module knows by id 1, and removes it', async () => {
      const client = await admin()
      const user = await createUser(client, 'auditor-to-be')
      const auditor = await client.getOne('role_definitions', { nameOrId: 'Platform Auditor' })
      assert.equal(auditor.id, 1, 'the module treats a platform role as such only when its id is 1')
      assert.equal(auditor.content_type, null)

      const params = { role_definition: 'Platform Auditor', user: 'auditor-to-be' }
      const granted = await run(client, params)
      assert.equal(granted.changed, true)
      assert.equal(granted.results[0]!.item.object_id, null)
      assert.equal((await client.send('GET', `users/${user.id}`)).json.is_platform_auditor, true)
      assert.equal((await run(client, params)).changed, false)
      assert.equal((await run(client, { ...params, state: 'absent' })).changed, true)
      assert.equal((await client.send('GET', `users/${user.id}`)).json.is_platform_auditor, false)
    })

    it('refuses an object role without its object, and a platform role with one, in django-ansible-base\'s words under object_id', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Words Assign')
      const user = await createUser(client, 'words-user')
      const member = await client.getOne('role_definitions', { nameOrId: 'Organization Member' })
      const auditor = await client.getOne('role_definitions', { nameOrId: 'Platform Auditor' })
      // BaseAssignmentSerializer.create and get_object_from_data (ansible_base/rbac/api/serializers.py).
      const cases: Array<[Record<string, number>, string]> = [
        [{ role_definition: member.id, user: user.id }, 'Object must be specified for this role assignment'],
        [{ role_definition: auditor.id, user: user.id, object_id: organization.id }, 'System role does not allow for object assignment'],
      ]
      for (const [body, message] of cases) {
        const refused = await client.send('POST', 'role_user_assignments', body)
        assert.equal(refused.status, 400, JSON.stringify(body))
        assert.equal(refused.json.code, 'invalid')
        assert.deepEqual(refused.json.object_id, [message])
      }
      assert.equal((await client.send('GET', 'role_user_assignments', {}, { user: user.id })).json.count, 0)
    })

    it('sends only lookups in check mode', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Checked Assign')
      await createUser(client, 'checked-user')
      const checking = await admin({ checkMode: true })
      await assert.rejects(run(checking, { role_definition: 'Organization Member', user: 'checked-user', object_ids: ['Checked Assign'] }), CheckModeExit)
      assert.ok(checking.sent.every((line) => line.startsWith('GET ')), checking.sent.join('\n'))
      assert.equal((await client.send('GET', 'role_user_assignments', {}, { object_id: organization.id })).json.count, 0)
    })
  })

  describe('role_team_assignment', () => {
    /** main(): like the user module's, the team by name or id and each object by `name` and `type`. */
    const run = async (client: CollectionClient, params: { role_definition: string; team: string; assignment_objects: Array<{ name: string; type: string }>; state?: string }) => {
      const role = await client.getOne('role_definitions', { nameOrId: params.role_definition })
      assert.ok(role)
      const team = await client.getOne('teams', { nameOrId: params.team })
      const query: Record<string, number> = { role_definition: role.id }
      if (team) query.team = team.id
      const results = []
      for (const entity of params.assignment_objects) {
        const object = await client.getOne(entity.type, { nameOrId: entity.name })
        assert.ok(object, `Request returned 0 items for ${entity.name}`)
        results.push(await applyAssignment(client, 'role_team_assignments', { ...query, object_id: object.id }, params.state))
      }
      return { changed: results.some((r) => r.changed), results }
    }

    it('gives a team a role on its organization and on itself, idempotently, and takes them back', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'Team Roles')
      const team = await createTeam(client, 'Role Holders', organization.id)
      const params = { role_definition: 'Organization Member', team: 'Role Holders', assignment_objects: [{ name: 'Team Roles', type: 'organizations' }] }
      const granted = await run(client, params)
      assert.equal(granted.changed, true)
      assert.equal(granted.results[0]!.item.team, team.id)
      assert.equal(granted.results[0]!.item.object_id, String(organization.id))
      assert.equal(granted.results[0]!.item.summary_fields.team.name, 'Role Holders')
      assert.equal((await run(client, params)).changed, false)

      const byId = { role_definition: 'Organization Member', team: String(team.id), assignment_objects: [{ name: String(organization.id), type: 'organizations' }] }
      assert.equal((await run(client, byId)).changed, false, 'the team and the organization by id find the same assignment')

      assert.equal((await run(client, { ...params, state: 'absent' })).changed, true)
      assert.equal((await run(client, { ...params, state: 'absent' })).changed, false)
    })

    it('refuses Platform Auditor for a team with a 400 naming the field', async () => {
      const client = await admin()
      const organization = await createOrganization(client, 'No Team Auditors')
      const team = await createTeam(client, 'Would-be Auditors', organization.id)
      const refused = await client.send('POST', 'role_team_assignments', { role_definition: 1, team: team.id })
      assert.equal(refused.status, 400, JSON.stringify(refused.json))
      assert.equal(typeof refused.json.detail, 'string')
    })
  })
})
