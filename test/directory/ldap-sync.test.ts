import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { createApp, type App } from '../../src/app.ts'
import { validateConfig } from '../../src/config/load.ts'
import { syncDirectoryAccount, type DirectoryUser } from '../../src/directory/ldap-sync.ts'
import { GatehouseError } from '../../src/errors.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'

describe('directory accounts', () => {
  let dir: string
  let store: Store
  let app: App
  before(async () => {
    dir = tempDir()
    store = await openStore({ dataDir: dir })
    app = await createApp(validateConfig({}), store)
  })
  after(async () => {
    await app.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const entry = (username: string): DirectoryUser => ({
    dn: `uid=${username},ou=people,dc=example,dc=test`, entryId: '', username, email: '', firstName: '', lastName: '',
    groupDns: [], isSuperuser: undefined, isSystemAuditor: undefined, groups: [],
  })

  it('refuses an entry named like a client\'s service account, in any letter case, and creates nothing', async () => {
    const before = await store.users.count()
    for (const username of ['service-account-reports', 'SERVICE-ACCOUNT-reports']) {
      await assert.rejects(syncDirectoryAccount(store, app.accounts, entry(username)), (error) => error instanceof GatehouseError && error.code === 'directory_username_invalid')
    }
    assert.equal(await store.users.count(), before)
    assert.equal((await syncDirectoryAccount(store, app.accounts, entry('service-accounts'))).source, 'ldap', 'a name without the prefix is taken')
  })
})
