import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { SYSTEM_ACTOR } from '../../src/audit/actor.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { ADMIN_PASSWORD, adminAuth, basic, json, runCli, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, passwordLogin, realmUrl, submitForm, testRealms, tokenRequest, REALM } from '../helpers/oidc.ts'
import { login, withCsrf } from '../helpers/session.ts'
import { createToken } from '../helpers/tokens.ts'

const STREAM = '/api/gateway/v1/activitystream/'

for (const backend of gatewayBackends) {
  describe(`audit trail on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start({ config: { realms: testRealms } })
    })
    after(() => gw.close())

    /** The activity stream after every waiting entry was written, newest first. */
    async function stream(query = '', auth: Record<string, string> = adminAuth): Promise<any[]> {
      await gw.app.audit.flush()
      const response = await gw.fetch(`${STREAM}?order_by=-id&page_size=200${query}`, { headers: auth })
      const body = await json(response)
      assert.equal(response.status, 200, JSON.stringify(body))
      return body.results
    }
    const send = (method: string, path: string, body?: unknown, auth: Record<string, string> = adminAuth) =>
      gw.fetch(path, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) })

    it('records logins and failed logins with the method, the reason code and the source address', async () => {
      await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', 'alice-password') } })).status, 200)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', 'not-her-password') } })).status, 401)
      const [failed, succeeded] = await stream('&created_by__username=alice')
      assert.equal(failed.operation, 'login_error')
      assert.equal(failed.code, 'invalid_credentials')
      assert.equal(failed.auth_method, 'basic')
      assert.equal(failed.source_address, '127.0.0.1')
      assert.equal(failed.created_by, null, 'a failed login proves nothing about who tried')
      assert.equal(failed.summary_fields.created_by.username, 'alice')
      assert.equal(succeeded.operation, 'login')
      assert.equal(succeeded.created_by, succeeded.summary_fields.created_by.id)
      assert.equal(succeeded.code, null)
      assert.ok(Date.parse(succeeded.created) <= Date.parse(failed.created))
    })

    it('records a session login, its session, the logout, and the session\'s end', async () => {
      const session = await login(gw, 'alice', 'alice-password')
      assert.equal((await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session) })).status, 302)
      const [logout, ended, created, signedIn] = await stream('&created_by__username=alice')
      assert.equal(signedIn.operation, 'login')
      assert.equal(signedIn.auth_method, 'session')
      assert.equal(created.operation, 'create')
      assert.equal(created.content_type, 'session')
      assert.ok(created.object_id)
      assert.equal(ended.operation, 'delete', 'the session\'s end is a change, as any other session\'s end')
      assert.equal(ended.content_type, 'session')
      assert.equal(ended.object_id, created.object_id)
      assert.equal(ended.changes.removed_fields.user, created.created_by)
      assert.equal(logout.operation, 'logout')
      assert.equal(logout.auth_method, 'session')
      assert.ok(!JSON.stringify([logout, ended, created, signedIn]).includes(session.sessionId), 'the session identifier is a secret')
    })

    it('records a session a superuser ended', async () => {
      await login(gw, 'alice', 'alice-password')
      const [started] = await stream('&created_by__username=alice&content_type=session&operation=create')
      assert.equal((await send('DELETE', `/api/gateway/v1/sessions/${started.object_id}/`)).status, 204)
      const [ended] = await stream(`&content_type=session&object_id=${started.object_id}&operation=delete`)
      assert.equal(ended.summary_fields.created_by.username, 'admin')
      assert.equal(ended.changes.removed_fields.user, started.created_by)
    })

    it('records a lockout, and the refusals during it as account_locked', async () => {
      for (let i = 0; i < 10; i++) await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('mallory', `guess-${i}`) } })
      const locked = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('mallory', 'guess-10') } })
      assert.equal((await json(locked)).code, 'account_locked')
      const [refused, tenth, lockout, ninth] = await stream('&object_name=mallory')
      assert.deepEqual([ninth.operation, ninth.code], ['login_error', 'invalid_credentials'])
      assert.deepEqual([lockout.operation, lockout.code], ['lockout', 'account_locked'], 'the tenth wrong password locks')
      assert.deepEqual([tenth.operation, tenth.code], ['login_error', 'invalid_credentials'])
      assert.deepEqual([refused.operation, refused.code, refused.source_address], ['login_error', 'account_locked', '127.0.0.1'])
    })

    it('shows a change made through the API at once, before the trail\'s next timed write', async () => {
      const created = await json(await send('POST', '/api/gateway/v1/users/', { username: 'edith', password: 'edith-first-password' }))
      const response = await gw.fetch(`${STREAM}?content_type=user&object_id=${created.id}`, { headers: adminAuth })
      assert.equal(response.status, 200)
      const [made] = (await json(response)).results
      assert.equal(made?.operation, 'create', 'the newest entry on the first page')
      assert.equal(made.changes.added_fields.username, 'edith')
    })

    it('records user changes with who, from where, and the changed fields before and after, never a password', async () => {
      const created = await json(await send('POST', '/api/gateway/v1/users/', { username: 'carol', password: 'carol-first-password', email: 'carol@example.com' }))
      assert.equal((await send('PATCH', `/api/gateway/v1/users/${created.id}/`, { email: 'carol@example.org', password: 'carol-second-password' })).status, 200)
      assert.equal((await send('DELETE', `/api/gateway/v1/users/${created.id}/`)).status, 204)
      const [deleted, updated, made] = await stream(`&content_type=user&object_id=${created.id}&operation__in=create,update,delete`)
      assert.equal(made.operation, 'create')
      assert.equal(made.changes.added_fields.username, 'carol')
      assert.equal(made.changes.added_fields.password, '$encrypted$')
      assert.equal(updated.operation, 'update')
      assert.deepEqual(updated.changes.changed_fields, { email: ['carol@example.com', 'carol@example.org'], password: ['$encrypted$', '$encrypted$'] })
      assert.equal(updated.summary_fields.created_by.username, 'admin')
      assert.equal(updated.auth_method, 'basic')
      assert.equal(updated.source_address, '127.0.0.1')
      assert.equal(deleted.operation, 'delete')
      assert.equal(deleted.changes.removed_fields.email, 'carol@example.org')
      const everything = JSON.stringify(await stream())
      for (const secret of ['carol-first-password', 'carol-second-password', ADMIN_PASSWORD]) assert.ok(!everything.includes(secret))
    })

    it('records no entry for an update that changes nothing: the same values again, or an empty body', async () => {
      const created = await json(await send('POST', '/api/gateway/v1/users/', { username: 'dora', password: 'dora-long-password', first_name: 'Dora' }))
      const dora = { authorization: basic('dora', 'dora-long-password') }
      for (const [path, body, auth] of [
        [`/api/gateway/v1/users/${created.id}/`, { email: 'dora@example.com' }, adminAuth],
        [`/api/gateway/v1/users/${created.id}/`, { email: 'dora@example.com' }, adminAuth],
        [`/api/gateway/v1/users/${created.id}/`, {}, adminAuth],
        ['/api/gateway/v1/me/', { first_name: 'Dora' }, dora],
        ['/api/gateway/v1/me/', {}, dora],
      ] as const) assert.equal((await send('PATCH', path, body, auth)).status, 200, JSON.stringify(body))
      const updates = await stream(`&content_type=user&object_id=${created.id}&operation=update`)
      assert.deepEqual(updates.map((entry) => entry.changes.changed_fields), [{ email: ['', 'dora@example.com'] }])
    })

    it('records settings changes and personal tokens created and revoked, never the token', async () => {
      assert.equal((await send('PATCH', '/api/gateway/v1/settings/', { session_cookie_age: 1200 })).status, 200)
      const token = await createToken(gw, { authorization: basic('alice', 'alice-password') }, { description: 'ci' })
      assert.equal((await send('DELETE', `/api/gateway/v1/tokens/${token.id}/`)).status, 204)
      const [revoked, issued, setting] = await stream('&operation__in=create,update,delete')
      assert.equal(setting.content_type, 'settings')
      assert.deepEqual(setting.changes.changed_fields, { session_cookie_age: [900, 1200] })
      assert.equal(issued.content_type, 'token')
      assert.equal(issued.object_id, String(token.id))
      assert.equal(issued.summary_fields.created_by.username, 'alice')
      assert.equal(issued.changes.added_fields.description, 'ci')
      assert.equal(revoked.operation, 'delete')
      assert.equal(revoked.summary_fields.created_by.username, 'admin')
      assert.ok(!JSON.stringify(await stream()).includes(token.token))
    })

    it('records OAuth2 applications created, changed and deleted, never the client secret', async () => {
      const response = await send('POST', '/api/gateway/v1/applications/', { name: 'reports', client_type: 'confidential', authorization_grant_type: 'password' })
      const created = await json(response)
      assert.equal(response.status, 201, JSON.stringify(created))
      assert.equal((await send('PATCH', `/api/gateway/v1/applications/${created.id}/`, { description: 'nightly' })).status, 200)
      assert.equal((await send('DELETE', `/api/gateway/v1/applications/${created.id}/`)).status, 204)
      const [deleted, changed, made] = await stream(`&content_type=application&object_id=${created.id}`)
      assert.deepEqual([made.operation, changed.operation, deleted.operation], ['create', 'update', 'delete'])
      assert.equal(made.changes.added_fields.client_secret, '$encrypted$')
      assert.equal(made.changes.added_fields.client_id, created.client_id)
      assert.deepEqual(changed.changes.changed_fields, { description: ['', 'nightly'] })
      assert.ok(!JSON.stringify(await stream()).includes(created.client_secret))

    it('records each team and application deleted with its organization, and each application deleted with its owner', async () => {
      const organization = await json(await send('POST', '/api/gateway/v1/organizations/', { name: 'Leaving' }))
      const team = await json(await send('POST', '/api/gateway/v1/teams/', { name: 'Going too', organization: organization.id }))
      const inOrganization = await json(await send('POST', '/api/gateway/v1/applications/', { name: 'its client', organization: organization.id, client_type: 'confidential', authorization_grant_type: 'password' }))
      const owner = await json(await send('POST', '/api/gateway/v1/users/', { username: 'app-owner', password: 'app-owner-password' }))
      const owned = await json(await send('POST', '/api/gateway/v1/applications/', { name: 'owned client', user: owner.id, client_type: 'public', authorization_grant_type: 'password' }))
      assert.equal((await send('DELETE', `/api/gateway/v1/organizations/${organization.id}/`)).status, 204)
      assert.equal((await send('DELETE', `/api/gateway/v1/users/${owner.id}/`)).status, 204)

      const [teamGone] = await stream(`&content_type=team&object_id=${team.id}`)
      assert.equal(teamGone.operation, 'delete', 'the trail must not show a team deleted with its organization as still there')
      assert.equal(teamGone.code, 'deleted_with_organization')
      assert.equal(teamGone.summary_fields.created_by.username, 'admin')
      assert.equal(teamGone.changes.removed_fields.name, 'Going too')
      const [clientGone] = await stream(`&content_type=application&object_id=${inOrganization.id}`)
      assert.equal(clientGone.operation, 'delete')
      assert.equal(clientGone.code, 'deleted_with_organization')
      assert.equal(clientGone.changes.removed_fields.client_id, inOrganization.client_id)
      assert.equal(clientGone.changes.removed_fields.client_secret, '$encrypted$')
      const [ownedGone] = await stream(`&content_type=application&object_id=${owned.id}`)
      assert.equal(ownedGone.operation, 'delete')
      assert.equal(ownedGone.code, 'deleted_with_owner')
      assert.equal(ownedGone.changes.removed_fields.user, owner.id)
      assert.ok(!JSON.stringify(await stream()).includes(inOrganization.client_secret))
    })
    })

    it('records the role assignments a deletion takes with it as the platform does: none, only the deleted object\'s own entries', async () => {
      const created = async (path: string, body: unknown) => {
        const response = await send('POST', `/api/gateway/v1/${path}`, body)
        const object = await json(response)
        assert.equal(response.status, 201, `${path}: ${JSON.stringify(object)}`)
        return object
      }
      const roleNamed = async (name: string) => (await json(await gw.fetch(`/api/gateway/v1/role_definitions/?name=${encodeURIComponent(name)}`, { headers: adminAuth }))).results[0].id
      const holder = await created('users/', { username: 'cascade-holder', password: 'cascade-holder-password' })
      const leaving = await created('users/', { username: 'cascade-leaving', password: 'cascade-leaving-password' })
      const organization = await created('organizations/', { name: 'Cascading' })
      const team = await created('teams/', { name: 'Cascading team', organization: organization.id })
      const kept = await created('organizations/', { name: 'Cascade kept' })
      const custom = await created('role_definitions/', { name: 'Cascade viewer', content_type: 'shared.organization', permissions: ['shared.view_organization'] })
      const given = [
        await created('role_user_assignments/', { role_definition: await roleNamed('Organization Member'), user: holder.id, object_id: organization.id }),
        await created('role_user_assignments/', { role_definition: await roleNamed('Team Member'), user: holder.id, object_id: team.id }),
        await created('role_team_assignments/', { role_definition: await roleNamed('Organization Member'), team: team.id, object_id: organization.id }),
        await created('role_user_assignments/', { role_definition: custom.id, user: holder.id, object_id: kept.id }),
        await created('role_user_assignments/', { role_definition: await roleNamed('Organization Member'), user: leaving.id, object_id: kept.id }),
      ]
      const before = (await stream())[0].id
      for (const path of [`role_definitions/${custom.id}/`, `users/${leaving.id}/`, `teams/${team.id}/`, `organizations/${organization.id}/`]) {
        assert.equal((await send('DELETE', `/api/gateway/v1/${path}`)).status, 204, path)
      }
      for (const assignment of given) {
        const actor = assignment.user === undefined ? 'team' : 'user'
        assert.equal((await gw.fetch(`/api/gateway/v1/role_${actor}_assignments/${assignment.id}/`, { headers: adminAuth })).status, 404, 'the deletion took the assignment with it')
      }
      const since = (await stream(`&id__gt=${before}`)).map((entry) => `${entry.operation} ${entry.content_type} ${entry.object_id} ${entry.code ?? ''}`.trim())
      assert.deepEqual(since.sort(), [
        `delete organization ${organization.id}`,
        `delete role_definition ${custom.id}`,
        `delete team ${team.id}`,
        `delete user ${leaving.id}`,
      ], 'django-ansible-base\'s assignments write no activity stream entry: neither their own delete nor a disassociate')
      // Each grant's own entry stays, no longer linked to an assignment that is gone.
      for (const assignment of given) {
        const actor = assignment.user === undefined ? 'team' : 'user'
        const [grant, ...more] = await stream(`&content_type=role_${actor}_assignment&object_id=${assignment.id}`)
        assert.equal(grant.operation, 'create')
        assert.deepEqual(more, [])
        assert.equal(grant.related.content_object, undefined)
      }
    })

    it('names each entry\'s platform model in content_type_model, and finds entries by it with content_type__model', async () => {
      const application = await json(await send('POST', '/api/gateway/v1/applications/', { name: 'by-model', client_type: 'confidential', authorization_grant_type: 'password' }))
      const [made] = await stream(`&content_type=application&object_id=${application.id}`)
      assert.equal(made.content_type, 'application')
      assert.equal(made.content_type_model, 'oauth2application', 'as django-ansible-base\'s OAuth2Application model is named')
      const byModel = async (query: string) => (await stream(`&${query}`)).map((entry) => `${entry.content_type} ${entry.content_type_model}`)
      assert.deepEqual(new Set(await byModel('content_type__model=oauth2application')), new Set(['application oauth2application']))
      assert.deepEqual(new Set(await byModel('content_type__model__iexact=OAuth2Application')), new Set(['application oauth2application']))
      assert.deepEqual(new Set(await byModel('content_type__model=user')), new Set(['user user']))
      assert.deepEqual(await byModel('content_type__model=application'), [], 'no platform model is named so')
      assert.deepEqual(new Set(await byModel('content_type__model__in=oauth2application,user')), new Set(['application oauth2application', 'user user']))
      assert.ok(!(await byModel('not__content_type__model=user')).includes('user user'))
      for (const query of ['content_type__model__isnull=maybe', 'content_type__model__in=', 'content_type__model__icontains=app']) {
        const response = await gw.fetch(`${STREAM}?${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 400, query)
        assert.ok(body.errors[query.split('=')[0]!], `${query}: ${JSON.stringify(body)}`)
      }
    })

    it('filters on the platform\'s related_* fields as the platform would on entries that have none: null everywhere', async () => {
      assert.equal((await send('POST', '/api/gateway/v1/users/', { username: 'related-filters', password: 'a-long-related-password' })).status, 201)
      const all = (await stream()).map((entry) => entry.id)
      assert.ok(all.length > 0)
      const ids = async (query: string) => (await stream(`&${query}`)).map((entry) => entry.id)
      for (const field of ['related_content_type', 'related_object_id', 'related_field_name', 'related_content_type__model']) {
        assert.deepEqual(await ids(`${field}__isnull=true`), all, field)
        assert.deepEqual(await ids(`${field}__isnull=false`), [], field)
        assert.deepEqual(await ids(`${field}=1`), [], field)
        assert.deepEqual(await ids(`${field}__in=1,2`), [], field)
        // As Django negates a lookup on a nullable column: what does not equal 1 includes null.
        assert.deepEqual(await ids(`not__${field}=1`), all, field)
        assert.deepEqual(await ids(`or__${field}__isnull=true&or__operation=nothing`), all, field)
      }
      assert.deepEqual(await ids('related_object_id__icontains=1'), [])
      const ordered = await gw.fetch(`${STREAM}?order_by=related_object_id&page_size=200`, { headers: adminAuth })
      assert.deepEqual((await json(ordered)).results.map((entry: { id: number }) => entry.id), [...all].reverse(), 'ordered by a null field, then by id')
      const bad = await gw.fetch(`${STREAM}?related_object_id__isnull=maybe`, { headers: adminAuth })
      assert.equal(bad.status, 400)
      assert.ok((await json(bad)).errors.related_object_id__isnull)
    })

    it('finds entries by a case-insensitive match in their changes, as the platform\'s JSONField changes__icontains, and refuses what it cannot match', async () => {
      const created = await send('POST', '/api/gateway/v1/users/', { username: 'changes-icontains-person', password: 'a-long-changes-password' })
      const user = await json(created)
      assert.equal(created.status, 201, JSON.stringify(user))
      const found = await stream('&changes__icontains=CHANGES-ICONTAINS-PERSON')
      assert.ok(found.length >= 1)
      assert.ok(found.every((entry) => JSON.stringify(entry.changes).toLowerCase().includes('changes-icontains-person')), JSON.stringify(found))
      assert.ok(found.some((entry) => entry.operation === 'create' && entry.content_type === 'user' && entry.object_id === String(user.id)))
      const withoutChanges = await stream('&changes__isnull=true')
      assert.ok(withoutChanges.length > 0 && withoutChanges.every((entry) => entry.changes === null))
      assert.ok((await stream('&not__changes__isnull=true')).every((entry) => entry.changes !== null))
      for (const query of ['changes=x', 'changes__startswith=x', 'changes__changed_fields__email__isnull=false']) {
        const response = await gw.fetch(`${STREAM}?${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 400, query)
        assert.ok(body.errors[query.split('=')[0]!], `${query}: ${JSON.stringify(body)}`)
      }
    })

    it('tells sign-ins from changes by kind, which the operation alone does not', async () => {
      await login(gw, 'admin', ADMIN_PASSWORD)
      assert.equal((await send('POST', '/api/gateway/v1/organizations/', { name: 'Kind Of Entry' })).status, 201)
      const all = await stream()
      const changes = await stream('&kind=change')
      const signIns = await stream('&kind__in=sign_in')
      assert.deepEqual(new Set([...changes, ...signIns].map((entry) => entry.id)), new Set(all.map((entry) => entry.id)))
      assert.ok(changes.every((entry) => entry.kind === 'change') && signIns.every((entry) => entry.kind === 'sign_in'))
      assert.ok(changes.some((entry) => entry.content_type === 'organization' && entry.operation === 'create'))
      // The session a login started is a create too: operation__in=create,update,delete does not list changes alone.
      const session = signIns.find((entry) => entry.content_type === 'session' && entry.operation === 'create')
      assert.ok(session, JSON.stringify(signIns))
      assert.ok((await stream('&operation__in=create,update,delete')).some((entry) => entry.id === session.id))
      assert.ok(!changes.some((entry) => entry.id === session.id))
    })

    it('links an object\'s own entries from its related.activity_stream, as django-ansible-base links an audited object\'s', async () => {
      const create = async (path: string, body: Record<string, unknown>) => {
        const response = await send('POST', `/api/gateway/v1/${path}`, body)
        const created = await json(response)
        assert.equal(response.status, 201, JSON.stringify(created))
        return created
      }
      const organization = await create('organizations/', { name: 'Linked Entries' })
      const objects = {
        user: await create('users/', { username: 'linked-entries', password: 'a-long-linked-password' }),
        organization,
        team: await create('teams/', { name: 'Linked Entries Team', organization: organization.id }),
        application: await create('applications/', { name: 'linked entries', client_type: 'public', authorization_grant_type: 'password' }),
        token: await create('tokens/', { scope: 'read' }),
      }
      await gw.app.audit.flush()
      for (const [kind, object] of Object.entries(objects)) {
        const link = object.related.activity_stream
        assert.equal(link, `${STREAM}?content_type=${kind}&object_id=${object.id}`, kind)
        const shown = await json(await gw.fetch(link, { headers: adminAuth }))
        assert.deepEqual(shown.results.map((entry: { operation: string; content_type: string; object_id: string }) => [entry.operation, entry.content_type, entry.object_id]), [['create', kind, String(object.id)]], kind)
      }
    })

    it('links who acted and the object acted on while they exist, and summarizes the actor as the platform does', async () => {
      await gw.app.accounts.create({ username: 'linker', password: 'linker-long-password', firstName: 'Lin', lastName: 'Ker', isSuperuser: true })
      const asLinker = { authorization: basic('linker', 'linker-long-password') }
      const create = async (path: string, body: Record<string, unknown>) => {
        const response = await send('POST', `/api/gateway/v1/${path}`, body, asLinker)
        const created = await json(response)
        assert.equal(response.status, 201, JSON.stringify(created))
        return created
      }
      const organization = await create('organizations/', { name: 'Linked Objects' })
      const objects: Record<string, any> = {
        user: await create('users/', { username: 'linked-object', first_name: 'Lee', last_name: 'Object' }),
        organization,
        team: await create('teams/', { name: 'Linked Objects Team', organization: organization.id }),
        application: await create('applications/', { name: 'linked objects', client_type: 'public', authorization_grant_type: 'password' }),
        token: await create('tokens/', { scope: 'read' }),
        role_definition: await create('role_definitions/', { name: 'Linked Viewer', content_type: 'shared.organization', permissions: ['shared.view_organization'] }),
      }
      objects.role_user_assignment = await create('role_user_assignments/', { role_definition: objects.role_definition.id, user: objects.user.id, object_id: organization.id })
      const linker = { id: (await gw.app.store.users.findByUsername('linker'))!.id, username: 'linker', first_name: 'Lin', last_name: 'Ker' }
      for (const [kind, object] of Object.entries(objects)) {
        const [made] = await stream(`&content_type=${kind}&object_id=${object.id}`)
        assert.deepEqual(made.related, { created_by: `/api/gateway/v1/users/${linker.id}/`, content_object: object.url }, kind)
        assert.deepEqual(made.summary_fields.created_by, linker, kind)
        assert.equal(made.summary_fields.content_object.id, object.id, kind)
        assert.equal((await gw.fetch(made.related.content_object, { headers: adminAuth })).status, 200, kind)
        assert.deepEqual(await json(await gw.fetch(made.url, { headers: adminAuth })), made, `${kind}: the entry alone as in the list`)
      }
      const [userMade] = await stream(`&content_type=user&object_id=${objects.user.id}`)
      assert.deepEqual(userMade.summary_fields.content_object, { id: objects.user.id, name: 'linked-object', username: 'linked-object', first_name: 'Lee', last_name: 'Object' })

      assert.equal((await send('DELETE', `/api/gateway/v1/teams/${objects.team.id}/`)).status, 204)
      assert.equal((await send('DELETE', `/api/gateway/v1/users/${linker.id}/`)).status, 204)
      const [teamDeleted, teamMade] = await stream(`&content_type=team&object_id=${objects.team.id}`)
      assert.deepEqual(teamDeleted.related, { created_by: '/api/gateway/v1/users/1/' }, 'an object gone is not linked')
      assert.deepEqual(teamMade.related, {}, 'nor an actor gone')
      assert.equal(teamMade.created_by, linker.id, 'who acted stays recorded')
      assert.deepEqual(teamMade.summary_fields.created_by, { ...linker, first_name: '', last_name: '' })
      assert.deepEqual(teamMade.summary_fields.content_object, { id: objects.team.id, name: 'Linked Objects Team' })

      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('nobody-linked', 'not-a-password') } })).status, 401)
      const [refused] = await stream('&created_by__username=nobody-linked')
      assert.deepEqual([refused.related, refused.summary_fields.created_by], [{}, { id: null, username: 'nobody-linked', first_name: '', last_name: '' }])
      gw.app.audit.change(SYSTEM_ACTOR, 'update', { type: 'user', id: objects.user.id, name: 'linked-object' }, { is_active: true }, { is_active: false }, 'directory_entry_gone')
      const [bySystem] = await stream(`&code=directory_entry_gone&object_id=${objects.user.id}`)
      assert.deepEqual(bySystem.related, { content_object: objects.user.url })
      assert.equal('created_by' in bySystem.summary_fields, false, 'an entry nobody made has no created_by summary, as on the platform')
      gw.app.audit.change(SYSTEM_ACTOR, 'delete', { type: 'organization', id: '99999999999', name: 'beyond any row id' }, { name: 'beyond any row id' })
      const [beyond] = await stream('&object_id=99999999999')
      assert.deepEqual([beyond.related, beyond.summary_fields.content_object], [{}, { id: '99999999999', name: 'beyond any row id' }], 'an id no row has is looked up in no table')
    })

    it('records organizations and teams created, renamed and deleted', async () => {
      const organization = await json(await send('POST', '/api/gateway/v1/organizations/', { name: 'Research' }))
      const team = await json(await send('POST', '/api/gateway/v1/teams/', { name: 'analysts', organization: organization.id }))
      assert.equal((await send('PATCH', `/api/gateway/v1/teams/${team.id}/`, { name: 'forecasters' })).status, 200)
      assert.equal((await send('DELETE', `/api/gateway/v1/teams/${team.id}/`)).status, 204)
      const [deleted, renamed, made] = await stream(`&content_type=team&object_id=${team.id}`)
      assert.deepEqual([made.operation, renamed.operation, deleted.operation], ['create', 'update', 'delete'])
      assert.deepEqual(renamed.changes.changed_fields.name, ['analysts', 'forecasters'])
      assert.equal(deleted.summary_fields.content_object.name, 'forecasters')
      const [createdOrganization] = await stream(`&content_type=organization&object_id=${organization.id}`)
      assert.equal(createdOrganization.changes.added_fields.name, 'Research')
    })

    it('records role definitions and role assignments given and taken away', async () => {
      const organization = await json(await send('POST', '/api/gateway/v1/organizations/', { name: 'Audited' }))
      const role = await json(await send('POST', '/api/gateway/v1/role_definitions/', { name: 'Org Viewer', content_type: 'shared.organization', permissions: ['shared.view_organization'] }))
      assert.equal((await send('PATCH', `/api/gateway/v1/role_definitions/${role.id}/`, { description: 'reads one organization' })).status, 200)
      const user = await gw.app.accounts.create({ username: 'erin', password: 'erin-long-password-1' })
      const given = await send('POST', '/api/gateway/v1/role_user_assignments/', { role_definition: role.id, user: user.id, object_id: organization.id })
      const assignment = await json(given)
      assert.equal(given.status, 201, JSON.stringify(assignment))
      assert.equal((await send('DELETE', `/api/gateway/v1/role_user_assignments/${assignment.id}/`)).status, 204)
      assert.equal((await send('DELETE', `/api/gateway/v1/role_definitions/${role.id}/`)).status, 204)

      const [roleDeleted, roleChanged, roleMade] = await stream(`&content_type=role_definition&object_id=${role.id}`)
      assert.deepEqual([roleMade.operation, roleChanged.operation, roleDeleted.operation], ['create', 'update', 'delete'])
      assert.deepEqual(roleChanged.changes.changed_fields.description, ['', 'reads one organization'])
      const [taken, made] = await stream(`&content_type=role_user_assignment&object_id=${assignment.id}`)
      assert.deepEqual([made.operation, taken.operation], ['create', 'delete'])
      assert.equal(made.summary_fields.content_object.name, 'Org Viewer')
      assert.equal(made.changes.added_fields.user, user.id)
      assert.equal(made.summary_fields.created_by.username, 'admin')
    })

    it('records changes made with the CLI as the command line\'s', async () => {
      const storage = gw.app.store.database.dialect === 'postgres' ? ['--database', gw.app.config.storage.database!] : ['--data-dir', gw.dataDir]
      const result = await runCli(['users', 'create', 'dave', '--password-stdin', ...storage], { input: 'dave-long-password-1' })
      assert.equal(result.code, 0, result.stderr)
      const [made] = await stream('&object_name=dave')
      assert.equal(made.operation, 'create')
      assert.equal(made.auth_method, 'cli')
      assert.equal(made.created_by, null)
      assert.equal(made.source_address, null)
    })

    it('records an identity key rotated with the CLI, named by its kid', async () => {
      const storage = gw.app.store.database.dialect === 'postgres' ? ['--database', gw.app.config.storage.database!] : ['--data-dir', gw.dataDir]
      const result = await runCli(['keys', 'rotate', '--identity', ...storage])
      assert.equal(result.code, 0, result.stderr)
      const kid = result.stdout.trim()
      const [rotated] = await stream(`&content_type=identity_key&object_id=${encodeURIComponent(kid)}`)
      assert.ok(rotated, 'the rotation is in the trail')
      assert.equal(rotated.operation, 'create')
      assert.equal(rotated.auth_method, 'cli')
      assert.equal(typeof rotated.changes.added_fields.signs_from, 'string')
    })

    it('shows realm logins as Keycloak admin events', async () => {
      assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })).status, 200)
      assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'wrong-password' })).status, 400)
      await gw.app.audit.flush()
      const response = await gw.fetch(`/admin/realms/${REALM}/events?type=LOGIN&type=LOGIN_ERROR&max=2`, { headers: adminAuth })
      const events = await json(response)
      assert.equal(response.status, 200, JSON.stringify(events))
      assert.deepEqual(events.map((e: any) => [e.type, e.error, e.realmId, e.details.username, e.ipAddress]), [
        ['LOGIN_ERROR', 'invalid_user_credentials', REALM, 'alice', '127.0.0.1'],
        ['LOGIN', undefined, REALM, 'alice', '127.0.0.1'],
      ])
      assert.equal(typeof events[0].time, 'number')
      assert.equal((await gw.fetch('/admin/realms/nowhere/events', { headers: adminAuth })).status, 404)
      assert.equal((await gw.fetch(`/admin/realms/${REALM}/events?dateFrom=yesterday`, { headers: adminAuth })).status, 400)
      const malformed = await json(await gw.fetch(`/admin/realms/${REALM}/events?colour=blue&max=many`, { headers: adminAuth }))
      assert.deepEqual(malformed.errors, { max: ['A valid integer is required.'] }, 'an unknown parameter is ignored, a known one still checked')
      const tooLarge = await gw.fetch(`/admin/realms/${REALM}/events?user=9999999999`, { headers: adminAuth })
      assert.equal(tooLarge.status, 400, 'a user id beyond 32 bits is bad input, not a database error')
      assert.ok((await json(tooLarge)).errors.user)
    })

    it('records logouts at a realm, with a refresh token or at its end-session endpoint, as Keycloak LOGOUT events', async () => {
      await gw.app.accounts.create({ username: 'lou', password: 'lou-password-long' })
      const logouts = async () => (await stream('&created_by__username=lou')).filter((entry) => entry.operation === 'logout')
      const before = (await logouts()).length
      // Keycloak's logout with a refresh token.
      const scripted = await passwordLogin(gw, 'lou', 'lou-password-long', { scope: 'openid' })
      const byRefreshToken = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: 'end-users', refresh_token: scripted.refresh_token }),
      })
      assert.equal(byRefreshToken.status, 204)
      // A browser with no realm session bringing a password login's id_token_hint, which it confirms.
      const hinted = await passwordLogin(gw, 'lou', 'lou-password-long', { scope: 'openid' })
      const elsewhere = new CookieJar()
      const asked = await browse(gw, elsewhere, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: hinted.id_token })}`))
      assert.match(await (await submitForm(gw, elsewhere, asked, {})).response.text(), /You are logged out\./)
      // A browser signed in at the realm's login page, logging out its own session.
      const jar = new CookieJar()
      const login = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
        client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT,
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      })}`))
      assert.ok(new URL((await submitForm(gw, jar, login, { username: 'lou', password: 'lou-password-long' })).url).searchParams.get('code'))
      const confirm = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/logout'))
      assert.match(await (await submitForm(gw, jar, confirm, { logout: 'yes' })).response.text(), /You are logged out\./)

      const recorded = (await logouts()).slice(0, (await logouts()).length - before)
      assert.equal(recorded.length, 3, JSON.stringify(recorded))
      for (const entry of recorded) {
        assert.equal(entry.realm, REALM)
        assert.equal(entry.auth_method, 'oidc')
        assert.equal(entry.source_address, '127.0.0.1')
        assert.equal(entry.summary_fields.content_object.name, 'lou')
      }
      await gw.app.audit.flush()
      const events = await json(await gw.fetch(`/admin/realms/${REALM}/events?type=LOGOUT&max=3`, { headers: adminAuth }))
      assert.deepEqual(events.map((e: any) => [e.type, e.details.username]), [['LOGOUT', 'lou'], ['LOGOUT', 'lou'], ['LOGOUT', 'lou']])
      const again = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: 'end-users', refresh_token: scripted.refresh_token }),
      })
      assert.equal(again.status, 204)
      assert.equal((await logouts()).length, before + 3, 'a refresh token logged out already ends nothing more, and records nothing')
    })

    it('takes Keycloak\'s event parameters as Keycloak does, ignoring the ones it does not know', async () => {
      const events = async (query: string) => {
        const response = await gw.fetch(`/admin/realms/${REALM}/events?${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 200, `${query}: ${JSON.stringify(body)}`)
        return body as any[]
      }
      const refused = async (query: string) => {
        const response = await gw.fetch(`/admin/realms/${REALM}/events?${query}`, { headers: adminAuth })
        assert.equal(response.status, 400, query)
        const body = await json(response)
        assert.equal(body.code, 'invalid')
        return body.errors
      }
      const startedAt = Date.now()
      await gw.app.accounts.create({ username: 'frank', password: 'frank-password' })
      for (const password of ['frank-password', 'frank-wrong', 'frank-password']) await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'frank', password })
      await gw.app.audit.flush()
      const newest = await events('max=3')
      assert.deepEqual(newest.map((e) => [e.type, e.details.username]), [['LOGIN', 'frank'], ['LOGIN_ERROR', 'frank'], ['LOGIN', 'frank']])
      assert.deepEqual(await events('max=3&colour=blue&briefRepresentation=true'), newest)

      const since = await events(`dateFrom=${startedAt}&direction=asc`)
      assert.deepEqual(since.map((e) => e.type), ['LOGIN', 'LOGIN_ERROR', 'LOGIN'], 'an epoch timestamp in milliseconds, oldest first')
      assert.ok(since[0].time <= since[2].time)
      assert.deepEqual(await events(`dateTo=${startedAt - 1}&dateFrom=${startedAt - 1}`), [])
      assert.deepEqual((await events('direction=desc&max=3')).map((e) => e.time), newest.map((e) => e.time))
      assert.equal((await events('max=1&max=3')).length, 1, 'a parameter given twice: the first, as JAX-RS takes it')

      assert.deepEqual(await refused('direction=sideways'), { direction: ['Invalid value for sortDirection, expected value is asc or desc'] })
      assert.deepEqual(await refused('dateFrom=yesterday&dateTo=2026-13-01'), {
        dateFrom: ['Invalid value for \'dateFrom\', expected format is yyyy-MM-dd or an Epoch timestamp'],
        dateTo: ['Invalid value for \'dateTo\', expected format is yyyy-MM-dd or an Epoch timestamp'],
      })
      assert.ok((await refused('client=end-users')).client, 'the events do not record the client: a filter that cannot be applied is refused')
    })

    it('answers a malformed or unknown filter with 400 naming it, and non-auditors with 403', async () => {
      for (const [query, field] of [['created__gte=last-week', 'created__gte'], ['order_by=name', 'order_by'], ['colour=blue', 'colour'], ['created_by=me', 'created_by'], ['id__gt=ten', 'id__gt']]) {
        const response = await gw.fetch(`${STREAM}?${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 400, query)
        assert.equal(body.code, 'invalid')
        assert.ok(body.errors[field!], `${query}: ${JSON.stringify(body)}`)
      }
      assert.equal((await gw.fetch(STREAM, { headers: { authorization: basic('alice', 'alice-password') } })).status, 403)
      assert.equal((await gw.fetch(STREAM)).status, 401)
    })

    it('pages like every other list', async () => {
      const first = await json(await gw.fetch(`${STREAM}?page_size=2`, { headers: adminAuth }))
      assert.ok(first.count > 2)
      assert.equal(first.results.length, 2)
      assert.equal(first.next, `${STREAM}?page_size=2&page=2`)
      const one = await json(await gw.fetch(first.results[0].url, { headers: adminAuth }))
      assert.deepEqual(one, first.results[0])
    })

    it('lists the newest first unless ordered, as the platform\'s activity stream does', async () => {
      for (const name of ['Ordered One', 'Ordered Two', 'Ordered Three']) assert.equal((await send('POST', '/api/gateway/v1/organizations/', { name })).status, 201)
      await gw.app.audit.flush()
      const unordered = await json(await gw.fetch(`${STREAM}?page_size=200`, { headers: adminAuth }))
      const ids = unordered.results.map((entry: { id: number }) => entry.id)
      assert.ok(ids.length > 2)
      assert.deepEqual(ids, [...ids].sort((a: number, b: number) => b - a))
      const oldest = await json(await gw.fetch(`${STREAM}?page_size=200&order_by=id`, { headers: adminAuth }))
      assert.deepEqual(oldest.results.map((entry: { id: number }) => entry.id), [...ids].reverse())
    })

    it('reads a page of 200 entries in as many queries as a page of one', async () => {
      for (let made = 0; made < 70; made++) {
        const organization = await json(await send('POST', '/api/gateway/v1/organizations/', { name: `Counted ${made}` }))
        await send('POST', '/api/gateway/v1/teams/', { name: `counted ${made}`, organization: organization.id })
        await send('PATCH', `/api/gateway/v1/users/1/`, { first_name: `Admin ${made}` })
      }
      await gw.app.audit.flush()
      let queries = 0
      // The event bus's polling, the trail's own writes and the access model's periodic read run beside the request;
      // they are not the list's. The periodic read is stopped, as a slow machine would let it fall within a request.
      gw.app.access.stop()
      gw.store.database.onQuery((_seconds, sql) => { if (!/"events"|"gateway_processes"|^insert|^delete|^update/.test(sql)) queries++ })
      const counted = async (query: string) => {
        queries = 0
        const response = await gw.fetch(`${STREAM}${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 200, JSON.stringify(body))
        return { queries, entries: body.results?.length }
      }
      // The newest team's entry: a page naming a user and an object, as the full page does.
      await counted('?page_size=1&content_type=team')
      const one = await counted('?page_size=1&content_type=team')
      const full = await counted('?page_size=200')
      assert.equal(full.entries, 200)
      assert.equal(full.queries, one.queries, `${JSON.stringify(one)} ${JSON.stringify(full)}`)
      assert.ok(full.queries <= 4, `the page, its count, the users and the objects it names: ${full.queries}`)
      const teamEntry = (await stream('&content_type=team'))[0]
      const detail = await counted(`${teamEntry.id}/`)
      assert.ok(detail.queries <= 3, `the entry and what it names: ${detail.queries}`)
    })
  })
}
