import { auditedUser } from '../api/users.ts'
import { cliActor } from '../audit/actor.ts'
import { directoryWarnings } from '../config/ldap.ts'
import { DirectoryUnavailable } from '../errors.ts'
import type { DirectoryLookup } from '../directory/ldap.ts'
import { printable } from '../logging/printable.ts'
import { readStdin, resolveConfig, withApp } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'
import { findUser } from './users.ts'

interface TestOptions extends StorageOptions {
  user: string
  passwordStdin?: boolean
}

/**
 * The way out when every entry has a new identifier (a directory moved to another server or product, which gave its
 * entries new ones, or `ldap.attributes.uuid` changed): logins would otherwise refuse every account as another entry's.
 */
export async function forgetEntries(names: string[], options: StorageOptions): Promise<void> {
  await withApp(options, async (app) => {
    const users = names.length ? await Promise.all(names.map((name) => findUser(app, name))) : undefined
    // Named accounts' entries are read first, so the audit trail keeps what each account was tied to.
    const entries = users ? await app.store.ldapEntries.entriesOf(users.map((user) => user.id)) : undefined
    const forgotten = await app.store.ldapEntries.forget(users?.map((user) => user.id))
    for (const user of users ?? []) {
      const entry = entries!.get(user.id)
      if (entry !== undefined) app.audit.change(cliActor(), 'update', auditedUser(user), { ldap_entry: entry }, { ldap_entry: null })
    }
    if (!users && forgotten) app.audit.change(cliActor(), 'update', { type: 'user', name: 'all accounts' }, { ldap_entries: forgotten }, { ldap_entries: 0 })
    process.stdout.write(`forgot the directory entries of ${forgotten} account${forgotten === 1 ? '' : 's'}\n`)
  })
}

export async function testDirectory(options: TestOptions): Promise<void> {
  const config = resolveConfig(options)
  if (!config.ldap) throw new UsageError('the configuration has no ldap section')
  const password = options.passwordStdin ? await readStdin() : undefined
  // Loaded by this command only: `serve` loads it when its configuration has a directory (src/app.ts).
  const { LdapDirectory } = await import('../directory/ldap.ts')
  const directory = new LdapDirectory(config.ldap)
  for (const warning of directoryWarnings(config.ldap)) process.stderr.write(`gatehouse: ${warning}\n`)
  let lookup: DirectoryLookup
  try {
    lookup = await directory.lookup(options.user, password)
  } catch (error) {
    if (error instanceof DirectoryUnavailable) {
      // The server's own words (its diagnostic message) are its to choose: written as text, never as terminal control.
      const detail = error.cause instanceof Error ? `\n  ${printable(error.cause.message)}` : ''
      process.stderr.write(`gatehouse: ${printable(error.message)}${detail}\n`)
      process.exitCode = 1
      return
    }
    throw error
  }
  process.stdout.write(report(lookup, config.ldap.start_tls))
  if (!lookup.user || lookup.passwordValid === false) process.exitCode = 1
}

function report(lookup: DirectoryLookup, startTls: boolean): string {
  const lines = [`server: ${lookup.server}${startTls ? ' (StartTLS)' : ''}`, 'service bind: ok']
  const { user } = lookup
  if (!user) {
    lines.push('user: not found (no entry, or more than one, matches the user search)')
    return lines.join('\n') + '\n'
  }
  const flag = (value: boolean | undefined) => (value === undefined ? 'not mapped' : value ? 'yes' : 'no')
  lines.push(
    `user: ${user.dn}`,
    `  uuid: ${user.entryId || '(none: check ldap.attributes.uuid)'}`,
    `  username: ${user.username || '(empty: check ldap.attributes.username)'}`,
    `  email: ${user.email}`,
    `  first_name: ${user.firstName}`,
    `  last_name: ${user.lastName}`,
    `directory groups: ${user.groupDns.length ? '' : '(none)'}`,
    ...user.groupDns.map((dn) => `  ${dn}`),
    `is_superuser: ${flag(user.isSuperuser)}`,
    `is_system_auditor: ${flag(user.isSystemAuditor)}`,
    `groups: ${user.groups.join(', ') || '(none)'}`,
    `password: ${lookup.passwordValid === undefined ? 'not checked (use --password-stdin)' : lookup.passwordValid ? 'ok' : 'refused by the directory'}`,
  )
  // What the directory holds of a person (names, often theirs to edit) is printed as text, never as terminal control.
  return lines.map(printable).join('\n') + '\n'
}
