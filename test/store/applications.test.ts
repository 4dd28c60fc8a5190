import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UniqueViolation } from '../../src/store/errors.ts'
import { NO_FILTER } from '../../src/store/list-filter.ts'
import { atMigration, openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'

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

    it('keeps a name of 512 characters, as the platform\'s (migration 023 widened PostgreSQL\'s column)', async () => {
      const long = 'é'.repeat(512)
      const kept = await db.store.applications.create({
        realm: 'main', clientId: 'client-long', clientSecretHash: null, name: long, description: '', clientType: 'public',
        authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId: null,
      })
      assert.equal((await db.store.applications.findById(kept.id))?.name, long)
    })
  })
}

for (const backend of unmigratedBackends) {
  describe(`OAuth2 application names made unique within an organization, on ${backend.name}`, () => {
    it('renames each later twin of a name in an organization when the database is upgraded, with a warning, and then refuses new twins', async () => {
      await atMigration(backend, '021_username_unique_case', async (store) => {
        let made = 0
        const application = (name: string, organizationId: number | null) => store.applications.create({
          realm: 'main', clientId: `client-${++made}`, clientSecretHash: null, name, description: '', clientType: 'public',
          authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId,
        })
        const organization = await store.access.createOrganization({ name: 'Twins' })
        const other = await store.access.createOrganization({ name: 'Elsewhere' })
        const long = 'x'.repeat(255)
        const oldest = await application('twin', organization.id)
        const second = await application('twin', organization.id)
        const third = await application('twin', organization.id)
        // The name the second would get is taken already: it gets the next one free.
        const squatter = await application(`twin (${second.id})`, organization.id)
        const longs = [await application(long, organization.id), await application(long, organization.id)]
        const alone = await application('twin', other.id)
        const unorganized = [await application('twin', null), await application('twin', null)]

        const warnings: Error[] = []
        const listener = (warning: Error) => warnings.push(warning)
        process.on('warning', listener)
        try {
          // The migrations after this one run too: the list starts with the two that concern names.
          assert.deepEqual((await store.database.migrate()).slice(0, 2), ['022_application_unique_name', '023_application_name_length'])
          await new Promise((resolve) => setImmediate(resolve))
        } finally {
          process.off('warning', listener)
        }

        const nameOf = async (id: number) => (await store.applications.findById(id))!.name
        assert.equal(await nameOf(oldest.id), 'twin')
        assert.equal(await nameOf(second.id), `twin (${second.id}-2)`)
        assert.equal(await nameOf(third.id), `twin (${third.id})`)
        assert.equal(await nameOf(squatter.id), `twin (${second.id})`)
        assert.equal(await nameOf(longs[0]!.id), long)
        assert.equal(await nameOf(longs[1]!.id), `${'x'.repeat(255 - ` (${longs[1]!.id})`.length)} (${longs[1]!.id})`)
        for (const kept of [alone, ...unorganized]) assert.equal(await nameOf(kept.id), 'twin', 'another organization\'s, or none\'s, are no twins')
        assert.equal((await store.applications.findById(second.id))!.clientId, second.clientId, 'its client, and so its tokens, stay')

        const renamed = warnings.filter((w) => (w as Error & { code?: string }).code === 'GATEHOUSE_APPLICATION_RENAMED')
        assert.equal(renamed.length, 3)
        assert.match(renamed[0]!.message, new RegExp(`^OAuth2 application ${second.id} renamed from "twin" to "twin \\(${second.id}-2\\)"`))

        await assert.rejects(application('twin', organization.id), UniqueViolation)
        await assert.rejects(store.applications.update(alone.id, { organizationId: organization.id }), UniqueViolation)
        await application('twin', null)
      })
    })
  })
}
