import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId, userId } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** Custom role definitions are checked as django-ansible-base's validators check them (ansible_base/rbac/validators.py). */
describe('custom role definitions', () => {
  let gw: TestGateway
  let research: { organization: number; team: number | undefined }

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'holder', password: 'holder-password-long' })
    research = await createOrgAndTeam(gw, 'Research', 'Lab')
  })
  after(() => gw.close())

  const roleCount = async () => (await call(gw, 'GET', 'role_definitions/')).body.count as number
  const create = (body: Record<string, unknown>) => call(gw, 'POST', 'role_definitions/', body)

  /** A refused create answers 400 naming `field` with a message matching `message`, and creates nothing. */
  async function refused(body: Record<string, unknown>, field: string, message: RegExp): Promise<void> {
    const before = await roleCount()
    const { status, body: answer } = await create(body)
    assert.equal(status, 400, JSON.stringify(answer))
    assert.equal(answer.code, 'invalid')
    assert.deepEqual(Object.keys(answer.errors), [field], JSON.stringify(answer))
    assert.match(answer.errors[field].join(' '), message)
    assert.equal(await roleCount(), before)
  }

  it('requires the view permission of each model a role holds another permission of', async () => {
    await refused({ name: 'Blind Editor', content_type: 'shared.organization', permissions: ['shared.change_organization'] }, 'permissions', /needs to include view/)
    await refused({ name: 'Blind Member', content_type: 'shared.team', permissions: ['shared.member_team'] }, 'permissions', /needs to include view.*member_team/)
    await refused({ name: 'Team Changer', content_type: 'shared.organization', permissions: ['shared.view_organization', 'shared.change_team'] }, 'permissions', /model team needs to include view/)
    const addOnly = await create({ name: 'Team Adder', content_type: 'shared.organization', permissions: ['shared.add_team'] })
    assert.equal(addOnly.status, 201, 'an add permission alone needs no view')
  })

  it('requires change with delete', async () => {
    await refused({ name: 'Deleter', content_type: 'shared.team', permissions: ['shared.view_team', 'shared.delete_team'] }, 'permissions', /needs to include change/)
    assert.equal((await create({ name: 'Team Remover', content_type: 'shared.team', permissions: ['shared.view_team', 'shared.change_team', 'shared.delete_team'] })).status, 201)
  })

  it('allows add permissions only for a model\'s children, and keeps team permissions other than view out of global roles', async () => {
    await refused({ name: 'Self Adder', content_type: 'shared.team', permissions: ['shared.add_team'] }, 'permissions', /"shared.add_team" are not valid for team roles/)
    await refused({ name: 'Everyone In', content_type: null, permissions: ['shared.view_team', 'shared.member_team'] }, 'permissions', /member_team permission can not be used in global roles/)
    await refused({ name: 'Global Team Editor', content_type: null, permissions: ['shared.view_team', 'shared.change_team'] }, 'permissions', /"shared.change_team" are not valid for global roles/)
    await refused({ name: 'Global Team Adder', content_type: null, permissions: ['shared.add_team'] }, 'permissions', /"shared.add_team" are not valid for global roles/)
  })

  it('names unknown permissions and content types as the platform\'s fields do, each alone', async () => {
    await refused({ name: 'Flyer', content_type: 'shared.team', permissions: ['shared.view_team', 'shared.fly'] }, 'permissions', /Invalid pk "shared.fly" - object does not exist/)
    await refused({ name: 'Nowhere', content_type: 'shared.inventory', permissions: ['shared.view_team'] }, 'content_type', /Invalid pk "shared.inventory" - object does not exist/)
  })

  it('takes codenames and types with any prefix or none, answers them with the platform\'s, and makes a role without a type global', async () => {
    const made = await create({ name: 'Org Viewer', content_type: 'organization', permissions: ['view_organization', 'shared.view_organization', 'awx.view_team'] })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.equal(made.body.content_type, 'shared.organization')
    assert.deepEqual(made.body.permissions, ['shared.view_organization', 'shared.view_team'])
    const global = await create({ name: 'Everything Viewer', permissions: ['shared.view_organization', 'shared.view_team'] })
    assert.equal(global.status, 201, JSON.stringify(global.body))
    assert.equal(global.body.content_type, null)
  })

  it('checks a change against the role\'s type and the permissions it keeps, and changes nothing when refused', async () => {
    const made = await create({ name: 'Watcher', content_type: 'shared.team', permissions: ['shared.view_team'] })
    const id = made.body.id
    const dropView = await call(gw, 'PATCH', `role_definitions/${id}/`, { permissions: ['shared.change_team'] })
    assert.equal(dropView.status, 400)
    assert.match(dropView.body.errors.permissions.join(' '), /needs to include view/)
    const orgPermission = await call(gw, 'PATCH', `role_definitions/${id}/`, { permissions: ['shared.view_team', 'shared.view_organization'] })
    assert.equal(orgPermission.status, 400)
    assert.deepEqual((await call(gw, 'GET', `role_definitions/${id}/`)).body.permissions, ['shared.view_team'])
  })

  it('takes the role\'s own type back on PATCH and PUT, moves an unassigned role to another type, and refuses that once it is assigned', async () => {
    const made = await create({ name: 'Looker', content_type: 'shared.organization', permissions: ['shared.view_organization'] })
    const id = made.body.id
    const same = await call(gw, 'PUT', `role_definitions/${id}/`, { name: 'Looker', description: '', content_type: 'shared.organization', permissions: ['shared.view_organization'] })
    assert.equal(same.status, 200, JSON.stringify(same.body))
    const wrongForType = await call(gw, 'PATCH', `role_definitions/${id}/`, { content_type: 'shared.team' })
    assert.equal(wrongForType.status, 400, 'a team role cannot hold view_organization')
    assert.match(wrongForType.body.errors.permissions.join(' '), /not valid for team roles/)
    const moved = await call(gw, 'PATCH', `role_definitions/${id}/`, { content_type: 'shared.team', permissions: ['shared.view_team'] })
    assert.equal(moved.status, 200, JSON.stringify(moved.body))
    assert.equal(moved.body.content_type, 'shared.team')

    assert.equal((await grant(gw, 'holder', 'Looker', research.team)).status, 201)
    const back = await call(gw, 'PATCH', `role_definitions/${id}/`, { content_type: 'shared.organization', permissions: ['shared.view_organization'] })
    assert.equal(back.status, 400)
    assert.ok(back.body.errors.content_type, JSON.stringify(back.body))
    const shown = (await call(gw, 'GET', `role_definitions/${id}/`)).body
    assert.deepEqual([shown.content_type, shown.permissions], ['shared.team', ['shared.view_team']])
  })

  it('refuses changing or deleting a managed role with 400, as the platform does, and changes nothing', async () => {
    const id = await roleId(gw, 'Team Member')
    for (const [method, body] of [['PATCH', { name: 'Renamed' }], ['PUT', { name: 'Renamed', permissions: ['shared.view_team'] }], ['DELETE', undefined]] as const) {
      const answer = await call(gw, method, `role_definitions/${id}/`, body)
      assert.equal(answer.status, 400, method)
      assert.equal(answer.body.code, 'managed_role')
      assert.match(answer.body.detail, /managed by the system/)
    }
    assert.equal((await call(gw, 'GET', `role_definitions/${id}/`)).body.name, 'Team Member')
  })

  it('lists a role definition\'s user and team assignments, and answers 404 for one that does not exist, as the platform answers a missing parent', async () => {
    const id = await roleId(gw, 'Organization Member')
    assert.equal((await grant(gw, 'holder', 'Organization Member', research.organization)).status, 201)
    const held = await call(gw, 'GET', `role_definitions/${id}/user_assignments/`)
    assert.equal(held.status, 200)
    assert.ok(held.body.results.every((assignment: any) => assignment.role_definition === id))
    assert.ok(held.body.count >= 1)
    assert.equal((await call(gw, 'GET', `role_definitions/${id}/team_assignments/`)).status, 200)
    for (const actor of ['user', 'team']) {
      const missing = await call(gw, 'GET', `role_definitions/999999/${actor}_assignments/`)
      assert.equal(missing.status, 404, actor)
      assert.equal(missing.body.code, 'not_found', actor)
    }
  })
})

/**
 * A role definition's type changing while someone assigns it: an assignment made for the old type must not be
 * left on a role of the new one (it would name an organization's id as a team's, or the other way round).
 */
for (const backend of gatewayBackends) {
  describe(`a role definition's type changing while it is assigned, on ${backend.name}`, () => {
    let gw: TestGateway
    let research: { organization: number; team: number | undefined }

    before(async () => {
      gw = await backend.start()
      await gw.app.accounts.create({ username: 'holder' })
      research = await createOrgAndTeam(gw, 'Research', 'Lab')
    })
    after(() => gw.close())

    it('never leaves an assignment on an object of the other type', async () => {
      const holder = await userId(gw, 'holder')
      for (let round = 0; round < 12; round++) {
        const made = await call(gw, 'POST', 'role_definitions/', { name: `Shifting ${round}`, content_type: 'shared.organization', permissions: ['shared.view_organization'] })
        assert.equal(made.status, 201)
        const [moved, given] = await Promise.all([
          call(gw, 'PATCH', `role_definitions/${made.body.id}/`, { content_type: 'shared.team', permissions: ['shared.view_team'] }),
          call(gw, 'POST', 'role_user_assignments/', { role_definition: made.body.id, user: holder, object_id: research.organization }),
        ])
        const role = (await call(gw, 'GET', `role_definitions/${made.body.id}/`)).body
        const assignments = (await call(gw, 'GET', `role_user_assignments/?role_definition=${made.body.id}`)).body.results
        for (const assignment of assignments) assert.equal(assignment.content_type, role.content_type, `round ${round}: ${moved.status} ${given.status}`)
        assert.ok(moved.status === 200 || given.status === 201, `round ${round}: one of them is made: ${JSON.stringify([moved.body, given.body])}`)
      }
    })
  })
}
