import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { syncDirectoryAccount, type DirectoryUser } from '../../src/directory/ldap-sync.ts'
import { GatehouseError } from '../../src/errors.ts'
import { appOnTempStore } from '../helpers/app.ts'

describe('directory accounts', () => {
  const made = appOnTempStore()

  const entry = (username: string): DirectoryUser => ({
    dn: `uid=${username},ou=people,dc=example,dc=test`, entryId: '', username, email: '', firstName: '', lastName: '',
    groupDns: [], isSuperuser: undefined, isSystemAuditor: undefined, groups: [],
  })

  it('refuses an entry named like a client\'s service account, in any letter case, and creates nothing', async () => {
    const before = await made.store.users.count()
    for (const username of ['service-account-reports', 'SERVICE-ACCOUNT-reports']) {
      await assert.rejects(syncDirectoryAccount(made.store, made.app.accounts, entry(username)), (error) => error instanceof GatehouseError && error.code === 'directory_username_invalid')
    }
    assert.equal(await made.store.users.count(), before)
    assert.equal((await syncDirectoryAccount(made.store, made.app.accounts, entry('service-accounts'))).source, 'ldap', 'a name without the prefix is taken')
  })
})
