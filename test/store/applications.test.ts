import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { NO_FILTER } from '../../src/store/list-filter.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

for (const backend of storeBackends) {
  describe(`OAuth2 applications on ${backend.name}`, () => {
    const db = openForSuite(backend)

    const application = (name: string, organizationId: number | null) => db.store.applications.create({
      realm: 'main', clientId: `client-${name}`, clientSecretHash: null, name, description: '', clientType: 'public',
      authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId,
    })

    it('keeps an application\'s organization, filters by it, and deletes the application with its organization', async () => {
      const organization = await db.store.access.createOrganization({ name: 'Apps' })
      const inside = await application('inside', organization.id)
      const outside = await application('outside', null)
      assert.equal(inside.organizationId, organization.id)
      assert.equal(outside.organizationId, null)
      await assert.rejects(application('nowhere', 999999), 'the database refuses an organization that does not exist')

      const filter = { ...NO_FILTER, all: [{ field: 'organization', lookup: 'exact' as const, value: organization.id, negate: false }] }
      const { applications } = await db.store.applications.list({ offset: 0, limit: 10, filter })
      assert.deepEqual(applications.map((a) => a.name), ['inside'])

      assert.equal((await db.store.applications.update(inside.id, { organizationId: null }))?.organizationId, null)
      await db.store.applications.update(inside.id, { organizationId: organization.id })
      await db.store.access.deleteOrganization(organization.id)
      assert.equal(await db.store.applications.findById(inside.id), undefined)
      assert.ok(await db.store.applications.findById(outside.id))
    })
  })
}
