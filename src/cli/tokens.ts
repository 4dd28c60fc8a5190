import { auditedToken, auditedTokenFields, recordTokensOfUserRevoked } from '../audit/tokens.ts'
import { cliActor } from '../audit/actor.ts'
import { AccountDisabled } from '../errors.ts'
import type { TokenRecord, TokenScope } from '../store/tokens.ts'
import { withApp } from './actions.ts'
import { printList, UsageError, writeFailure, writeSecret, type StorageOptions } from './common.ts'
import type { App } from '../app.ts'
import { findUser, howToEnable } from './users.ts'

interface CreateOptions extends StorageOptions {
  user: string
  scope: TokenScope
  expiresIn?: number
  description?: string
}

interface RevokeOptions extends StorageOptions {
  user?: string
  all?: boolean
  id?: number
}

/** Token ids are the database's 32-bit integers, as the API's ids are (src/api/validation.ts). */
const MAX_TOKEN_ID = 2 ** 31 - 1

export async function createToken(options: CreateOptions): Promise<void> {
  await withApp(options, async (app) => {
    const owner = await findUser(app, options.user)
    // Refused as the API's answer would be, "User inactive or deleted." with status 1, it read as a failure of Gatehouse.
    const disabled = () => new UsageError(`${owner.username} is disabled, and a disabled account's tokens work for nothing; enable it first (${howToEnable(owner)})`)
    if (!owner.isActive) throw disabled()
    const { record, value } = await app.tokens.issue(owner, { scope: options.scope, description: options.description, expiresIn: options.expiresIn }).catch((error: unknown) => {
      throw error instanceof AccountDisabled ? disabled() : error
    })
    app.audit.change(cliActor(), 'create', auditedToken(record), undefined, auditedTokenFields(record))
    try {
      await writeSecret(`${value}\n`)
    } catch (error) {
      await revokeUndelivered(app, record, writeFailure(error))
    }
    process.stderr.write(`created token ${record.id} for ${owner.username} (scope ${record.scope}, expires ${new Date(record.expires).toISOString()})\n`)
  })
}

export async function listTokens(options: StorageOptions & { user?: string; json?: boolean }): Promise<void> {
  await withApp(options, async (app) => {
    const userId = options.user === undefined ? undefined : (await findUser(app, options.user)).id
    const tokens: TokenRecord[] = []
    const names = new Map<number, string>()
    for (let offset = 0; ; offset += 500) {
      const { tokens: page } = await app.store.tokens.list({ offset, limit: 500, userId })
      for (const t of page) {
        if (!names.has(t.userId)) names.set(t.userId, (await app.accounts.get(t.userId))?.username ?? `#${t.userId}`)
        tokens.push(t)
      }
      if (page.length < 500) break
    }
    const time = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
    printList(tokens, options.json === true, ['ID', 'USER', 'SCOPE', 'EXPIRES', 'LAST USED', 'DESCRIPTION'],
      (t) => [String(t.id), names.get(t.userId)!, t.scope, time(t.expires) + (t.expires <= Date.now() ? ' (expired)' : ''), time(t.lastUsed) ?? '-', t.description],
      (t) => ({ id: t.id, user: names.get(t.userId), user_id: t.userId, scope: t.scope, description: t.description, expires: time(t.expires), last_used: time(t.lastUsed) }))
  })
}

export async function revokeTokens(options: RevokeOptions): Promise<void> {
  const chosen = [options.user !== undefined, options.all === true, options.id !== undefined].filter(Boolean).length
  if (chosen !== 1) throw new UsageError('give exactly one of --user NAME, --all or --id ID')
  await withApp(options, async (app) => {
    if (options.all) {
      const revoked = await app.tokens.revokeAll()
      app.audit.change(cliActor(), 'delete', { type: 'token', name: 'all tokens' }, { user: null, revoked })
      process.stdout.write(`revoked ${revoked} token(s)\n`)
    } else if (options.user !== undefined) {
      const owner = await findUser(app, options.user)
      const revoked = await app.tokens.revokeUser(owner.id)
      recordTokensOfUserRevoked(app.audit, cliActor(), owner.id, revoked)
      process.stdout.write(`revoked ${revoked} token(s) of ${owner.username}\n`)
    } else {
      // Read first, so the trail keeps whose token it was, as the API's revocation does. An id past the database's
      // integers names no token: PostgreSQL would refuse it as out of range rather than find none.
      const record = options.id! <= MAX_TOKEN_ID ? await app.store.tokens.findById(options.id!) : undefined
      if (!record || !(await app.tokens.revoke(record.id))) throw new UsageError(`no such token: ${options.id}`)
      app.audit.change(cliActor(), 'delete', auditedToken(record), auditedTokenFields(record))
      process.stdout.write(`revoked token ${options.id}\n`)
    }
  })
}

/** A token whose value could not be written (`| true`, a full disk) is revoked again: no one has it, and no one should. */
async function revokeUndelivered(app: App, record: TokenRecord, why: string): Promise<never> {
  try {
    await app.tokens.revoke(record.id)
  } catch (error) {
    throw new Error(`the token's value could not be written (${why}), and token ${record.id} could not be revoked again `
      + `(${(error as Error)?.message ?? String(error)}); revoke it with: gatehouse tokens revoke --id ${record.id}`)
  }
  app.audit.change(cliActor(), 'delete', auditedToken(record), auditedTokenFields(record))
  throw new Error(`the token's value could not be written (${why}); token ${record.id} was revoked again: create another with standard output where it can be read`)
}
