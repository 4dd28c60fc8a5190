import { profileFields } from '../api/profile-fields.ts'
import { isServiceAccountName, SERVICE_ACCOUNT_NAME, usernameProblem } from './accounts.ts'
import { hashCostRefusal } from './passwords.ts'
import { KEYCLOAK_DIGESTS } from './pbkdf2-hashes.ts'
import { withoutControls } from './upstream-profile.ts'

/**
 * Reads the accounts of the products Gatehouse replaces, with their password hashes as those products wrote them
 * (docs/passwords.md#accounts-imported-from-the-platform-or-keycloak):
 *
 * - a Keycloak realm export (`kc.sh export`, or the admin console's partial export), or one of its `users-N.json`
 *   files: an object whose `users` hold `credentials` with `secretData` and `credentialData` as JSON text
 *   (org.keycloak.models.credential.dto.PasswordSecretData, PasswordCredentialData), or before Keycloak 11 the same
 *   fields in the credential itself;
 * - a JSON list of the automation platform's users (django-ansible-base's User: `username`, `email`, `first_name`,
 *   `last_name`, `is_superuser`, `is_active`, `is_platform_auditor` (AWX's `is_system_auditor`), and `password` as
 *   Django stores it), or the API's page of them (`{"results": [...]}`).
 *
 * Nothing here writes: every problem of the file is collected, so that a file is imported whole or not at all.
 * A problem names the user and the hash's scheme, never the hash.
 */

export interface ImportedAccount {
  /** Its entry's index in the file's list of users: where it is, for messages (placeOf). */
  readonly index: number
  readonly username: string
  readonly email: string
  readonly firstName: string
  readonly lastName: string
  /**
   * Undefined where the file has no word for it (a Keycloak user: realm roles are not mapped, below): a new account is
   * none, and an update leaves an existing one's as Gatehouse's administrators made it.
   */
  readonly isSuperuser: boolean | undefined
  /**
   * The Platform Auditor: the flag the import writes, which the role follows (src/access/admin.ts
   * keepAuditorRoleWithFlag). Undefined as `isSuperuser` is.
   */
  readonly isSystemAuditor: boolean | undefined
  readonly isActive: boolean
  /** As stored (src/directory/passwords.ts, pbkdf2-hashes.ts); null: the account has no password it can sign in with. */
  readonly passwordHash: string | null
  /**
   * The file's password was one the user was to change at the next sign-in (a Keycloak credential marked `temporary`,
   * or the required action UPDATE_PASSWORD): someone else chose it. Gatehouse has no such state for its own accounts,
   * so the password is not imported (passwordHash null) rather than made a lasting one.
   */
  readonly temporaryPassword: boolean
  /** What the entry holds that Gatehouse has no place for, so it is not imported (the import's summary counts it). */
  readonly notImported: readonly NotImported[]
  /**
   * The teams its Keycloak groups become, when the import makes them teams (`groupsToTeams`): each group's path as the
   * file writes it, without its leading `/` (`/Engineering/Backend`: `Engineering/Backend`). Otherwise none.
   */
  readonly teams: readonly string[]
}

/** How `readImportFile` reads a file: `groupsToTeams`, the Keycloak users' groups are read as the teams they become. */
export interface ImportOptions {
  readonly groupsToTeams?: boolean | undefined
}

/** The most characters of a team's name (the gateway API's), so of the group path a team is named by. */
export const MAX_TEAM_NAME = 512

/**
 * Kinds of a user's data with no counterpart in Gatehouse. `other credentials` (a one-time password generator, a
 * security key) weakens the account: it signs in with its password alone, so the import names those users.
 */
export type NotImported = 'realm roles' | 'client roles' | 'groups' | 'attributes' | 'required actions' | 'other credentials'
  | 'identity provider links'

export interface ImportFile {
  readonly format: 'keycloak' | 'platform'
  readonly accounts: readonly ImportedAccount[]
  /** Entries left out on purpose (a Keycloak client's service account), by place. */
  readonly leftOut: readonly string[]
  readonly problems: readonly string[]
}

class EntryProblem extends Error {}

/**
 * Where an account is in the file, for messages: `users[3] (alice)`. Made when a message needs it rather than held by
 * each account, as a large file's hundreds of thousands of accounts would each hold one.
 */
export function placeOf(account: ImportedAccount): string {
  return `users[${account.index}] (${account.username})`
}

/**
 * JSON.parse's reason, without the stretch of the file it quotes around a character it did not expect (ten characters
 * either side: part of a password hash, or a binary's raw bytes, which a terminal would act on), and with where that
 * character is instead, when the quote tells it. The character itself is named by its code point unless it is visible.
 */
function jsonSyntaxProblem(message: string, text: string): string {
  const match = /^Unexpected token '(.)', (\.\.\.)?"(.*)"(\.\.\.)? is not valid JSON$/su.exec(message)
  if (!match) return message
  const [, token, before, quoted, after] = match as unknown as [string, string, string | undefined, string, string | undefined]
  const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(token) ? `'${token}'` : `U+${token.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`
  const at = before ? text.indexOf(quoted) + 10 : after ? quoted.length - 10 : -1
  if (at < 0 || at >= text.length) return `Unexpected character ${shown}`
  const line = text.slice(0, at).split('\n').length
  return `Unexpected character ${shown} at line ${line}, column ${at - text.lastIndexOf('\n', at - 1)}`
}

/**
 * The most users one file may list. Parsed and checked, each entry holds a few hundred bytes of memory, however
 * little of the file it takes: a list of 9 million tiny entries, within the size a file may have, took 5 GB and more
 * than two minutes before any answer. A million is more than any file of users with their hashes that size holds, and
 * far more than Keycloak writes in one (`kc.sh export` writes 50 users a file unless told otherwise).
 */
export const MAX_IMPORT_USERS = 1_000_000

/** The bytes of JSON's structure, as UTF-8 writes them (no byte of a longer character is one of them). */
const JSON_BYTE = { quote: 0x22, backslash: 0x5c, comma: 0x2c, colon: 0x3a, openList: 0x5b, closeList: 0x5d, openObject: 0x7b, closeObject: 0x7d } as const
/** JSON's whitespace (RFC 8259 §2): space, tab, line feed, carriage return. */
const isJsonSpace = (byte: number) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d

/**
 * How many entries the file's list of users holds, as `readImportFile` would read them (a list at the top, or a
 * top-level object's `users` or `results`; the most of either), counted on the file's bytes before anything is parsed,
 * at a few nanoseconds a byte and no memory: a file that lists too many is refused before its cost is paid. Counting
 * stops once past `atMost`. Bytes that are not JSON are counted somehow; JSON.parse refuses them after.
 */
export function countListedUsers(bytes: Buffer, atMost: number): number {
  let depth = 0
  let inString = false
  let keyStart = -1
  let key = ''
  let topIsObject = false
  let listDepth = -1
  let expectingItem = false
  let items = 0
  let most = 0
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (inString) {
      if (byte === JSON_BYTE.backslash) i++
      else if (byte === JSON_BYTE.quote) {
        inString = false
        // A key of the top-level object, or a value there, which the next key replaces before any list opens.
        if (keyStart >= 0) key = i - keyStart <= 64 ? jsonString(bytes.toString('utf8', keyStart, i + 1)) : ''
      }
      continue
    }
    if (depth === listDepth) {
      if (byte === JSON_BYTE.comma) expectingItem = true
      else if (expectingItem && byte !== JSON_BYTE.closeList && !isJsonSpace(byte)) {
        expectingItem = false
        if (++items > atMost) return items
      }
    }
    if (byte === JSON_BYTE.quote) {
      inString = true
      keyStart = depth === 1 && topIsObject ? i : -1
    } else if (byte === JSON_BYTE.openList || byte === JSON_BYTE.openObject) {
      depth++
      if (depth === 1) topIsObject = byte === JSON_BYTE.openObject
      if (byte === JSON_BYTE.openList && listDepth < 0 && (depth === 1 || (depth === 2 && topIsObject && (key === 'users' || key === 'results')))) {
        listDepth = depth
        items = 0
        expectingItem = true
      }
    } else if (byte === JSON_BYTE.closeList || byte === JSON_BYTE.closeObject) {
      if (depth === listDepth) {
        most = Math.max(most, items)
        listDepth = -1
      }
      depth--
    }
  }
  return Math.max(most, listDepth >= 0 ? items : 0)
}

/** A JSON string's value, or '' when it is none. */
function jsonString(quoted: string): string {
  try {
    return JSON.parse(quoted) as string
  } catch {
    return ''
  }
}

/** A file's text parsed, or why it is not JSON. */
export type ParsedImportFile = { json: unknown } | { problem: string }

export function parseImportFile(text: string): ParsedImportFile {
  try {
    return { json: JSON.parse(text) }
  } catch (error) {
    return { problem: `the file is not JSON: ${jsonSyntaxProblem((error as Error).message, text)}` }
  }
}

/** The bytes of a file, read a stretch at a time: from memory, or from the file itself (src/cli/users.ts). */
export interface ByteSource {
  readonly size: number
  /** The bytes from `start`, `length` of them (fewer at the end); what it throws (the file changed) is thrown on. */
  read(start: number, length: number): Buffer
}

/** Thrown where the file's bytes are not JSON, or not as the reader below expects them: JSON.parse then says why. */
class NotReadAsEntries extends Error {}

/** How many bytes the reader below scans at a time. */
const SCANNED_BYTES = 1024 * 1024

/**
 * The accounts of a file's bytes (UTF-8, checked before), as readImportFile reads them from the file parsed whole, but
 * holding only its accounts: each entry of the list of users is parsed alone from its bytes and let go once read, and
 * the rest of a realm export is parsed only to check it is JSON (and its `groups`, when they become teams). Parsed
 * whole, the file's text and every entry were held at once, several times what its accounts take. A file this reader
 * does not follow to its end (it is not JSON, or has a list in an unexpected place) is parsed whole instead, so its
 * problems are named by JSON.parse's words, as ever.
 */
export function readImportBytes(source: ByteSource, options: ImportOptions = {}): ImportFile {
  try {
    return readTopLevel(source, options)
  } catch (error) {
    if (!(error instanceof NotReadAsEntries)) throw error
    return readImportFile(parseImportFile(textOf(source, 0, source.size).replace(/^\uFEFF/, '')), options)
  }
}

/** The keys of a realm export's object whose values may be read as more than JSON: its lists of users, its groups. */
const READ_KEYS: ReadonlySet<string> = new Set(['users', 'results', 'groups'])

function readTopLevel(source: ByteSource, options: ImportOptions): ImportFile {
  const byteOrderMark = source.size >= 3 && source.read(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])) ? 3 : 0
  const top = firstValue(source, byteOrderMark, source.size)
  if (top.opening === JSON_BYTE.openList) {
    return readEntries('platform', parsedMembers(source, top.start, top.end), platformAccount)
  }
  if (top.opening !== JSON_BYTE.openObject) throw new NotReadAsEntries()
  // JSON.parse keeps the last of keys that repeat; every other value is parsed only to check it is JSON, as it is met:
  // held by its key, an object of millions of tiny members held gigabytes, and past 2^24 of them failed with V8's words.
  const values = new Map<string, { start: number; end: number }>()
  for (const member of members(source, top.start, top.end)) {
    const key = memberKey(source, member.start, member.end)
    if (!READ_KEYS.has(key.name)) {
      checkJson(source, key.valueStart, member.end)
      continue
    }
    const earlier = values.get(key.name)
    if (earlier) checkJson(source, earlier.start, earlier.end)
    values.set(key.name, { start: key.valueStart, end: member.end })
  }
  const list = (key: string) => {
    const value = values.get(key)
    const list = value && firstValue(source, value.start, value.end)
    return list?.opening === JSON_BYTE.openList ? { key, ...list } : undefined
  }
  const users = list('users')
  const results = users ? undefined : list('results')
  for (const [key, value] of values) {
    // The list read is parsed as it is read, and so are a realm's groups that become teams.
    if (key !== users?.key && key !== results?.key && !(users && options.groupsToTeams && key === 'groups')) checkJson(source, value.start, value.end)
  }
  if (users) {
    const groups = values.get('groups')
    return readKeycloakEntries(parsedMembers(source, users.start, users.end), () => groups && checkJson(source, groups.start, groups.end), options)
  }
  if (results) return readEntries('platform', parsedMembers(source, results.start, results.end), platformAccount)
  return neitherFormat()
}

/** The one value between `start` and `end`: where its bytes are, and its first byte. */
function firstValue(source: ByteSource, start: number, end: number): { start: number; end: number; opening: number } {
  for (let offset = start; offset < end; offset += SCANNED_BYTES) {
    const stretch = source.read(offset, Math.min(end - offset, SCANNED_BYTES))
    const at = stretch.findIndex((byte) => !isJsonSpace(byte))
    if (at >= 0) return { start: offset + at, end, opening: stretch[at]! }
  }
  return { start: end, end, opening: -1 }
}

/** The value between `start` and `end` parsed; what is not JSON is left to readImportBytes to parse whole. */
function checkJson(source: ByteSource, start: number, end: number): unknown {
  // Read outside the try: the source's own refusal (the file changed since it was checked) is not a problem of JSON.
  const text = textOf(source, start, end)
  try {
    return JSON.parse(text)
  } catch {
    throw new NotReadAsEntries()
  }
}

function* parsedMembers(source: ByteSource, start: number, end: number): Generator<unknown> {
  for (const member of members(source, start, end)) yield checkJson(source, member.start, member.end)
}

function textOf(source: ByteSource, start: number, end: number): string {
  return source.read(start, end - start).toString('utf8')
}

/**
 * The members of the list or object that opens at `start` and, with JSON's whitespace after it, fills the bytes to
 * `end`: where each is, split at the commas between them (whitespace around each included; an empty one is no JSON).
 * Each member's own brackets and strings are only stepped over here: parsing it checks them.
 */
function* members(source: ByteSource, start: number, end: number): Generator<{ start: number; end: number }> {
  const closing = source.read(start, 1)[0] === JSON_BYTE.openList ? JSON_BYTE.closeList : JSON_BYTE.closeObject
  let depth = 0
  let inString = false
  let escaped = false
  let memberStart = start + 1
  let separated = false
  let content = false
  for (let offset = start; offset < end; offset += SCANNED_BYTES) {
    const stretch = source.read(offset, Math.min(SCANNED_BYTES, end - offset))
    for (let i = 0; i < stretch.length; i++) {
      const byte = stretch[i]!
      if (inString) {
        if (escaped) escaped = false
        else if (byte === JSON_BYTE.backslash) escaped = true
        else if (byte === JSON_BYTE.quote) inString = false
        continue
      }
      if (depth === 1 && !isJsonSpace(byte) && byte !== JSON_BYTE.comma && byte !== closing) content = true
      if (byte === JSON_BYTE.quote) inString = true
      else if (byte === JSON_BYTE.openList || byte === JSON_BYTE.openObject) depth++
      else if (byte === JSON_BYTE.closeList || byte === JSON_BYTE.closeObject) {
        if (--depth > 0) continue
        if (byte !== closing) throw new NotReadAsEntries()
        if (content || separated) yield { start: memberStart, end: offset + i }
        if (!onlySpace(source, offset + i + 1, end)) throw new NotReadAsEntries()
        return
      } else if (byte === JSON_BYTE.comma && depth === 1) {
        yield { start: memberStart, end: offset + i }
        memberStart = offset + i + 1
        separated = true
      }
    }
  }
  throw new NotReadAsEntries()
}

function onlySpace(source: ByteSource, start: number, end: number): boolean {
  for (let offset = start; offset < end; offset += SCANNED_BYTES) {
    if (!source.read(offset, Math.min(SCANNED_BYTES, end - offset)).every(isJsonSpace)) return false
  }
  return true
}

/** An object's member: its key (a JSON string) and where its value starts, after the colon. */
function memberKey(source: ByteSource, start: number, end: number): { name: string; valueStart: number } {
  const key = firstValue(source, start, end)
  if (key.opening !== JSON_BYTE.quote) throw new NotReadAsEntries()
  const stretch = source.read(key.start, Math.min(end - key.start, SCANNED_BYTES))
  let at = 1
  while (at < stretch.length && stretch[at] !== JSON_BYTE.quote) at += stretch[at] === JSON_BYTE.backslash ? 2 : 1
  if (at >= stretch.length) throw new NotReadAsEntries()
  const name = checkJson(source, key.start, key.start + at + 1)
  let colon = at + 1
  while (colon < stretch.length && isJsonSpace(stretch[colon]!)) colon++
  if (typeof name !== 'string' || stretch[colon] !== JSON_BYTE.colon) throw new NotReadAsEntries()
  return { name, valueStart: key.start + colon + 1 }
}

/**
 * The accounts of a parsed file (parseImportFile). Its list of users is emptied as they are read: a large file's
 * parsed entries and the accounts read from them are not held at once.
 */
export function readImportFile(file: ParsedImportFile, options: ImportOptions = {}): ImportFile {
  if ('problem' in file) return { format: 'platform', accounts: [], leftOut: [], problems: [file.problem] }
  const parsed = file.json
  if (Array.isArray(parsed)) return readEntries('platform', emptied(parsed), platformAccount)
  if (isObject(parsed) && Array.isArray(parsed.users)) return readKeycloakEntries(emptied(parsed.users), () => parsed.groups, options)
  if (isObject(parsed) && Array.isArray(parsed.results)) return readEntries('platform', emptied(parsed.results), platformAccount)
  return neitherFormat()
}

function neitherFormat(): ImportFile {
  return {
    format: 'platform', accounts: [], leftOut: [],
    problems: ['the file is neither a Keycloak realm export (an object with "users") nor a list of the platform\'s users'],
  }
}

/** A list's entries, each let go by the list as it is read: the account read from it holds what it needs of it. */
function* emptied(list: unknown[]): Generator<unknown> {
  for (let index = 0; index < list.length; index++) {
    const entry = list[index]
    list[index] = undefined
    yield entry
  }
}

/** A Keycloak export's users; `groups` gives the realm's groups, read only when they are to become teams. */
function readKeycloakEntries(entries: Iterable<unknown>, groups: () => unknown, options: ImportOptions): ImportFile {
  if (!options.groupsToTeams) return readEntries('keycloak', entries, (entry, index) => keycloakAccount(entry, index, undefined))
  const teams = new GroupTeams(groups())
  const read = readEntries('keycloak', entries, (entry, index) => keycloakAccount(entry, index, teams))
  return { ...read, problems: [...teams.problems, ...read.problems] }
}

function readEntries(format: ImportFile['format'], entries: Iterable<unknown>, read: (entry: Record<string, unknown>, index: number) => ImportedAccount | undefined): ImportFile {
  const accounts: ImportedAccount[] = []
  const leftOut: string[] = []
  const problems: string[] = []
  // Each account by its username in lower case: the earlier account's place is made only when a second one needs it.
  const seen = new Map<string, ImportedAccount>()
  let index = 0
  for (const entry of entries) {
    const named = isObject(entry) && typeof entry.username === 'string' ? ` (${entry.username})` : ''
    const place = () => `users[${index}]${named}`
    try {
      if (!isObject(entry)) throw new EntryProblem('is not an object')
      const account = read(entry, index)
      if (!account) leftOut.push(place())
      else {
        // Gatehouse refuses two accounts whose names differ only in case (src/directory/accounts.ts).
        const other = seen.get(account.username.toLowerCase())
        if (other) throw new EntryProblem(`has the username of ${placeOf(other)}`)
        seen.set(account.username.toLowerCase(), account)
        accounts.push(account)
      }
    } catch (error) {
      if (!(error instanceof EntryProblem)) throw error
      problems.push(`${place()} ${error.message}`)
    }
    index++
  }
  if (!index) problems.push('the file holds no users')
  return { format, accounts, leftOut, problems }
}

/** One empty list for every account that has nothing of a kind, rather than one each. */
const NONE: readonly never[] = Object.freeze([])

function platformAccount(entry: Record<string, unknown>, index: number): ImportedAccount {
  const password = optional(entry, 'password', 'string', '')
  return {
    index,
    username: username(entry),
    email: profileText(entry, 'email', 'email'),
    firstName: profileText(entry, 'first_name', 'first_name'),
    lastName: profileText(entry, 'last_name', 'last_name'),
    isSuperuser: optional(entry, 'is_superuser', 'boolean', false),
    isSystemAuditor: platformAuditor(entry),
    isActive: optional(entry, 'is_active', 'boolean', true),
    passwordHash: djangoHash(password),
    temporaryPassword: false,
    notImported: NONE,
    teams: NONE,
  }
}

/**
 * The platform shows its Platform Auditor role as a flag of the user: `is_platform_auditor` (the gateway's user
 * serializer), `is_system_auditor` (AWX's, and older exports). Absent, the user is none, as an absent `is_superuser`
 * is no superuser; two that disagree leave the file's meaning unknown, so the entry is refused rather than guessed.
 */
function platformAuditor(entry: Record<string, unknown>): boolean {
  const platform = optional<boolean | undefined>(entry, 'is_platform_auditor', 'boolean', undefined)
  const system = optional<boolean | undefined>(entry, 'is_system_auditor', 'boolean', undefined)
  if (platform !== undefined && system !== undefined && platform !== system) throw new EntryProblem('has an "is_platform_auditor" and an "is_system_auditor" that disagree')
  return platform ?? system ?? false
}

/**
 * A Keycloak user; undefined for a client's service account, which belongs to its client, not to a person. `groups`:
 * the realm's groups, when the import makes them teams.
 */
function keycloakAccount(entry: Record<string, unknown>, index: number, groups: GroupTeams | undefined): ImportedAccount | undefined {
  if (entry.serviceAccountClientId !== undefined) return undefined
  const credentials = optional<unknown[]>(entry, 'credentials', 'object', [])
  if (!Array.isArray(credentials)) throw new EntryProblem('has "credentials" that are not a list')
  const passwords = credentials.filter((credential) => isObject(credential) && credential.type === 'password') as Record<string, unknown>[]
  if (passwords.length > 1) throw new EntryProblem('has more than one password credential')
  const requiredActions = optional<unknown[]>(entry, 'requiredActions', 'object', [])
  if (!Array.isArray(requiredActions) || requiredActions.some((action) => typeof action !== 'string')) throw new EntryProblem('has "requiredActions" that are not a list of names')
  // Keycloak reads an action's name in any case (ImportUserActions), and marks a temporary password with UPDATE_PASSWORD.
  const actions = requiredActions.map((action) => (action as string).toUpperCase())
  const temporaryPassword = actions.includes('UPDATE_PASSWORD') || passwords.some((credential) => credential.temporary === true)
  // Checked even when withheld: a file with a hash Gatehouse could never verify is refused the same either way.
  const passwordHash = passwords.length ? keycloakHash(passwords[0]!) : null
  return {
    index,
    username: username(entry),
    email: profileText(entry, 'email', 'email'),
    firstName: profileText(entry, 'firstName', 'first_name'),
    lastName: profileText(entry, 'lastName', 'last_name'),
    isSuperuser: undefined,
    isSystemAuditor: undefined,
    isActive: optional(entry, 'enabled', 'boolean', true),
    passwordHash: temporaryPassword ? null : passwordHash,
    temporaryPassword: temporaryPassword && passwordHash !== null,
    notImported: keycloakNotImported(entry, credentials, actions).filter((kind) => !(groups && kind === 'groups')),
    teams: groups ? groups.teamsOf(entry.groups) : NONE,
  }
}

/**
 * A realm's groups as the teams they become: each user's group path (UserRepresentation's `groups`, as Keycloak's
 * KeycloakModelUtils.buildGroupPath writes it) names its team, checked against the realm's tree (`groups`, each with
 * its `subGroups`) where the file has it (a `users-N.json` has none). Keycloak does not escape a `/` in a group's
 * name by default, so the path `/a/b` may be the group `b` in `a` or a group named `a/b`: both would be the same team,
 * and a path the tree has more than once is refused rather than two groups made one team.
 */
class GroupTeams {
  /** Each path of the tree, and how many of its groups have it; undefined: the file has no tree. */
  readonly #paths: Map<string, number> | undefined
  readonly problems: string[] = []

  constructor(tree: unknown) {
    if (tree === undefined || tree === null) return
    this.#paths = new Map()
    if (Array.isArray(tree)) this.#walk(tree, 'groups', { plain: '', escaped: '' })
    else this.problems.push('the realm\'s "groups" is not a list')
  }

  /**
   * Every group of the tree, with its path as Keycloak writes it with and without escaped slashes (and its own `path`),
   * one level at a time: no deeper than a team's name is long, so a file's nesting costs no stack.
   */
  #walk(tree: unknown[], where: string, root: { plain: string; escaped: string }): void {
    let level = tree.map((group, index) => ({ group, where: `${where}[${index}]`, parent: root }))
    while (level.length) {
      const next: typeof level = []
      for (const { group, where: at, parent } of level) {
        if (!isObject(group) || typeof group.name !== 'string' || group.name === '') {
          this.problems.push(`${at} is not a group with a "name"`)
          continue
        }
        const path = { plain: `${parent.plain}/${group.name}`, escaped: `${parent.escaped}/${group.name.replaceAll('/', '~/')}` }
        const own = typeof group.path === 'string' ? [group.path] : []
        for (const key of new Set([path.plain, path.escaped, ...own])) this.#paths!.set(key, (this.#paths!.get(key) ?? 0) + 1)
        const subGroups = group.subGroups ?? []
        if (!Array.isArray(subGroups)) this.problems.push(`${at} has "subGroups" that are not a list`)
        // Below a path too long to name a team, no group can: a user in one is refused by its path's length.
        else if (path.plain.length <= MAX_TEAM_NAME + 1) next.push(...subGroups.map((sub, index) => ({ group: sub, where: `${at}.subGroups[${index}]`, parent: path })))
      }
      level = next
    }
  }

  /** The teams of a user's `groups`; an EntryProblem names the first path that names none. */
  teamsOf(listed: unknown): string[] {
    if (listed === undefined || listed === null) return []
    if (!Array.isArray(listed) || listed.some((path) => typeof path !== 'string')) throw new EntryProblem('has "groups" that are not a list of group paths')
    return [...new Set((listed as string[]).map((path) => this.#teamOf(path)))]
  }

  #teamOf(path: string): string {
    const name = path.slice(1)
    const shown = shownPath(path)
    if (!path.startsWith('/') || name === '' || name.startsWith('/') || name.endsWith('/') || name.includes('//')) {
      throw new EntryProblem(`is in the group ${shown}, which is not a Keycloak group path (/Group or /Group/Subgroup)`)
    }
    if (name.length > MAX_TEAM_NAME) throw new EntryProblem(`is in the group ${shown}, whose path is longer than a team's name may be (${MAX_TEAM_NAME} characters)`)
    // A lone surrogate (JSON's \ud800) would be stored as U+FFFD, and the API refuses one in a team's name.
    if (name.trim() !== name || !withoutControls(name) || !name.isWellFormed()) {
      throw new EntryProblem(`is in the group ${shown}, whose path no team's name can be (a team's name has no spaces around it, no control or bidirectional formatting characters and no lone surrogate)`)
    }
    const found = this.#paths?.get(path)
    if (this.#paths && found === undefined) throw new EntryProblem(`is in the group ${shown}, which the realm's "groups" does not have`)
    if (found !== undefined && found > 1) {
      throw new EntryProblem(`is in the group ${shown}, which is the path of more than one of the realm's groups (a "/" in a group's name): rename one in Keycloak first`)
    }
    return name
  }
}

/** A group path as a message shows it: quoted, its control characters escaped, at most 80 characters of it. */
function shownPath(path: string): string {
  return JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}...` : path)
}

/** Keycloak's roles that every Gatehouse user holds in every realm already (src/oidc/claims.ts realmRoles, ACCOUNT_ROLES). */
const EVERYONES_REALM_ROLE = /^(default-roles-.+|offline_access|uma_authorization)$/
const EVERYONES_ACCOUNT_ROLES = new Set(['manage-account', 'manage-account-links', 'view-profile'])
/** The password, and the earlier ones Keycloak keeps for its password policy's history (`password-history`). */
const PASSWORD_CREDENTIALS = new Set(['password', 'password-history'])

/**
 * What of a Keycloak user Gatehouse has no place for. Roles are arbitrary names in Keycloak, groups its own tree:
 * none says what Gatehouse's superuser, organizations or teams would (a realm role `admin` is only a name outside
 * Keycloak's master realm), so none is turned into one. `emailVerified` is not among them: Gatehouse verifies no
 * address and calls every one unverified (src/oidc/claims.ts), which is the cautious reading of either value.
 */
function keycloakNotImported(entry: Record<string, unknown>, credentials: unknown[], actions: string[]): NotImported[] {
  const listed = (key: string) => Array.isArray(entry[key]) ? entry[key] as unknown[] : []
  const clientRoles = isObject(entry.clientRoles) ? Object.entries(entry.clientRoles) : []
  const found: [NotImported, boolean][] = [
    ['realm roles', listed('realmRoles').some((role) => typeof role !== 'string' || !EVERYONES_REALM_ROLE.test(role))],
    ['client roles', clientRoles.some(([client, roles]) => !Array.isArray(roles) || roles.some((role) => client !== 'account' || !EVERYONES_ACCOUNT_ROLES.has(role as string)))],
    ['groups', listed('groups').length > 0],
    ['attributes', isObject(entry.attributes) && Object.keys(entry.attributes).length > 0],
    ['required actions', actions.some((action) => action !== 'UPDATE_PASSWORD')],
    ['other credentials', credentials.some((credential) => isObject(credential) && !PASSWORD_CREDENTIALS.has(credential.type as string))],
    ['identity provider links', listed('federatedIdentities').length > 0],
  ]
  return found.filter(([, present]) => present).map(([kind]) => kind)
}

/**
 * A Django password as Gatehouse stores it: PBKDF2 and argon2 as they are; an unusable password (`!...`, as
 * set_unusable_password writes it) or none, null. Any other hasher is refused: Gatehouse could never verify it.
 */
function djangoHash(encoded: string): string | null {
  if (encoded === '' || encoded.startsWith('!')) return null
  const scheme = schemeOf(encoded)
  if (scheme === 'pbkdf2_sha256' || scheme === 'pbkdf2_sha1' || scheme === 'argon2') return verifiable(encoded, scheme)
  if (scheme === 'bcrypt_sha256' || scheme === 'bcrypt') {
    throw new EntryProblem(`has a ${scheme} password hash, which Gatehouse cannot verify (it has no bcrypt implementation): `
      + 'leave the user out of the file, or give it another password on the platform first')
  }
  throw new EntryProblem(`has a password hash of the scheme ${scheme ?? '(none recognised)'}, which Gatehouse cannot verify; it verifies pbkdf2_sha256, pbkdf2_sha1 and argon2`)
}

/** A Keycloak password credential as Gatehouse stores it (pbkdf2-hashes.ts for PBKDF2; a PHC string for argon2). */
function keycloakHash(credential: Record<string, unknown>): string {
  // Exports of Keycloak before 11 hold the hash's fields in the credential itself (CredentialRepresentation's
  // deprecated hashedSaltedValue, salt, hashIterations, algorithm).
  const legacy = credential.hashedSaltedValue !== undefined
  const secret = legacy ? { value: credential.hashedSaltedValue, salt: credential.salt } : jsonField(credential, 'secretData')
  const data = legacy ? { hashIterations: credential.hashIterations, algorithm: credential.algorithm } : jsonField(credential, 'credentialData')
  const algorithm = data.algorithm
  const iterations = data.hashIterations
  const salt = secret.salt
  const value = secret.value
  if (typeof salt !== 'string' || typeof value !== 'string' || typeof algorithm !== 'string' || !Number.isSafeInteger(iterations)) {
    throw new EntryProblem('has a password credential without its value, salt, algorithm or hashIterations')
  }
  if (Object.hasOwn(KEYCLOAK_DIGESTS, algorithm)) return verifiable(`keycloak$${algorithm}$${iterations}$${salt}$${value}`, `Keycloak ${algorithm}`)
  if (algorithm === 'argon2') return verifiable(keycloakArgon2(data, iterations as number, salt, value), 'Keycloak argon2')
  throw new EntryProblem(`has a password hashed with Keycloak's ${/^[\w-]{1,40}$/.test(algorithm) ? algorithm : 'unrecognised algorithm'}, which Gatehouse cannot verify; it verifies pbkdf2, pbkdf2-sha224/256/384/512 and argon2`)
}

const ARGON2_TYPES: Readonly<Record<string, string>> = { id: 'argon2id', i: 'argon2i', d: 'argon2d' }
const ARGON2_VERSIONS: Readonly<Record<string, number>> = { '1.3': 19, '1.0': 16 }

/** Keycloak's argon2 credential (Argon2PasswordHashProvider: its parameters in `additionalParameters`) as a PHC string. */
function keycloakArgon2(data: Record<string, unknown>, iterations: number, salt: string, value: string): string {
  const parameters = isObject(data.additionalParameters) ? data.additionalParameters : {}
  const first = (key: string) => Array.isArray(parameters[key]) && typeof parameters[key][0] === 'string' ? parameters[key][0] as string : undefined
  const type = ARGON2_TYPES[first('type') ?? '']
  const version = ARGON2_VERSIONS[first('version') ?? '']
  const [memory, parallelism, hashLength] = ['memory', 'parallelism', 'hashLength'].map((key) => /^[1-9]\d{0,9}$/.test(first(key) ?? '') ? Number(first(key)) : NaN)
  const unpadded = (b64: string) => b64.replace(/=+$/, '')
  if (!type || !version || [memory, parallelism, hashLength].some(Number.isNaN) || Buffer.from(value, 'base64').length !== hashLength) {
    throw new EntryProblem('has an argon2 password credential whose parameters (type, version, memory, parallelism, hashLength) are missing or do not match its value')
  }
  return `$${type}$v=${version}$m=${memory},t=${iterations},p=${parallelism}$${unpadded(salt)}$${unpadded(value)}`
}

/** The stored hash, once Gatehouse knows it can verify it at a bounded cost (passwords.ts hashCostRefusal). */
function verifiable(stored: string, scheme: string): string {
  const refusal = hashCostRefusal(stored)
  if (refusal) throw new EntryProblem(`has a ${scheme} password hash that Gatehouse will not verify: ${refusal}`)
  return stored
}

/** The hasher's name before the first `$`, when it looks like one (never a part of a hash). */
function schemeOf(encoded: string): string | undefined {
  const scheme = encoded.slice(0, encoded.indexOf('$'))
  return /^[a-z][a-z0-9_]{0,39}$/.test(scheme) ? scheme : undefined
}

function jsonField(credential: Record<string, unknown>, key: string): Record<string, unknown> {
  const text = credential[key]
  if (typeof text !== 'string') throw new EntryProblem(`has a password credential without "${key}"`)
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new EntryProblem(`has a password credential whose "${key}" is not JSON`)
  }
  if (!isObject(parsed)) throw new EntryProblem(`has a password credential whose "${key}" is not a JSON object`)
  return parsed
}

function required(entry: Record<string, unknown>, key: string): string {
  const value = entry[key]
  if (typeof value !== 'string' || value === '') throw new EntryProblem(`has no "${key}"`)
  return value
}

/**
 * The entry's username, when Gatehouse takes it: refused here, it is listed with the file's other problems rather
 * than found once they are mended, and before anything is opened.
 */
function username(entry: Record<string, unknown>): string {
  const name = required(entry, 'username')
  // A name only a realm client's service account has: held by an account, it would break that client's grant.
  const refused = usernameProblem(name) ?? (isServiceAccountName(name) ? SERVICE_ACCOUNT_NAME : undefined)
  if (refused) throw new EntryProblem(`has a username Gatehouse refuses: ${refused}`)
  return name
}

function optional<T extends string | boolean | object | undefined>(entry: Record<string, unknown>, key: string, type: 'string' | 'boolean' | 'object', fallback: T): T {
  const value = entry[key]
  if (value === undefined || value === null) return fallback
  if (typeof value !== type) throw new EntryProblem(`has a "${key}" that is not a ${type === 'object' ? 'list' : type}`)
  return value as T
}

/**
 * An e-mail address or a name as the API takes it (src/api/profile-fields.ts): trimmed, at most the column's width,
 * an address that is one, no bidirectional formatting; and no NUL, which PostgreSQL cannot store. Stored as it came,
 * an overlong one failed the whole import on PostgreSQL with the database's bare words, and SQLite kept what neither
 * the API nor a copy into PostgreSQL (copy-database) would take.
 */
function profileText(entry: Record<string, unknown>, key: string, field: keyof typeof profileFields): string {
  const value = optional(entry, key, 'string', '')
  if (value.includes('\u0000')) throw new EntryProblem(`has a NUL character in "${key}"`)
  // JSON may spell one (\ud800); stored, it would be U+FFFD instead, and the API refuses it.
  if (!value.isWellFormed()) throw new EntryProblem(`has a lone surrogate (\\ud800 to \\udfff) in "${key}", which is not Unicode`)
  const parsed = profileFields[field].safeParse(value)
  if (!parsed.success) {
    const reasons = parsed.error.issues.map((issue) => issue.code === 'too_big' ? `Ensure this field has no more than ${String(issue.maximum)} characters.` : issue.message)
    throw new EntryProblem(`has "${key}" that Gatehouse refuses: ${reasons.join(' ')}`)
  }
  return parsed.data
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
