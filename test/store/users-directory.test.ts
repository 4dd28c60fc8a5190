import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

/** What a directory adds to an account (migration 004_ldap), on both backends. */
for (const backend of storeBackends) {
  describe(`directory accounts on ${backend.name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>
    before(async () => {
      ;({ store, cleanup } = await backend.open())
    })
    after(async () => {
      await store?.close()
      await cleanup?.()
    })

    it('gives accounts no auditor flag and no groups unless told', async () => {
      const local = await store.users.create({ username: 'local-user' })
      assert.equal(local.isSystemAuditor, false)
      assert.deepEqual(local.groups, [])
    })

    it('stores and changes the auditor flag and the named groups of an external account', async () => {
      const created = await store.users.create({ username: 'dir-user', source: 'ldap', external: true, isSystemAuditor: true, groups: ['developers', 'ops'] })
      assert.equal(created.source, 'ldap')
      assert.equal(created.external, true)
      assert.equal(created.isSystemAuditor, true)
      assert.deepEqual(created.groups, ['developers', 'ops'])
      const updated = await store.users.update(created.id, { isSystemAuditor: false, groups: ['ops'] })
      assert.equal(updated!.isSystemAuditor, false)
      assert.deepEqual(updated!.groups, ['ops'])
      const read = await store.users.findByUsername('dir-user')
      assert.deepEqual({ auditor: read!.isSystemAuditor, groups: read!.groups }, { auditor: false, groups: ['ops'] })
      assert.deepEqual((await store.users.list({ offset: 0, limit: 10, source: 'ldap' })).users.map((u) => u.username), ['dir-user'])
    })
  })
}
