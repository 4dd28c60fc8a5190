import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'

const fields = { client_type: 'public', authorization_grant_type: 'password' }

/**
 * An application's name is as long as the platform's (django-ansible-base's NamedCommonModel: 512 characters), on
 * both backends: PostgreSQL holds its column to a length, which migration 023 widened.
 */
for (const backend of gatewayBackends) describe(`OAuth2 application names as long as the platform's (${backend.name})`, () => {
  let gw: TestGateway
  let organization: number

  before(async () => {
    gw = await backend.start()
    ;({ organization } = (await createOrgAndTeam(gw, 'Long Names')) as { organization: number })
  })
  after(async () => {
    await gw.close()
  })

  it('takes a name of 512 characters, in a create and in a rename, and shows it whole', async () => {
    const long = 'n'.repeat(511) + 'é'
    const created = await call(gw, 'POST', 'applications/', { name: long, organization, ...fields })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal((await call(gw, 'GET', `applications/${created.body.id}/`)).body.name, long)

    const renamedTo = 'r'.repeat(512)
    const renamed = await call(gw, 'PATCH', `applications/${created.body.id}/`, { name: renamedTo })
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body))
    assert.equal((await call(gw, 'GET', `applications/${created.body.id}/`)).body.name, renamedTo)
  })

  it('refuses a longer one in Django REST framework\'s words, and says the length at OPTIONS', async () => {
    const refused = await call(gw, 'POST', 'applications/', { name: 'x'.repeat(513), organization, ...fields })
    assert.equal(refused.status, 400)
    assert.deepEqual(refused.body.name, ['Ensure this field has no more than 512 characters.'])
    const options = await call(gw, 'OPTIONS', 'applications/')
    assert.equal(options.body.actions.POST.name.max_length, 512)
  })
})
