import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * The requests django-ansible-base documents for the platform's clients (docs/apps/rbac/for_clients.md): an object's
 * assignments by `?object_id=&content_type__model=`, and the permissions each kind of role may hold at role_metadata/.
 */
describe('role assignments and role definitions as django-ansible-base\'s clients look them up', () => {
  let gw: TestGateway
  let ids: { organization: number; team: number | undefined }

  before(async () => {
    gw = await startGateway()
    for (const name of ['member', 'watcher']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    ids = await createOrgAndTeam(gw, 'Alpha', 'AlphaTeam')
    // The first organization and the first team share an id: only the content type tells their assignments apart.
    assert.equal(ids.organization, ids.team)
    for (const [role, object] of [['Organization Member', ids.organization], ['Team Member', ids.team]] as const) {
      assert.equal((await grant(gw, 'member', role, object)).status, 201)
    }
    assert.equal((await grant(gw, 'watcher', 'Platform Auditor')).status, 201)
    for (const [role, object] of [['Organization Member', ids.organization], ['Team Member', ids.team]] as const) {
      const given = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, role), team: ids.team, object_id: object })
      assert.equal(given.status, 201, JSON.stringify(given.body))
    }
  })
  after(() => gw.close())

  /** The role names of the assignments a query lists, sorted. */
  const listed = async (query: string) => {
    const answer = await call(gw, 'GET', query)
    assert.equal(answer.status, 200, `${query}: ${JSON.stringify(answer.body)}`)
    return answer.body.results.map((a: any) => `${a.summary_fields.role_definition.name}${a.content_type ? ` on ${a.content_type}` : ''}`).sort()
  }

  it('finds an object\'s assignments by object_id and content_type__model, as the platform documents it', async () => {
    for (const actor of ['user', 'team']) {
      assert.deepEqual(await listed(`role_${actor}_assignments/?object_id=${ids.organization}&content_type__model=organization`), ['Organization Member on shared.organization'])
      assert.deepEqual(await listed(`role_${actor}_assignments/?object_id=${ids.team}&content_type__model=team`), ['Team Member on shared.team'])
      assert.deepEqual(await listed(`role_${actor}_assignments/?content_type__model__in=team,organization&object_id=${ids.team}`), ['Organization Member on shared.organization', 'Team Member on shared.team'])
      assert.deepEqual(await listed(`role_${actor}_assignments/?not__content_type__model=team&object_id=${ids.team}`), ['Organization Member on shared.organization'])
    }
  })

  it('reads the platform\'s content types with every lookup of content_type, not only an exact one', async () => {
    assert.deepEqual(await listed('role_user_assignments/?content_type__in=shared.team,shared.organization'), ['Organization Member on shared.organization', 'Team Member on shared.team'])
    assert.deepEqual(await listed('role_user_assignments/?content_type__iexact=Shared.Team'), ['Team Member on shared.team'])
    assert.deepEqual(await listed('role_user_assignments/?or__content_type=shared.team&or__role_definition=0'), ['Team Member on shared.team'])
    // A platform-wide role is on no content type: null, as the platform shows and filters it.
    assert.deepEqual(await listed('role_user_assignments/?content_type__isnull=true'), ['Platform Auditor'])
    assert.deepEqual(await listed('role_user_assignments/?content_type__model__isnull=true'), ['Platform Auditor'])
    assert.deepEqual(await listed('role_user_assignments/?content_type__isnull=false'), ['Organization Member on shared.organization', 'Team Member on shared.team'])
    assert.deepEqual(await listed('role_user_assignments/?not__content_type__isnull=true'), ['Organization Member on shared.organization', 'Team Member on shared.team'])
  })

  it('reads a platform-wide assignment\'s object_id and content_type as null, as it shows them, in filters and the order', async () => {
    const objectScoped = ['Organization Member on shared.organization', 'Team Member on shared.team']
    assert.deepEqual(await listed('role_user_assignments/?object_id__isnull=true'), ['Platform Auditor'])
    assert.deepEqual(await listed('role_user_assignments/?object_id__isnull=false'), objectScoped)
    for (const query of ['object_id=0', 'object_id__lt=1', 'object_id__startswith=0']) assert.deepEqual(await listed(`role_user_assignments/?${query}`), [], query)
    assert.deepEqual(await listed('role_user_assignments/?content_type=None'), ['Platform Auditor'])
    assert.deepEqual(await listed('role_user_assignments/?not__content_type=None'), objectScoped)
    assert.deepEqual(await listed('role_user_assignments/?content_type=platform'), [])
    // Empty values last, and first when descending.
    for (const field of ['object_id', 'content_type']) {
      const order = async (by: string) => (await call(gw, 'GET', `role_user_assignments/?order_by=${by}`)).body.results.map((a: any) => a.summary_fields.role_definition.name)
      assert.equal((await order(field)).at(-1), 'Platform Auditor', field)
      assert.equal((await order(`-${field}`))[0], 'Platform Auditor', field)
    }
    const roleNames = async (query: string) => (await call(gw, 'GET', `role_definitions/?${query}`)).body.results.map((r: any) => r.name).sort()
    assert.deepEqual(await roleNames('content_type=None'), ['Platform Auditor'])
  })

  it('refuses the text lookups of an assignment\'s content_type, a foreign key on the platform', async () => {
    for (const parameter of ['content_type__icontains=shared', 'content_type__startswith=team', 'content_type__contains=platform']) {
      const answer = await call(gw, 'GET', `role_user_assignments/?${parameter}`)
      assert.equal(answer.status, 400, parameter)
      assert.equal(answer.body.code, 'invalid', parameter)
    }
  })

  it('filters role definitions by content_type__model', async () => {
    const names = async (query: string) => {
      const answer = await call(gw, 'GET', `role_definitions/?${query}`)
      assert.equal(answer.status, 200, `${query}: ${JSON.stringify(answer.body)}`)
      return answer.body.results.map((r: any) => r.name).sort()
    }
    assert.deepEqual(await names('content_type__model=team'), ['Team Admin', 'Team Member'])
    assert.deepEqual(await names('content_type__model=organization&managed=true'), ['Organization Admin', 'Organization Member'])
    assert.deepEqual(await names('content_type__model__isnull=true'), ['Platform Auditor'])
    // The platform's web interface asks by the content type's api_slug, its name.
    assert.deepEqual(await names('content_type__api_slug=shared.team'), ['Team Admin', 'Team Member'])
    assert.deepEqual(await listed(`role_user_assignments/?content_type__api_slug=shared.organization&object_id=${ids.organization}`), ['Organization Member on shared.organization'])
    assert.deepEqual(await names('content_type__model__in=team,organization&name__startswith=Team'), ['Team Admin', 'Team Member'])
  })

  it('says at role_metadata/ which permissions each kind of role may hold, and a role of all of them is taken', async () => {
    const anonymous = await gw.fetch('/api/gateway/v1/role_metadata/')
    assert.equal(anonymous.status, 401)
    const answer = await call(gw, 'GET', 'role_metadata/', undefined, { authorization: basic('member', 'member-password-long') })
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const allowed = answer.body.allowed_permissions
    assert.deepEqual(Object.keys(allowed), ['shared.organization', 'shared.team', 'system'])
    assert.ok(allowed['shared.organization'].includes('shared.add_team') && allowed['shared.organization'].includes('shared.member_team'))
    assert.deepEqual(allowed['shared.team'], ['shared.view_team', 'shared.change_team', 'shared.delete_team', 'shared.member_team'])
    for (const [type, permissions] of Object.entries(allowed) as [string, string[]][]) {
      // A global role may not hold member_team; everything listed it may.
      assert.ok(!(type === 'system' && permissions.includes('shared.member_team')))
      const made = await call(gw, 'POST', 'role_definitions/', { name: `All of ${type}`, content_type: type === 'system' ? null : type, permissions })
      assert.equal(made.status, 201, `${type}: ${JSON.stringify(made.body)}`)
    }
  })

  it('takes the content_type the platform\'s web interface sends with an assignment, when it is the role\'s', async () => {
    await gw.app.accounts.create({ username: 'given', password: 'given-password-long' })
    const user = (await call(gw, 'GET', 'users/?username=given')).body.results[0].id
    const give = (role: string, body: Record<string, unknown>) => roleId(gw, role).then((id) => call(gw, 'POST', 'role_user_assignments/', { role_definition: id, user, ...body }))
    for (const [role, object, contentType] of [
      ['Organization Member', ids.organization, 'shared.organization'],
      ['Team Member', ids.team, 'shared.team'],
      ['Team Admin', ids.team, 'team'],
      ['Platform Auditor', undefined, null],
    ] as const) {
      const given = await give(role, { object_id: object, content_type: contentType })
      assert.equal(given.status, 201, `${role} with ${contentType}: ${JSON.stringify(given.body)}`)
      assert.equal(given.body.content_type, contentType === null ? null : `shared.${contentType.split('.').at(-1)}`)
    }
    // Another kind of object than the role is on is refused by name, giving nothing: the role decides what object_id names.
    await gw.app.accounts.create({ username: 'refused', password: 'refused-password-long' })
    const other = (await call(gw, 'GET', 'users/?username=refused')).body.results[0].id
    for (const [role, object, contentType] of [
      ['Organization Member', ids.organization, 'shared.team'],
      ['Team Member', ids.team, 'awx.inventory'],
      ['Team Member', ids.team, null],
      ['Platform Auditor', undefined, 'shared.organization'],
    ] as const) {
      const refused = await call(gw, 'POST', 'role_user_assignments/', { role_definition: await roleId(gw, role), user: other, object_id: object, content_type: contentType })
      assert.equal(refused.status, 400, `${role} with ${contentType}: ${JSON.stringify(refused.body)}`)
      assert.ok(refused.body.errors.content_type, JSON.stringify(refused.body))
    }
    assert.equal((await call(gw, 'GET', `role_user_assignments/?user=${other}`)).body.count, 0)
    const team = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Admin'), team: ids.team, object_id: ids.team, content_type: 'shared.team' })
    assert.equal(team.status, 201, JSON.stringify(team.body))
  })

  it('filters and orders by a related object\'s id under its column\'s name too, as the platform\'s web interface asks', async () => {
    const member = (await call(gw, 'GET', 'users/?username=member')).body.results[0].id
    const teamMember = await roleId(gw, 'Team Member')
    // The web interface's request before it takes a team from a user: Django filters a foreign key by its column, user_id.
    assert.deepEqual(await listed(`role_user_assignments/?object_id=${ids.team}&user_id=${member}&role_definition=${teamMember}`), ['Team Member on shared.team'])
    assert.deepEqual(await listed(`role_user_assignments/?user_id=${member}&role_definition_id__in=${teamMember},0`), ['Team Member on shared.team'])
    assert.deepEqual(await listed(`role_team_assignments/?team_id=${ids.team}&content_type__model=team`), ['Team Admin on shared.team', 'Team Member on shared.team'])
    const teams = await call(gw, 'GET', `teams/?organization_id=${ids.organization}&order_by=-organization_id`)
    assert.equal(teams.status, 200, JSON.stringify(teams.body))
    assert.deepEqual(teams.body.results.map((t: any) => t.name), ['AlphaTeam'])
    // Only a related object's: an id of the object itself, or of a field that is no relation, is still unknown.
    for (const query of ['users/?username_id=1', 'teams/?name_id=1', 'teams/?id_id=1']) {
      assert.equal((await call(gw, 'GET', query)).status, 400, query)
    }
  })

  it('refuses every other related lookup on assignments, naming the parameter sent', async () => {
    for (const [list, parameter, value] of [
      ['role_user_assignments', 'team__name', 'BetaTeam'],
      ['role_team_assignments', 'user__username', 'carol'],
      ['role_user_assignments', 'user__email', 'x'],
      ['role_user_assignments', 'role_definition__description', 'x'],
      ['role_user_assignments', 'role_definition__managed', 'true'],
      ['role_team_assignments', 'team__organization', '1'],
      ['role_user_assignments', 'role_definition__name__regex', 'x'],
      ['role_definitions', 'role_definition__name', 'x'],
      ['role_user_assignments', 'order_by', 'role_definition__description'],
      ['role_user_assignments', 'order_by', '-user__email'],
      ['role_user_assignments', 'role_definition__name__in', ''],
    ]) {
      const query = `${list}/?${parameter}=${value}`
      const answer = await call(gw, 'GET', query)
      assert.equal(answer.status, 400, query)
      assert.equal(answer.body.code, 'invalid', query)
      assert.ok(answer.body.errors[parameter], `${query}: ${JSON.stringify(answer.body)}`)
    }
  })

  it('names the parameter sent when a content_type isnull value is no boolean', async () => {
    for (const list of ['role_user_assignments', 'role_team_assignments', 'role_definitions']) {
      for (const parameter of ['content_type__model__isnull', 'not__content_type__api_slug__isnull', 'content_type__isnull']) {
        const query = `${list}/?${parameter}=x`
        const answer = await call(gw, 'GET', query)
        assert.equal(answer.status, 400, query)
        assert.deepEqual(Object.keys(answer.body.errors), [parameter], `${query}: ${JSON.stringify(answer.body)}`)
        assert.match(String(answer.body.errors[parameter]), /true or false/)
      }
    }
  })
})

/**
 * The related names the platform's clients filter and sort assignments by: its web interface's access tab orders by
 * `role_definition__name` and filters by the holder's name, and its clients leave out roles by
 * `not__role_definition__name__in`. A join, so on both backends.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`role assignments by their role's and holder's names (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase: (() => Promise<void>) | undefined

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    dropDatabase = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    const beta = await createOrgAndTeam(gw, 'Beta', 'BetaTeam')
    for (const name of ['carol', 'dave']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    for (const [user, role, object] of [['carol', 'Team Member', beta.team], ['carol', 'Organization Admin', beta.organization], ['dave', 'Team Admin', beta.team]] as const) {
      assert.equal((await grant(gw, user, role, object)).status, 201)
    }
    for (const [role, object] of [['Organization Member', beta.organization], ['Team Member', beta.team]] as const) {
      assert.equal((await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, role), team: beta.team, object_id: object })).status, 201)
    }
  })
  after(async () => {
    await gw.close()
    await dropDatabase?.()
  })

  it('reads a platform-wide assignment\'s object_id and content_type as null in filters and the order', async () => {
    await gw.app.accounts.create({ username: 'erin', password: 'erin-password-long' })
    assert.equal((await grant(gw, 'erin', 'Platform Auditor')).status, 201)
    const names = async (query: string) => (await call(gw, 'GET', `role_user_assignments/?${query}`)).body.results.map((a: any) => `${a.summary_fields.user.username}: ${a.summary_fields.role_definition.name}`)
    assert.deepEqual(await names('object_id__isnull=true'), ['erin: Platform Auditor'])
    assert.deepEqual(await names('content_type=None'), ['erin: Platform Auditor'])
    assert.ok(!(await names('object_id__isnull=false')).includes('erin: Platform Auditor'))
    assert.deepEqual(await names('object_id__lt=1'), [])
    assert.equal((await names('order_by=object_id')).at(-1), 'erin: Platform Auditor')
    assert.equal((await names('order_by=-content_type'))[0], 'erin: Platform Auditor')
  })

  it('filters and orders assignments by the role\'s name and the user\'s or team\'s, as the platform\'s clients ask', async () => {
    /** Who holds which role, in the order listed. */
    const inOrder = async (query: string, headers?: Record<string, string>) => {
      const answer = await call(gw, 'GET', query, undefined, headers)
      assert.equal(answer.status, 200, `${query}: ${JSON.stringify(answer.body)}`)
      return answer.body.results.map((a: any) => `${a.summary_fields.user?.username ?? a.summary_fields.team.name}: ${a.summary_fields.role_definition.name}`)
    }
    const both = 'user__username__in=carol,dave'
    // The platform's web interface sorts an object's access tab by role name, either way.
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&order_by=role_definition__name`), ['carol: Organization Admin', 'dave: Team Admin', 'carol: Team Member'])
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&order_by=-role_definition__name`), ['carol: Team Member', 'dave: Team Admin', 'carol: Organization Admin'])
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&order_by=-user__username,role_definition__name`), ['dave: Team Admin', 'carol: Organization Admin', 'carol: Team Member'])
    assert.deepEqual(await inOrder('role_user_assignments/?user__username=carol&role_definition__name=Team%20Member'), ['carol: Team Member'])
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&role_definition__name__in=Team%20Admin,Team%20Member&order_by=user__username`), ['carol: Team Member', 'dave: Team Admin'])
    // The platform's clients leave out roles the other side manages with not__role_definition__name__in.
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&not__role_definition__name__in=Team%20Admin,Organization%20Admin`), ['carol: Team Member'])
    assert.deepEqual(await inOrder(`role_user_assignments/?${both}&role_definition__name__istartswith=team&order_by=id`), ['carol: Team Member', 'dave: Team Admin'])
    assert.deepEqual(await inOrder(`role_definitions/${await roleId(gw, 'Team Admin')}/user_assignments/?user__username=dave`), ['dave: Team Admin'])
    assert.deepEqual(await inOrder('role_team_assignments/?team__name=BetaTeam&order_by=-role_definition__name'), ['BetaTeam: Team Member', 'BetaTeam: Organization Member'])
    assert.deepEqual(await inOrder('role_team_assignments/?team__name=BetaTeam&role_definition__name=Organization%20Member'), ['BetaTeam: Organization Member'])
    // A caller still sees only the assignments on what it holds a role on: carol holds none platform-wide.
    assert.deepEqual(await inOrder('role_user_assignments/?role_definition__name=Platform%20Auditor', { authorization: basic('carol', 'carol-password-long') }), [])
    assert.deepEqual(await inOrder('role_user_assignments/?user__username=dave&order_by=role_definition__name', { authorization: basic('carol', 'carol-password-long') }), ['dave: Team Admin'])
  })
})
