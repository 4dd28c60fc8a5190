import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, roleId, userId } from '../helpers/access.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { heldOn } from '../helpers/mappings.ts'
import { login } from '../helpers/session.ts'
import { signInWithSso, SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

const post = (gw: TestGateway, headers: Record<string, string>) => gw.fetch('/api/eda/v1/activations/', { method: 'POST', headers })

describe('teams from LDAP groups, with the demo eda rules', () => {
  let directory: TestDirectory
  let gw: TestGateway
  const bob = { authorization: basic('bob', PASSWORDS.bob!) }

  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({
      config: { ldap: directory.config({ memberships: [{ organization: 'Platform', team: 'Automation', groups: [GROUPS.developers.toUpperCase()] }, { organization: 'Research', groups: [GROUPS.auditors] }] }) },
    })
    await createOrgAndTeam(gw, 'Platform', 'Automation')
    await createOrgAndTeam(gw, 'Research')
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('puts a member of the mapped group in the team at login, so the team rule lets them write', async () => {
    assert.equal((await post(gw, bob)).status, 200)
    assert.equal((await post(gw, bob)).status, 200, 'a login that changed nothing is remembered')
    const teams = await call(gw, 'GET', `users/${await userId(gw, 'bob')}/teams/`)
    assert.deepEqual(teams.body.results.map((t: { name: string }) => t.name), ['Automation'])
    const orgs = await call(gw, 'GET', `users/${await userId(gw, 'bob')}/organizations/`)
    assert.deepEqual(orgs.body.results.map((o: { name: string }) => o.name), ['Research'])
    assert.equal((await post(gw, { authorization: basic('carol', PASSWORDS.carol!) })).status, 403, 'carol is in no mapped group')
  })

  it('takes the team away at the next login once the directory removed them, and drops their cached credentials', async () => {
    await directory.setMembers(GROUPS.developers, [`uid=alice,ou=people,${SUFFIX}`])
    try {
      assert.equal((await post(gw, bob)).status, 200, 'still the verified, cached login')
      await login(gw, 'bob', PASSWORDS.bob!)
      const refused = await post(gw, bob)
      assert.equal(refused.status, 403)
      assert.equal((await json(refused)).code, 'access_denied')
      assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'bob')}/teams/`)).body.count, 0)
      // Both changes are in the audit trail, made by the directory for bob at his sign-ins.
      await gw.app.audit.flush()
      const changes = (await call(gw, 'GET', `activitystream/?content_type=role_user_assignment&order_by=id&page_size=200`)).body.results
        .filter((entry: any) => entry.summary_fields.created_by?.username === 'bob' && entry.summary_fields.content_object?.name === 'Team Member')
      assert.deepEqual(changes.map((entry: any) => [entry.operation, entry.auth_method]), [['create', 'ldap'], ['delete', 'ldap']])
      assert.equal(changes[0].changes.added_fields.user, await userId(gw, 'bob'))
      assert.equal(changes[1].object_id, changes[0].object_id)
    } finally {
      await directory.setMembers(GROUPS.developers, [`uid=alice,ou=people,${SUFFIX}`, `uid=bob,ou=people,${SUFFIX}`])
    }
  })

  it('keeps the Platform Auditor role with the auditor flag the directory sets', async () => {
    await directory.setMembers(GROUPS.auditors, [`uid=alice,ou=people,${SUFFIX}`])
    try {
      await login(gw, 'bob', PASSWORDS.bob!)
      assert.equal((await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'bob')}&role_definition=${(await call(gw, 'GET', 'role_definitions/?name=Platform%20Auditor')).body.results[0].id}`)).body.count, 0)
    } finally {
      await directory.setMembers(GROUPS.auditors, [`uid=bob,ou=people,${SUFFIX}`])
    }
    await login(gw, 'bob', PASSWORDS.bob!)
    const held = await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'bob')}`)
    assert.ok(held.body.results.some((a: any) => a.summary_fields.role_definition.name === 'Platform Auditor'))
  })

  it('gives the Platform Auditor role with the flag to an account its first sign-in makes an auditor', async () => {
    await directory.setMembers(GROUPS.auditors, [`uid=bob,ou=people,${SUFFIX}`, `uid=dave,ou=people,${SUFFIX}`])
    try {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dave', PASSWORDS.dave!) } })).status, 200)
      const dave = await userId(gw, 'dave')
      assert.equal((await call(gw, 'GET', `users/${dave}/`)).body.is_platform_auditor, true)
      const held = await call(gw, 'GET', `role_user_assignments/?user=${dave}&role_definition=${await roleId(gw, 'Platform Auditor')}`)
      assert.equal(held.body.count, 1)
    } finally {
      await directory.setMembers(GROUPS.auditors, [`uid=bob,ou=people,${SUFFIX}`])
    }
  })

  it('leaves roles an administrator gave alone', async () => {
    const automation = (await call(gw, 'GET', 'teams/?name=Automation')).body.results[0]
    const admin = (await call(gw, 'GET', 'role_definitions/?name=Team%20Admin')).body.results[0]
    assert.equal((await call(gw, 'POST', 'role_user_assignments/', { role_definition: admin.id, user: await userId(gw, 'carol'), object_id: automation.id })).status, 201)
    await login(gw, 'carol', PASSWORDS.carol!)
    const held = await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'carol')}`)
    assert.deepEqual(held.body.results.map((a: any) => a.summary_fields.role_definition.name), ['Team Admin'])
  })
})

describe('teams from an SSO provider\'s groups claim, with the demo eda rules', () => {
  let corp: UpstreamIdp
  let gw: TestGateway
  const person = (username: string, groups: string[]) => ({ sub: `sub-${username}`, password: `${username}-upstream-pw`, claims: { preferred_username: username, groups } })

  before(async () => {
    corp = await startUpstreamIdp({ erin: person('erin', ['automation-crew']), finn: person('finn', ['other']) })
    gw = await startGateway({
      config: { sso: [corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret', memberships: [{ organization: 'Platform', team: 'Automation', groups: ['automation-crew'] }] })] },
    })
    corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}${SSO}corp/callback/`] })
    await createOrgAndTeam(gw, 'Platform', 'Automation')
  })
  after(async () => {
    await gw?.close()
    await corp?.close()
  })

  const sessionPost = async (login: string) => {
    const { browser } = await signInWithSso(gw, 'Corp ID', login, corp)
    const token = browser.cookie(gw.url, 'csrftoken')!
    return browser.request(`${gw.url}/api/eda/v1/activations/`, { form: { run: 'now' }, headers: { 'x-csrftoken': token, referer: `${gw.url}/` } })
  }

  it('lets a holder of the mapped claim value write, and nobody else', async () => {
    assert.equal((await sessionPost('erin')).status, 200)
    assert.equal((await sessionPost('finn')).status, 403)
  })

  it('takes the team away at the next sign-in once the claim no longer carries the group', async () => {
    corp.users.get('erin')!.claims.groups = []
    assert.equal((await sessionPost('erin')).status, 403)
    assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'erin')}/teams/`)).body.count, 0)
  })
})

describe('teams from LDAP groups, for a person holding very many other roles', () => {
  let directory: TestDirectory
  let gw: TestGateway

  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ memberships: [{ organization: 'Platform', team: 'Automation', groups: [GROUPS.developers] }] }) } })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('takes the mapped team away however many roles elsewhere were given before it', async () => {
    await login(gw, 'bob', PASSWORDS.bob!)
    const bob = await userId(gw, 'bob')
    const member = await roleId(gw, 'Organization Member')
    // Written straight to the database: ten thousand organizations through the API would take minutes.
    const { db } = gw.store.database
    const now = Date.now()
    for (let first = 0; first < 10_000; first += 500) {
      const organizations = Array.from({ length: 500 }, (_, i) => ({ name: `Bulk ${first + i}`, description: '', created_at: now, modified_at: now }))
      const ids = await db.insertInto('organizations').values(organizations).returning('id').execute()
      await db.insertInto('role_user_assignments').values(ids.map(({ id }) => ({ role_definition_id: member, user_id: bob, object_type: 'organization', object_id: id, created_at: now }))).execute()
    }
    const { team } = await createOrgAndTeam(gw, 'Platform', 'Automation')
    await login(gw, 'bob', PASSWORDS.bob!)
    assert.equal(await heldOn(gw, 'bob', 'team', team!), 1)
    await directory.setMembers(GROUPS.developers, [`uid=alice,ou=people,${SUFFIX}`])
    await login(gw, 'bob', PASSWORDS.bob!)
    assert.equal(await heldOn(gw, 'bob', 'team', team!), 0, 'the team is revoked at the login after bob left the group')
    assert.equal((await call(gw, 'GET', `role_user_assignments/?user=${bob}&role_definition=${member}&page_size=1`)).body.count, 10_000, 'the roles no mapping names are left alone')
  })
})
