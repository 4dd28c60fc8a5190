import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { openStore, type Store } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** What a directory adds to an account (migration 004_ldap), on both backends. */
const backends: [string, () => Promise<{ store: Store; cleanup: () => Promise<void> }>][] = [
  ['SQLite', async () => {
    const dataDir = tempDir()
    const store = await openStore({ dataDir })
    return { store, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) }
  }],
  ['PostgreSQL', async () => {
    const database = await createTestDatabase()
    const store = await openStore({ url: database.url, dataDir: '' })
    return { store, cleanup: database.drop }
  }],
]

for (const [name, open] of backends) {
  describe(`directory accounts on ${name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>
    before(async () => {
      ;({ store, cleanup } = await open())
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
