import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NO_FILTER } from '../../src/store/list-filter.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends, type OpenedStore } from '../helpers/backends.ts'

for (const backend of storeBackends) {
  describe(`OAuth2 applications on ${backend.name}`, () => {
    let opened: OpenedStore
    let store: Store
    before(async () => {
      opened = await backend.open()
      store = opened.store
    })
    after(async () => {
      await store.close()
      await opened.cleanup()
    })

    const application = (name: string, organizationId: number | null) => store.applications.create({
      realm: 'main', clientId: `client-${name}`, clientSecretHash: null, name, description: '', clientType: 'public',
      authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId,
    })

    it('keeps an application\'s organization, filters by it, and deletes the application with its organization', async () => {
      const organization = await store.access.createOrganization({ name: 'Apps' })
      const inside = await application('inside', organization.id)
      const outside = await application('outside', null)
      assert.equal(inside.organizationId, organization.id)
      assert.equal(outside.organizationId, null)
      await assert.rejects(application('nowhere', 999999), 'the database refuses an organization that does not exist')

      const filter = { ...NO_FILTER, all: [{ field: 'organization', lookup: 'exact' as const, value: organization.id, negate: false }] }
      const { applications } = await store.applications.list({ offset: 0, limit: 10, filter })
      assert.deepEqual(applications.map((a) => a.name), ['inside'])

      assert.equal((await store.applications.update(inside.id, { organizationId: null }))?.organizationId, null)
      await store.applications.update(inside.id, { organizationId: organization.id })
      await store.access.deleteOrganization(organization.id)
      assert.equal(await store.applications.findById(inside.id), undefined)
      assert.ok(await store.applications.findById(outside.id))
    })
  })
}
