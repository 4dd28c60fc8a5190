import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * The gateway API's 400 bodies in the words the platform's serializers produce them (django-ansible-base's models
 * behind Django REST framework's ModelSerializer), so scripts and clients that read error bodies work unchanged.
 */
describe('the gateway API\'s refusals in the platform\'s words', () => {
  let gw: TestGateway
  let organization: number
  let team: number
  let role: number
  const application = { client_type: 'public', authorization_grant_type: 'password' }

  before(async () => {
    gw = await startGateway()
    ;({ organization, team } = (await createOrgAndTeam(gw, 'Worded', 'Worded Team')) as { organization: number; team: number })
    role = (await call(gw, 'POST', 'role_definitions/', { name: 'Worded Role', content_type: 'shared.team', permissions: ['shared.view_team'] })).body.id
    assert.equal((await call(gw, 'POST', 'users/', { username: 'worded', password: 'worded-password-long' })).status, 201)
    assert.equal((await call(gw, 'POST', 'applications/', { name: 'Worded App', organization, ...application })).status, 201)
  })
  after(() => gw.close())

  /** Each case: method, path, body, and the fields of the refusal as the platform answers it. */
  const answersAsThePlatform = async (cases: [string, string, unknown, Record<string, string[]>][]) => {
    for (const [method, path, body, fields] of cases) {
      const refusal = await call(gw, method, path, body)
      assert.equal(refusal.status, 400, `${method} ${path} ${JSON.stringify(body)}`)
      assert.equal(refusal.body.code, 'invalid', `${method} ${path} ${JSON.stringify(body)}`)
      assert.deepEqual(refusal.body.errors, fields, `${method} ${path} ${JSON.stringify(body)}`)
      for (const [field, messages] of Object.entries(fields)) assert.deepEqual(refusal.body[field], messages, `${field} at the top level`)
    }
  }

  it('words a taken name with the model\'s verbose name in lower case, as the UniqueValidator Django REST framework builds does', async () => {
    await answersAsThePlatform([
      ['POST', 'organizations/', { name: 'Worded' }, { name: ['organization with this name already exists.'] }],
      ['POST', 'role_definitions/', { name: 'Worded Role', permissions: [] }, { name: ['role definition with this name already exists.'] }],
      ['POST', 'teams/', { name: 'Worded Team', organization }, { non_field_errors: ['The fields organization, name must make a unique set.'] }],
      ['POST', 'applications/', { name: 'Worded App', organization, ...application }, { non_field_errors: ['The fields name, organization must make a unique set.'] }],
    ])
    const taken = await call(gw, 'POST', 'users/', { username: 'worded' })
    assert.equal(taken.status, 400)
    assert.deepEqual(taken.body.username, ['A user with that username already exists.'], 'Django\'s AbstractUser words its own')
  })

  it('words an id of the wrong type as a PrimaryKeyRelatedField does, naming the type as Python names it', async () => {
    await answersAsThePlatform([
      ['POST', 'teams/', { name: 'typed', organization: 'Default' }, { organization: ['Incorrect type. Expected pk value, received str.'] }],
      ['POST', 'teams/', { name: 'typed', organization: true }, { organization: ['Incorrect type. Expected pk value, received bool.'] }],
      ['POST', 'teams/', { name: 'typed', organization: [organization] }, { organization: ['Incorrect type. Expected pk value, received list.'] }],
      ['POST', 'teams/', { name: 'typed', organization: { id: organization } }, { organization: ['Incorrect type. Expected pk value, received dict.'] }],
      ['POST', 'applications/', { name: 'typed', organization: 1.5, ...application }, { organization: ['Incorrect type. Expected pk value, received float.'] }],
      ['POST', 'role_user_assignments/', { role_definition: 'Worded Role', user: 1, object_id: team }, { role_definition: ['Incorrect type. Expected pk value, received str.'] }],
      ['POST', 'tokens/', { application: 'Worded App' }, { application: ['Incorrect type. Expected pk value, received str.'] }],
    ])
  })

  it('words an id that names nothing as a PrimaryKeyRelatedField does, zero and negative ones too', async () => {
    await answersAsThePlatform([
      ['POST', 'teams/', { name: 'missing', organization: 99999 }, { organization: ['Invalid pk "99999" - object does not exist.'] }],
      ['POST', 'teams/', { name: 'missing', organization: 0 }, { organization: ['Invalid pk "0" - object does not exist.'] }],
      ['POST', 'teams/', { name: 'missing', organization: -3 }, { organization: ['Invalid pk "-3" - object does not exist.'] }],
      ['POST', 'teams/', { name: 'missing', organization: '0' }, { organization: ['Invalid pk "0" - object does not exist.'] }],
      ['POST', 'applications/', { name: 'missing', organization: 99999, ...application }, { organization: ['Invalid pk "99999" - object does not exist.'] }],
      ['POST', 'role_user_assignments/', { role_definition: role, user: 0, object_id: team }, { user: ['Invalid pk "0" - object does not exist.'] }],
    ])
  })

  it('reads an empty string for an id as null, as Django REST framework\'s RelatedField does before anything else', async () => {
    await answersAsThePlatform([
      ['POST', 'teams/', { name: 'emptied', organization: '' }, { organization: ['This field may not be null.'] }],
      ['PATCH', `teams/${team}/`, { organization: '' }, { organization: ['This field may not be null.'] }],
      ['POST', 'applications/', { name: 'emptied', organization: '', ...application }, { organization: ['This field may not be null.'] }],
      ['POST', 'role_user_assignments/', { role_definition: '', user: 1, object_id: team }, { role_definition: ['This field may not be null.'] }],
      ['POST', 'role_user_assignments/', { role_definition: role, user: '', object_id: team }, { user: ['This field may not be null.'] }],
      ['POST', 'role_team_assignments/', { role_definition: role, team: '', object_id: team }, { team: ['This field may not be null.'] }],
      // The platform's object_id is text that allows blank and null: either one names no object.
      ['POST', 'role_user_assignments/', { role_definition: role, user: 1, object_id: '' }, { object_id: ['Object must be specified for this role assignment'] }],
      ['POST', 'tokens/revoke/', { user: '' }, { user: ['This field may not be null.'] }],
    ])
    // Where the platform's field allows null, "" is null: an application without an owner, a personal token.
    const owned = await call(gw, 'POST', 'applications/', { name: 'Emptied owner', organization, user: '', ...application })
    assert.equal(owned.status, 201, JSON.stringify(owned.body))
    assert.equal(owned.body.user, null)
    const personal = await call(gw, 'POST', 'tokens/', { application: '', description: 'emptied application' })
    assert.equal(personal.status, 201, JSON.stringify(personal.body))
    assert.equal(personal.body.application, null)
    // An id inside a list is read by the child field alone (ManyRelatedField skips run_validation): "" stays a string.
    const members = await call(gw, 'POST', `teams/${team}/users/associate/`, { instances: [''] })
    assert.equal(members.status, 400)
    assert.deepEqual(members.body.instances, ['Incorrect type. Expected pk value, received str.'])
  })

  it('words missing, null, blank, mistyped, too long and unknown-choice values in Django REST framework\'s words', async () => {
    await answersAsThePlatform([
      ['POST', 'teams/', {}, { name: ['This field is required.'], organization: ['This field is required.'] }],
      ['POST', 'teams/', { name: 'nulled', organization: null }, { organization: ['This field may not be null.'] }],
      ['POST', 'organizations/', { name: '   ' }, { name: ['This field may not be blank.'] }],
      ['POST', 'organizations/', { name: 'x'.repeat(513) }, { name: ['Ensure this field has no more than 512 characters.'] }],
      ['POST', 'organizations/', { name: 5 }, { name: ['Not a valid string.'] }],
      ['POST', 'users/', { username: '' }, { username: ['This field may not be blank.'] }],
      ['POST', 'users/', { username: 'u'.repeat(151) }, { username: ['Ensure this field has no more than 150 characters.'] }],
      ['POST', 'role_definitions/', { name: '', permissions: [] }, { name: ['This field may not be blank.'] }],
      ['POST', 'applications/', { name: '', organization, ...application }, { name: ['This field may not be blank.'] }],
      ['POST', 'users/', { username: 'typed', is_superuser: 'maybe' }, { is_superuser: ['Must be a valid boolean.'] }],
      ['PATCH', 'settings/all/', { SESSION_COOKIE_AGE: 'soon' }, { SESSION_COOKIE_AGE: ['A valid integer is required.'] }],
      ['POST', 'applications/', { name: 'chosen', client_type: 'secretive', authorization_grant_type: 'password' }, { client_type: ['"secretive" is not a valid choice.'] }],
    ])
  })
})
