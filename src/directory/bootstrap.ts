import { randomBytes } from 'node:crypto'
import type { Accounts } from './accounts.ts'
import type { Store } from '../store/store.ts'
import { UsernameTaken, ValidationFailed } from '../errors.ts'

/**
 * On first start with an empty database, creates the superuser `admin` with GATEHOUSE_ADMIN_PASSWORD, or with
 * a generated password that is returned so it can be shown once. Several processes starting together are fine:
 * only one creates it.
 */
export async function ensureAdmin(store: Store, accounts: Accounts, env = process.env): Promise<{ username: string; generatedPassword?: string } | undefined> {
  if ((await store.users.count()) > 0) return undefined
  const given = env.GATEHOUSE_ADMIN_PASSWORD
  const password = given || randomBytes(18).toString('base64url')
  try {
    await accounts.create({ username: 'admin', password, isSuperuser: true, email: '' })
  } catch (error) {
    if (error instanceof UsernameTaken) return undefined
    if (error instanceof ValidationFailed && error.fields?.password) {
      throw new ValidationFailed({ GATEHOUSE_ADMIN_PASSWORD: error.fields.password }, 'GATEHOUSE_ADMIN_PASSWORD does not meet the password policy.')
    }
    throw error
  }
  return given ? { username: 'admin' } : { username: 'admin', generatedPassword: password }
}
