import { isUtf8 } from 'node:buffer'
import { hash, randomBytes } from 'node:crypto'
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { isIP } from 'node:net'
import { printable } from '../logging/printable.ts'
import { readStdin, withApp } from './actions.ts'
import { everyPage, printList, UsageError, writeFailure, writeSecret, type StorageOptions } from './common.ts'
import type { App } from '../app.ts'
import { auditedUser, passwordMark, serializeUser } from '../api/users.ts'
import { emailAddress } from '../api/profile-fields.ts'
import { cliActor } from '../audit/actor.ts'
import { recordTokensOfUserRevoked } from '../audit/tokens.ts'
import { DatabaseLockHeld, SelfLockout, ValidationFailed } from '../errors.ts'
import { UniqueViolation } from '../store/errors.ts'
import type { User } from '../store/users.ts'
import { countListedUsers, MAX_IMPORT_USERS, readImportBytes, type ByteSource, type ImportFile, type NotImported } from '../directory/account-import.ts'
import type { ImportedTogether, ImportOutcome } from '../directory/accounts.ts'
import type { GivenRole } from '../access/admin.ts'
import type { Organization, Team } from '../store/access.ts'
import { serializeTeam } from '../api/organizations.ts'
import { auditGiven } from '../api/roles.ts'
import { readBytesAtMost, startsAsUtf16 } from '../config/read-at-most.ts'

export async function createUser(name: string, options: StorageOptions & { passwordStdin?: boolean; email?: string; superuser?: boolean }): Promise<void> {
  const email = emailAddress.safeParse(options.email ?? '')
  if (!email.success) throw new ValidationFailed({ email: email.error.issues.map((issue) => issue.message) })
  const password = options.passwordStdin ? await readStdin() : randomBytes(18).toString('base64url')
  await withApp(options, async (app) => {
    const user = await app.accounts.create({ username: name, password, email: options.email ?? '', isSuperuser: Boolean(options.superuser) })
    app.audit.change(cliActor(), 'create', auditedUser(user), undefined, { ...serializeUser(user), ...passwordMark(password, 'set') })
    const created = `created user ${user.username} (id ${user.id}${user.isSuperuser ? ', superuser' : ''})\n`
    if (options.passwordStdin) return void process.stdout.write(created)
    try {
      await writeSecret(`${created}password: ${password}\n`)
    } catch (error) {
      await deleteUndelivered(app, user, writeFailure(error))
    }
  })
}

export async function listUsers(options: StorageOptions & { json?: boolean }): Promise<void> {
  await withApp(options, async (app) => {
    const users = await everyPage(async (offset, limit) => (await app.store.users.list({ offset, limit })).users)
    printList(users, options.json === true, ['ID', 'USERNAME', 'SOURCE', 'SUPERUSER', 'ACTIVE', 'EMAIL'],
      (u) => [String(u.id), u.username, u.source, u.isSuperuser ? 'yes' : 'no', u.isActive ? 'yes' : 'no', u.email], serializeUser)
  })
}

export async function setPassword(name: string, options: StorageOptions & { revokeTokens?: boolean }): Promise<void> {
  const password = await readStdin()
  await withApp(options, async (app) => {
    const user = await findUser(app, name)
    if (user.source !== 'local') throw new UsageError(`${name} is a ${user.source} account; its password is managed by its source`)
    await app.accounts.update(user.id, { password, revokeTokens: options.revokeTokens === true }, { tokensRevoked: (revoked) => recordTokensOfUserRevoked(app.audit, cliActor(), user.id, revoked) })
    app.audit.change(cliActor(), 'update', auditedUser(user), passwordMark(password, 'old'), passwordMark(password, 'new'))
    process.stdout.write(`password changed for ${name}${options.revokeTokens ? ', personal tokens revoked' : ''}\n`)
  })
}

export const disableUser = accountChange(async (app, user, name) => {
  const after = await app.accounts.update(user.id, { isActive: false }, { keepAnActiveSuperuser: true }).catch((error: unknown) => {
    if (!(error instanceof SelfLockout)) throw error
    throw new SelfLockout(`${name} is the last active superuser: disabling it would leave no one to administer Gatehouse; `
      + 'make another superuser first (gatehouse users create NAME --superuser)')
  })
  app.audit.change(cliActor(), 'update', auditedUser(user), serializeUser(user), serializeUser(after))
  return `disabled ${name}`
})

export const enableUser = accountChange(async (app, user, name) => {
  // Before the source: an enabled LDAP account needs nothing, and the API call named below would change nothing.
  if (user.isActive) return `${name} is enabled already`
  if (user.source === 'ldap') {
    throw new UsageError(`${name} is an LDAP account: enable it through the API, ${enableThroughApi(user)}`)
  }
  const after = await app.accounts.update(user.id, { isActive: true })
  app.audit.change(cliActor(), 'update', auditedUser(user), serializeUser(user), serializeUser(after))
  return `enabled ${name}`
})

export async function unlockUsername(name: string, options: StorageOptions): Promise<void> {
  await withApp(options, async (app) => {
    const cleared = await app.accounts.lockout.clear(name)
    // A username is locked whether or not an account has it, in any letter case (`VICTIM`'s failures are victim's);
    // one an account has is recorded, and said, as that account, as every user entry is.
    const user = cleared ? await app.store.users.findCaseVariant(name) : undefined
    if (cleared) app.audit.change(cliActor(), 'update', user ? auditedUser(user) : { type: 'user', name }, { failed_logins: 'some' }, { failed_logins: 'cleared' })
    const named = printable(user?.username ?? name)
    process.stdout.write(cleared ? `unlocked ${named}\n` : `${named} had no failed logins\n`)
  })
}

export async function unthrottleAddress(address: string, options: StorageOptions): Promise<void> {
  // An address as a connection has it: the shorthand forms of IPv4 that address parsers also read (`1.2.3` for
  // 1.2.0.3, `127.1`, hexadecimal parts) would clear another address than the one the operator meant.
  if (!isIP(address)) throw new UsageError(`not an IP address: ${address}`)
  await withApp(options, async (app) => {
    const result = await app.accounts.lockout.clearAddress(address)
    if (!result) throw new UsageError(`not an IP address: ${address}`)
    if (result.cleared) app.audit.change(cliActor(), 'update', { type: 'address', name: result.counted }, { failed_logins: 'some' }, { failed_logins: 'cleared' })
    process.stdout.write(result.cleared ? `unthrottled ${result.counted}\n` : `${result.counted} had no failed logins\n`)
  })
}

/** A Keycloak realm export holds a few kilobytes per user: room for a few hundred thousand. */
const MAX_IMPORT_BYTES = 256 * 1024 * 1024

type ImportOptions = StorageOptions & { update?: boolean; groupsToTeams?: string }

/** What `--groups-to-teams` made: the organization, the teams created in it, and the memberships given (or held already). */
interface TeamsJoined {
  readonly organization: Organization
  readonly created: readonly Team[]
  readonly given: readonly GivenRole[]
}

/**
 * The accounts of the file, read and checked before any database is opened. Its bytes are this function's alone, and
 * let go before its entries are read: a file (a regular one) is read again from the disk a block at a time, so that
 * what it lists is held only as accounts (a file may have 256 MiB). Its checks (UTF-8, the most users) are of what was
 * read first, so each block read again must be the block checked, before any of its bytes is used, or nothing is
 * imported: compared with the file read a third time once its accounts were read, a file changed after its check and
 * put back before that third read had its changed bytes imported.
 */
function readUsersFile(file: string, groupsToTeams: boolean): ImportFile {
  let fd: number
  let bytes: Buffer | undefined
  try {
    fd = openSync(file, 'r')
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`)
  }
  try {
    try {
      bytes = readBytesAtMost(fd, MAX_IMPORT_BYTES)
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`)
    }
    if (bytes === undefined) throw new UsageError(`${file} is larger than ${MAX_IMPORT_BYTES / 1024 / 1024} MiB; split it (Keycloak's export writes users-N.json files of its own)`)
    // JSON is UTF-8 (RFC 8259): read as it, a file in another encoding had each of its other bytes made U+FFFD, and its
    // names and addresses stored so. The byte-order mark some editors put in front, which the RFC lets a reader skip, is.
    if (!isUtf8(bytes)) {
      throw new UsageError(`${file}: nothing was imported: the file is not UTF-8${startsAsUtf16(bytes) ? ' (it is UTF-16)' : ''}, as JSON is; convert it to UTF-8 first`)
    }
    const listed = countListedUsers(bytes, MAX_IMPORT_USERS)
    if (listed > MAX_IMPORT_USERS) {
      throw new UsageError(`${file}: nothing was imported: the file lists more than ${MAX_IMPORT_USERS.toLocaleString('en')} users, the most one import takes; split it`)
    }
    // A pipe cannot be read again: its bytes stay.
    if (!fstatSync(fd).isFile()) return readImportBytes(bytesInMemory(bytes), { groupsToTeams })
    const checked = new CheckedFileBytes(fd, bytes)
    bytes = undefined
    try {
      return readImportBytes(checked, { groupsToTeams })
    } catch (error) {
      if (!(error instanceof ChangedWhileRead)) throw error
      throw new UsageError(`${file}: nothing was imported: the file changed while it was read; run the import again once it is written`)
    }
  } finally {
    closeSync(fd)
  }
}

function bytesInMemory(bytes: Buffer): ByteSource {
  return { size: bytes.length, read: (start, length) => bytes.subarray(start, start + length) }
}

/** How many of a file's bytes are read from the disk, and checked, at a time: 256 MiB have 8 KB of digests. */
const CHECKED_BLOCK = 1024 * 1024

/** A block of the file, read again, is not as it was checked: it changed, or the file is longer or shorter. */
class ChangedWhileRead extends Error {}

/**
 * A file's bytes, read from the disk again as they are asked for, each block of them checked against the SHA-256 of
 * the same block of the bytes checked before it is used: a file that changed since, even one put back after, gives
 * ChangedWhileRead instead of bytes. The last two blocks read are held, as a reader asks for stretches across them.
 */
class CheckedFileBytes implements ByteSource {
  readonly #fd: number
  readonly size: number
  readonly #digests: readonly Buffer[]
  #held: { index: number; bytes: Buffer }[] = []

  constructor(fd: number, checked: Buffer) {
    this.#fd = fd
    this.size = checked.length
    this.#digests = Array.from({ length: Math.ceil(checked.length / CHECKED_BLOCK) }, (_, index) =>
      hash('sha256', checked.subarray(index * CHECKED_BLOCK, (index + 1) * CHECKED_BLOCK), 'buffer'))
  }

  read(start: number, length: number): Buffer {
    const end = Math.min(start + length, this.size)
    if (end <= start) return Buffer.alloc(0)
    const first = Math.floor(start / CHECKED_BLOCK)
    const last = Math.floor((end - 1) / CHECKED_BLOCK)
    if (first === last) return this.#block(first).subarray(start - first * CHECKED_BLOCK, end - first * CHECKED_BLOCK)
    const bytes = Buffer.allocUnsafe(end - start)
    for (let index = first; index <= last; index++) {
      const blockStart = index * CHECKED_BLOCK
      this.#block(index).copy(bytes, Math.max(blockStart - start, 0), Math.max(start - blockStart, 0), Math.min(end - blockStart, CHECKED_BLOCK))
    }
    return bytes
  }

  #block(index: number): Buffer {
    const held = this.#held.find((block) => block.index === index)
    if (held) return held.bytes
    const start = index * CHECKED_BLOCK
    const checkedLength = Math.min(CHECKED_BLOCK, this.size - start)
    // The last block is asked for a byte more than it had: a file grown since its check gives it.
    const bytes = Buffer.allocUnsafe(checkedLength + (index === this.#digests.length - 1 ? 1 : 0))
    let filled = 0
    for (let got; filled < bytes.length && (got = readSync(this.#fd, bytes, filled, bytes.length - filled, start + filled)) > 0;) filled += got
    if (filled !== checkedLength || !hash('sha256', bytes.subarray(0, filled), 'buffer').equals(this.#digests[index]!)) throw new ChangedWhileRead()
    // Each block its own buffer, never written again: the stretches handed out of it stay as they were checked.
    const block = bytes.subarray(0, checkedLength)
    this.#held = [{ index, bytes: block }, ...this.#held.slice(0, 1)]
    return block
  }
}

/** How many of a file's problems its refusal names: a file of a million entries may have as many. */
const NAMED_PROBLEMS = 100

function listedProblems(problems: readonly string[]): string {
  const more = problems.length - NAMED_PROBLEMS
  return problems.slice(0, NAMED_PROBLEMS).join('; ') + (more > 0 ? `; and ${more.toLocaleString('en')} more problem${more === 1 ? '' : 's'}` : '')
}

export async function importUsers(file: string, options: ImportOptions): Promise<void> {
  const { groupsToTeams } = options
  if (groupsToTeams !== undefined && groupsToTeams.trim() === '') throw new UsageError('--groups-to-teams names no organization; give its name')
  const read = readUsersFile(file, groupsToTeams !== undefined)
  if (read.problems.length) throw new UsageError(`${file}: nothing was imported: ${listedProblems(read.problems)}`)
  if (groupsToTeams !== undefined && read.format !== 'keycloak') {
    throw new UsageError(`${file}: nothing was imported: --groups-to-teams reads a Keycloak realm export's groups, and a list of the platform's users has none`)
  }
  await withApp(options, async (app) => {
    let teams: TeamsJoined | undefined
    const together: ImportedTogether | undefined = groupsToTeams === undefined ? undefined : async (tx, announce, written) => {
      const organization = await tx.access.findOrganizationByName(groupsToTeams)
      // Kept until the import commits, as the API keeps the object it gives a role on.
      if (!organization || !(await tx.access.lockObjectToAssign('organization', organization.id))) {
        throw new UsageError(`${file}: nothing was imported: there is no organization ${JSON.stringify(groupsToTeams)} for --groups-to-teams; create it first (POST /api/gateway/v1/organizations/)`)
      }
      // The accounts the import wrote; a skipped one is left as it is, its teams too.
      const teamsOf = new Map(read.accounts.map((account) => [account.username, account.teams]))
      const members = [...written.created, ...written.updated.map(({ after }) => after)].map((user) => ({ userId: user.id, teams: teamsOf.get(user.username) ?? [] }))
      teams = { organization, ...await app.accessAdmin.joinTeams(tx, announce, organization.id, members) }
    }
    const outcome = await writtenOnce(file, () => app.accounts.importAccounts(read.accounts, { update: options.update === true, together }))
    const imported = (user: User) => user.passwordHash === null ? {} : { password: 'imported' }
    // Written as they are recorded, a batch at a time: a change's entry is always kept, so the entries of a large file
    // would otherwise wait in memory all at once (some 700 bytes each) for the trail's flush at the end.
    let recorded = 0
    const written = () => ++recorded % AUDIT_BATCH === 0 ? app.audit.flush() : undefined
    for (const user of outcome.created) {
      app.audit.change(cliActor(), 'create', auditedUser(user), undefined, { ...serializeUser(user), ...imported(user) })
      await written()
    }
    for (const { before, after, passwordChanged } of outcome.updated) {
      app.audit.change(cliActor(), 'update', auditedUser(after), { ...serializeUser(before), ...(passwordChanged ? { password: 'old' } : {}) },
        { ...serializeUser(after), ...(passwordChanged ? { password: after.passwordHash === null ? 'removed' : 'imported' } : {}) })
      await written()
    }
    if (teams) {
      for (const team of teams.created) app.audit.change(cliActor(), 'create', { type: 'team', id: team.id, name: team.name }, undefined, serializeTeam(app, team))
      await auditGiven(app, cliActor(), 'user', teams.given)
    }
    process.stdout.write([...importSummary(read, outcome), ...teamsSummary(read, teams)].join('\n') + '\n')
  })
}

/** How many of an import's audit entries wait in memory before they are written. */
const AUDIT_BATCH = 1000

/** How many times an import is written again after another command made accounts or teams of the file meanwhile. */
const IMPORT_ATTEMPTS = 4
/** How long an import goes on trying while another transaction holds what it must write (another import's accounts). */
const IMPORT_LOCK_WAIT_MS = 10 * 60_000

/**
 * Runs the import's transaction, again when it was rolled back because another command (an import of the same file at
 * once, the API) created one of its accounts, or teams, while it ran: PostgreSQL's unique index then refuses the
 * second write once the first commits. Written again, it finds them and skips or updates them as a later run would.
 * An insert of a name another transaction is inserting waits for that one to end, within the lock timeout
 * (`storage.timeouts`, under 2 s by default), which an import of many accounts, the other one, outlasts: given up
 * (DatabaseLockHeld), the import is tried again for up to IMPORT_LOCK_WAIT_MS, so that it ends as a later run would.
 */
async function writtenOnce<T>(file: string, write: () => Promise<T>): Promise<T> {
  const waitUntil = Date.now() + IMPORT_LOCK_WAIT_MS
  let collisions = 0
  let waited = false
  for (;;) {
    try {
      return await write()
    } catch (error) {
      if (error instanceof DatabaseLockHeld && Date.now() < waitUntil) {
        if (!waited) process.stderr.write(`${printable(file)}: waiting for another client of the database that holds accounts or teams it must write (another import?)\n`)
        waited = true
        continue
      }
      if (!(error instanceof UniqueViolation)) throw error
      if (++collisions === IMPORT_ATTEMPTS) {
        throw new Error(`${file}: nothing was imported: other commands kept creating accounts or teams of the same names while it ran; run it again`)
      }
    }
  }
}

/**
 * A name quoted for the terminal: a team's is a group path of the file, which may hold what JSON leaves as it is (a
 * C1 control, a bidirectional override), written as its escape.
 */
function quoted(name: string): string {
  return printable(JSON.stringify(name))
}

/** What --groups-to-teams did, or that the file's groups were made no teams without it. */
function teamsSummary(read: ImportFile, teams: TeamsJoined | undefined): string[] {
  if (!teams) {
    const grouped = read.accounts.filter((account) => account.notImported.includes('groups')).length
    return grouped ? [`groups made no teams (--groups-to-teams ORGANIZATION makes each a team of the organization, its users members)`] : []
  }
  const given = teams.given.filter((result) => result.created).length
  const created = teams.created.length ? ` (${teams.created.map((team) => quoted(team.name)).join(', ')})` : ''
  return [`teams of the organization ${quoted(teams.organization.name)}: ${teams.created.length} created${created}, `
    + `${given} membership${given === 1 ? '' : 's'} given, ${teams.given.length - given} held already`]
}

/** What an import did, a line each, every account named that needs the administrator's eye (never a hash). */
function importSummary(read: ImportFile, outcome: ImportOutcome): string[] {
  const names = (users: readonly { username: string }[]) => users.map((user) => user.username).join(', ')
  const privileges = (kept: ImportOutcome['privilegesLeft']) => kept.map(({ user, privileges }) => `${user.username} (${privileges.join(', ')})`).join(', ')
  const temporary = new Set(read.accounts.filter((account) => account.temporaryPassword).map((account) => account.username))
  const withoutPassword = [...outcome.created, ...outcome.updated.map(({ after }) => after)].filter((user) => user.passwordHash === null)
  const weakened = read.accounts.filter((account) => account.notImported.includes('other credentials'))
  const counted = new Map<NotImported, number>()
  for (const account of read.accounts) for (const kind of account.notImported) counted.set(kind, (counted.get(kind) ?? 0) + 1)
  const notImported = [...counted].map(([kind, count]) => `${kind} of ${count} user${count === 1 ? '' : 's'}`)
  return [
    `${read.accounts.length} users in ${read.format === 'keycloak' ? 'the Keycloak realm export' : 'the list of the platform\'s users'}: `
      + `${outcome.created.length} created, ${outcome.updated.length} updated, ${outcome.skipped.length} skipped`,
    outcome.skipped.length ? `skipped (exist already; --update gives them the file's fields and, where unchanged since imported, its password): ${names(outcome.skipped)}` : '',
    read.leftOut.length ? `left out (a client's service account, which the realm makes): ${read.leftOut.join(', ')}` : '',
    outcome.disabled.length ? `disabled, as the file says: ${names(outcome.disabled)}` : '',
    outcome.enabled.length ? `enabled, as the file says (it disabled them at the last import): ${names(outcome.enabled)}` : '',
    outcome.keptDisabled.length
      ? `left disabled, though the file enables them (disabled in Gatehouse since the file last said so, or by no import; enable them with the API if the source is to win): ${names(outcome.keptDisabled)}`
      : '',
    outcome.keptEnabled.length
      ? `left enabled, though the file disables them (enabled in Gatehouse since the file last said so; users disable disables them if the source is to win): ${names(outcome.keptEnabled)}`
      : '',
    outcome.privilegesWithheld.length
      ? `left without what the file gives them (taken away in Gatehouse since the file last gave it, or given by no import; give it with the API if the source is to win): ${privileges(outcome.privilegesWithheld)}`
      : '',
    outcome.privilegesLeft.length
      ? `left with what the file takes away (given in Gatehouse since the file last took it away; take it away with the API if the source is to win): ${privileges(outcome.privilegesLeft)}`
      : '',
    outcome.passwordsKept.length ? `password left alone (changed in Gatehouse, or replaced at a sign-in, since it was imported; users set-password gives another): ${names(outcome.passwordsKept)}` : '',
    withoutPassword.some((user) => temporary.has(user.username))
      ? `without the temporary password the file gives them (Gatehouse cannot make its user change it at the next sign-in; give one with users set-password): ${names(withoutPassword.filter((user) => temporary.has(user.username)))}`
      : '',
    withoutPassword.some((user) => !temporary.has(user.username))
      ? `without a password (give one with users set-password): ${names(withoutPassword.filter((user) => !temporary.has(user.username)))}`
      : '',
    notImported.length ? `not imported, as Gatehouse has no place for them: ${notImported.join(', ')}` : '',
    weakened.length ? `signing in with their password alone (their other credentials, such as one-time password generators, are not imported): ${names(weakened)}` : '',
  ].filter(Boolean)
}

/**
 * An account whose generated password could not be written (`| true`, a full disk) is deleted again: no one knows its
 * password, and a script would otherwise create it again and be told its name is taken. Nothing else can have used it.
 */
async function deleteUndelivered(app: App, user: User, why: string): Promise<never> {
  try {
    await app.accounts.delete(user.id)
  } catch (error) {
    throw new Error(`the generated password of ${user.username} could not be written (${why}), and the account could not be deleted again `
      + `(${(error as Error)?.message ?? String(error)}); give it a password with: gatehouse users set-password ${user.username} --password-stdin`)
  }
  app.audit.change(cliActor(), 'delete', auditedUser(user), serializeUser(user))
  throw new Error(`the generated password could not be written (${why}); the account ${user.username} was deleted again: create it with standard output where it can be read, or with --password-stdin`)
}

/** The action of a command that changes the account a username names, and prints the line `change` answers. */
function accountChange(change: (app: App, user: User, name: string) => Promise<string>): (name: string, options: StorageOptions) => Promise<void> {
  return async (name, options) => {
    await withApp(options, async (app) => {
      process.stdout.write(`${await change(app, await findUser(app, name), name)}\n`)
    })
  }
}

/** How a disabled account is enabled again: by `users enable`, or an LDAP one by the API, which asks the directory first. */
export function howToEnable(user: User): string {
  return user.source === 'ldap' ? `an LDAP account: ${enableThroughApi(user)}` : `gatehouse users enable ${user.username}`
}

function enableThroughApi(user: User): string {
  return `PATCH /api/gateway/v1/users/${user.id}/ with {"is_active": true}, which first asks the directory whether it still lists the person`
}

export async function findUser(app: App, name: string) {
  const user = await app.store.users.findByUsername(name)
  if (!user) throw new UsageError(`no such user: ${name}`)
  return user
}
