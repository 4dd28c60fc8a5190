import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UniqueViolation } from '../../src/store/errors.ts'
import { NO_FILTER } from '../../src/store/list-filter.ts'
import type { Store } from '../../src/store/store.ts'
import { atMigration, openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'

for (const backend of storeBackends) {
  describe(`OAuth2 applications on ${backend.name}`, () => {
    const db = openForSuite(backend)

    const application = (name: string, organizationId: number | null) => db.store.applications.create({
      realm: 'main', clientId: `client-${name}`, clientSecretHash: null, pkceRequired: true, name, description: '', clientType: 'public',
      authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId,
    })

    it('rotates a confidential application\'s secret, keeping the one it had only when given until when', async () => {
      const made = await db.store.applications.create({
        realm: 'main', clientId: 'client-rotated', clientSecretHash: 'a'.repeat(64), pkceRequired: false, name: 'rotated', description: '',
        clientType: 'confidential', authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId: null,
      })
      assert.equal(made.previousSecret, null)
      const kept = await db.store.applications.rotateSecret(made.id, 'b'.repeat(64), 5000)
      assert.equal(kept?.clientSecretHash, 'b'.repeat(64))
      assert.deepEqual(kept?.previousSecret, { hash: 'a'.repeat(64), until: 5000 })
      const again = await db.store.applications.rotateSecret(made.id, 'c'.repeat(64), 9000)
      assert.deepEqual(again?.previousSecret, { hash: 'b'.repeat(64), until: 9000 }, 'only the one it had just before')
      const dropped = await db.store.applications.rotateSecret(made.id, 'd'.repeat(64), null)
      assert.equal(dropped?.clientSecretHash, 'd'.repeat(64))
      assert.equal(dropped?.previousSecret, null)
      const publicOne = await application('no-secret', null)
      assert.equal(await db.store.applications.rotateSecret(publicOne.id, 'e'.repeat(64), null), undefined, 'a public application has no secret')
      assert.equal((await db.store.applications.findById(publicOne.id))?.clientSecretHash, null)
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

      assert.equal((await db.store.applications.update(inside.id, { organizationId: null }))?.after.organizationId, null)
      await db.store.applications.update(inside.id, { organizationId: organization.id })
      await db.store.access.deleteOrganization(organization.id)
      assert.equal(await db.store.applications.findById(inside.id), undefined)
      assert.ok(await db.store.applications.findById(outside.id))
    })

    it('keeps a name of 512 characters, as the platform\'s (migration 023 widened PostgreSQL\'s column)', async () => {
      const long = 'é'.repeat(512)
      const kept = await db.store.applications.create({
        realm: 'main', clientId: 'client-long', clientSecretHash: null, pkceRequired: true, name: long, description: '', clientType: 'public',
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
        /** Written as this version's store wrote it: the columns of that day, none added later. */
        const application = (name: string, organizationId: number | null) => writtenBefore(store, { name, clientId: `client-${++made}`, organizationId })
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

        const current = (name: string, organizationId: number | null) => store.applications.create({
          realm: 'main', clientId: `client-${++made}`, clientSecretHash: null, pkceRequired: true, name, description: '', clientType: 'public',
          authorizationGrantType: 'password', redirectUris: [], userId: null, organizationId,
        })
        await assert.rejects(current('twin', organization.id), UniqueViolation)
        await assert.rejects(store.applications.update(alone.id, { organizationId: organization.id }), UniqueViolation)
        await current('twin', null)
      })
    })
  })

  describe(`PKCE required of the OAuth2 applications an earlier version made, on ${backend.name}`, () => {
    it('requires PKCE of every public application and of no confidential one when the database is upgraded', async () => {
      await atMigration(backend, '036_sso_logout_token_hash', async (store) => {
        const publicOne = await writtenBefore(store, { name: 'spa', clientId: 'client-spa', organizationId: null, clientType: 'public' })
        const confidential = await writtenBefore(store, { name: 'web', clientId: 'client-web', organizationId: null, clientType: 'confidential' })
        // The migrations after it run too: the list starts with this one.
        assert.deepEqual((await store.database.migrate()).slice(0, 1), ['037_application_pkce_required'])
        assert.equal((await store.applications.findById(publicOne.id))!.pkceRequired, true)
        assert.equal((await store.applications.findById(confidential.id))!.pkceRequired, false)
      })
    })
  })
}

/** An application row with the columns every version since migration 013 has, as an earlier version's store wrote it. */
async function writtenBefore(store: Store, row: { name: string; clientId: string; organizationId: number | null; clientType?: string }): Promise<{ id: number; clientId: string }> {
  const now = Date.now()
  const written = await store.database.db.insertInto('oauth2_applications').values({
    realm: 'main', client_id: row.clientId, client_secret_hash: row.clientType === 'confidential' ? '0'.repeat(64) : null, name: row.name, description: '',
    client_type: row.clientType ?? 'public', authorization_grant_type: 'authorization-code', redirect_uris: 'https://app.example.com/cb', user_id: null,
    organization_id: row.organizationId, created_at: now, modified_at: now,
  } as never).returning(['id', 'client_id']).executeTakeFirstOrThrow()
  return { id: Number(written.id), clientId: written.client_id }
}
