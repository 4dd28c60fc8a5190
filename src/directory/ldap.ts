import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import type { ConnectionOptions } from 'node:tls'
import type { BerReader, Client, Control, Entry } from 'ldapts'
import { ConfigError } from '../config/load.ts'
import { ldapts, UTF8, withUtf8Unescaped, type LdapConfig } from '../config/ldap.ts'
import { AccountDisabled, AccountExpired, AccountSourceConflict, DirectoryUnavailable, DirectoryUsernameInvalid, GatehouseError, InvalidCredentials, PasswordChangeRequired, PasswordExpired, ValidationFailed } from '../errors.ts'
import type { Store } from '../store/store.ts'
import type { User } from '../store/users.ts'
import { INVALID_USERNAME, USERNAME_PATTERN, type Accounts } from './accounts.ts'
import { boundedConnections } from './ldap-socket.ts'
import { checkElapsedMs, countAlsoAs } from './lockout.ts'
import { syncDirectoryAccount, type DirectoryUser } from './ldap-sync.ts'
import { NOT_MINE, type NotMine, type PasswordSource } from './password-source.ts'

export interface DirectoryLookup {
  /** The server that answered. */
  server: string
  user: DirectoryUser | undefined
  /** Whether the directory accepted the password; undefined when none was given or no user was found. */
  passwordValid: boolean | undefined
  /**
   * Whether the user filter finds the same entry by the username its account gets (`attributes.username`), as the
   * account check and every look-up of that name search for it: true when the name asked for is that username in any
   * letter case, and when no user was found.
   */
  foundByUsername: boolean
}

/**
 * Talks to the LDAP directory: connects to the first server that answers (StartTLS when configured),
 * binds as the service account, finds the user and their groups, and checks a password by binding as the
 * user (the searches asked once more of the next server when one drops the connection: #searches). Each lookup uses
 * its own connection, closed afterwards; the basic-auth credential cache keeps
 * repeated requests away from here. At most `max_connections` lookups talk to the directory at once; the others
 * wait their turn. Everything, waiting and all servers included, must finish within `timeouts.lookup_seconds`.
 */
export class LdapDirectory {
  readonly #config: LdapConfig
  readonly #bindPassword: string
  readonly #tls: ConnectionOptions
  readonly #superuserDns: Set<string>
  readonly #auditorDns: Set<string>
  readonly #namedGroups: [name: string, dns: Set<string>][]
  readonly #turns: Turns
  /**
   * The servers that last failed to answer in time (the lookup's deadline passed while it talked to them, or the
   * connection timed out), each with whether a lookup is trying it again now: one at a time does, and the others
   * pass it by (the next server, else 503 at once) until one gets an answer from it.
   */
  readonly #silent = new Map<string, { probed: boolean }>()

  /** Reads the bind password's environment variable and the CA file now, so a mistake stops the start. */
  constructor(config: LdapConfig, env: NodeJS.ProcessEnv = process.env) {
    this.#config = config
    const bindPassword = config.bind_password ?? env[config.bind_password_env!]
    if (!bindPassword) throw new ConfigError('ldap', [`ldap.bind_password_env: the environment variable ${config.bind_password_env} is not set or empty`])
    this.#bindPassword = bindPassword
    this.#tls = { rejectUnauthorized: config.tls.reject_unauthorized, minVersion: 'TLSv1.2' }
    if (config.tls.ca_file) {
      try {
        this.#tls.ca = readFileSync(config.tls.ca_file)
      } catch (error) {
        throw new ConfigError('ldap', [`ldap.tls.ca_file: cannot read: ${(error as Error).message}`])
      }
    }
    this.#superuserDns = new Set(config.superuser_groups.map(normalizeDn))
    this.#auditorDns = new Set(config.auditor_groups.map(normalizeDn))
    this.#namedGroups = Object.entries(config.named_groups).map(([name, dns]) => [name, new Set(dns.map(normalizeDn))])
    this.#turns = new Turns(config.max_connections)
  }

  /**
   * Finds `username` and, when `password` is given, checks it with a bind as the user. An empty password
   * is refused here, before any connection: LDAP treats a simple bind without a password as an anonymous
   * bind that many servers accept (RFC 4513 section 5.1.2). So is one of only white space, which some servers
   * and proxies trim to an empty one, or one with nothing before a NUL (isBlank). `beforeBind` is told the user
   * found before the password is tried, and may refuse the check by throwing.
   */
  async lookup(username: string, password?: string, beforeBind?: (user: DirectoryUser) => Promise<void>): Promise<DirectoryLookup> {
    if (!USERNAME_PATTERN.test(username)) {
      throw new ValidationFailed({ username: [INVALID_USERNAME] })
    }
    if (password !== undefined && isBlank(password)) throw new ValidationFailed({ password: ['This field may not be blank.'] })
    return this.#withinDeadline(async (connections) => {
      const { client, server, entry, user, foundByUsername } = await this.#searches(connections, async (client, server) => {
        const entry = await this.#findUser(client, username)
        if (!entry) return { client, server, entry, user: undefined, foundByUsername: true }
        const user = await this.#describe(client, entry)
        // Before the bind as the user, whose rights may not reach the search.
        const foundByUsername = user.username.toLowerCase() === username.toLowerCase() || await this.#findsAgain(client, user.username, entry)
        return { client, server, entry, user, foundByUsername }
      })
      if (!entry || !user) return { server, user: undefined, passwordValid: undefined, foundByUsername: true }
      if (password !== undefined) await beforeBind?.(user)
      const passwordValid = password === undefined ? undefined : await this.#bindAs(client, entry.dn, password)
      return { server, user, passwordValid, foundByUsername }
    })
  }

  /**
   * Whether the directory has a user of this name (whether or not they have signed in yet); throws when it cannot say.
   * Several entries holding it count: the name is the directory's, whose mistake its administrators will mend.
   */
  async has(username: string): Promise<boolean> {
    if (!USERNAME_PATTERN.test(username)) return false
    return (await this.listedEntry(username)) !== undefined
  }

  /**
   * The entry that still matches the user filter for `username` (the account check, ldap-check.ts), by its stable
   * identifier ('' when it has none to compare), or undefined when none does: only the search, no groups. Two entries
   * still list the name, as '' (logins refuse them as a directory mistake; an account is not disabled for one).
   * Throws DirectoryUnavailable when the directory cannot say.
   */
  async listedEntry(username: string): Promise<string | undefined> {
    const { user_search: { base, filter, scope }, attributes: { uuid } } = this.#config
    return this.#withinDeadline((connections) => this.#searches(connections, async (client) => {
      try {
        // Two asked for, and counted: ldapts hands back what the server sent within a size limit without the error
        // that says more matched, so with a limit of one a second entry holding the name would go unseen, and the
        // first one's identifier taken for the account's.
        const { searchEntries } = await client.search(base, { scope, filter: fillFilter(filter, { username }), attributes: [uuid], explicitBufferAttributes: [uuid], sizeLimit: 2 })
        if (searchEntries.length > 1) return ''
        const [entry] = searchEntries
        return entry && entryIdOf(entry, uuid)
      } catch (error) {
        if (error instanceof ldapts().SizeLimitExceededError) return ''
        throw error
      }
    }))
  }

  /**
   * Whether the directory answers a search at all (the user search's base entry, no attributes), under the lookup
   * deadline: tells a directory that is down from entries whose own lookups fail (the account check, ldap-check.ts).
   */
  async answers(): Promise<boolean> {
    const { user_search: { base } } = this.#config
    try {
      await this.#withinDeadline((connections) => this.#searches(connections, async (client) => {
        await client.search(base, { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'], sizeLimit: 1 })
      }))
      return true
    } catch (error) {
      if (error instanceof DirectoryUnavailable) return false
      throw error
    }
  }

  /** Whether logins read the user's groups (`group_search`), so that the account check reads them too. */
  get readsGroups(): boolean {
    return this.#config.group_search !== undefined
  }

  /**
   * As listedEntry, and also the user as a login maps them, groups and roles included (the account check, when the
   * directory's groups are mapped: ldap-check.ts), in one conversation under the same turn and deadline as a login.
   * `user` is undefined when two entries list the name: the account is then left as it is, as a login would be
   * refused. A user in more groups than a login reads (whose login is refused too) is mapped as in no group.
   */
  async listedUser(username: string): Promise<{ entryId: string; user: DirectoryUser | undefined } | undefined> {
    return this.#withinDeadline((connections) => this.#searches(connections, async (client) => {
      const found = await this.#findEntries(client, username)
      if (found === SEVERAL) return { entryId: '', user: undefined }
      const [entry] = found
      if (!entry) return undefined
      const entryId = entryIdOf(entry, this.#config.attributes.uuid)
      try {
        return { entryId, user: await this.#describe(client, entry) }
      } catch (error) {
        // Mapped as in no group: none of what the groups give is known to be theirs any more. Kept instead, it would
        // stay for good with a person who can join groups (a directory that lets people join lists) and joins many.
        if (error instanceof TooManyGroups) return { entryId, user: this.#mapped(entry, []) }
        throw error
      }
    }))
  }

  /**
   * Runs a conversation with the directory under the lookup deadline, once a turn is free, and closes every
   * connection it opened. A conversation that outlives its deadline may open no further connection, and its turn
   * goes to the next one once its connections are closed, whenever its own promises settle. The deadline of a
   * password check counts from when the check came to the lockout (`checkElapsedMs`): the time it waited there
   * behind other checks (of a directory that hangs, say) is part of it, and one with none left fails at once. A
   * server that let nearly all of `lookup_seconds` pass is taken for silent (`#silent`) until it answers again; one that
   * only outlasted what a queued check had left is slow, not silent, and goes on serving the checks that have their time.
   */
  async #withinDeadline<T>(conversation: (connections: Connections) => Promise<T>): Promise<T> {
    const connections: Connections = { clients: new Set(), closed: false, server: undefined, probing: undefined }
    const seconds = this.#config.timeouts.lookup_seconds
    const timedOut = () => new DirectoryUnavailable(`The directory did not answer within ${seconds} s.`)
    const leftMs = seconds * 1000 - (checkElapsedMs() ?? 0)
    if (leftMs <= 0) throw timedOut()
    let timer: NodeJS.Timeout | undefined
    let late = false
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true
        reject(timedOut())
      }, leftMs)
    })
    let holdsTurn = false
    let talkingSince: number | undefined
    const inTurn = async () => {
      await this.#turns.take()
      // The deadline passed while this lookup waited: it has nothing left to do with the turn.
      if (connections.closed) return this.#turns.give() as never
      holdsTurn = true
      talkingSince = performance.now()
      return conversation(connections)
    }
    try {
      const answer = await Promise.race([inTurn(), deadline])
      if (connections.server !== undefined) this.#silent.delete(connections.server)
      return answer
    } catch (error) {
      // A server that answered, if only to refuse, is not silent; one that let the deadline pass is.
      if (late) {
        const wholeTime = talkingSince !== undefined && performance.now() - talkingSince >= seconds * 1000 * SILENT_AFTER_SHARE
        if (connections.server !== undefined && wholeTime) this.#markSilent(connections.server)
      } else if (connections.server !== undefined && !(error instanceof DirectoryUnavailable)) {
        this.#silent.delete(connections.server)
      }
      if (error instanceof GatehouseError) throw error
      throw new DirectoryUnavailable('The directory failed to answer the lookup.', error)
    } finally {
      clearTimeout(timer)
      const probed = connections.probing === undefined ? undefined : this.#silent.get(connections.probing)
      if (probed) probed.probed = false
      connections.closed = true
      const closing = [...connections.clients].map((client) => client.unbind().catch(() => {}))
      // The turn is given on once the connections are closed, or a socket too stuck to take the unbind is left.
      if (holdsTurn) void Promise.race([Promise.all(closing), delay(UNBIND_WAIT_MS, undefined, { ref: false })]).then(() => this.#turns.give())
    }
  }

  /** Takes `server` for silent; one already taken so keeps its state, so that a lookup trying it again stays the only one. */
  #markSilent(server: string): void {
    if (!this.#silent.has(server)) this.#silent.set(server, { probed: false })
  }

  /**
   * Runs `search` (searches only: it sends no password) on a connection to the first server that opens one, and
   * once more on a server after it when that server fails the search without an LDAP answer: it dropped the
   * connection after the service bind (a restart, a balancer that moved it), or sent what is no LDAP message. A
   * search it answered, if only with an error, is its answer and is not asked again, nor is a user's bind ever sent
   * twice: it comes after the searches, on the connection they used. The lookup deadline covers both tries.
   */
  async #searches<T>(connections: Connections, search: (client: Client, server: string) => Promise<T>): Promise<T> {
    const { client, server } = await this.#connect(connections)
    try {
      return await search(client, server)
    } catch (error) {
      const next = this.#config.servers.indexOf(server) + 1
      if (error instanceof GatehouseError || error instanceof ldapts().ResultCodeError || next === this.#config.servers.length || connections.closed) throw error
      // It took the connection and the bind: not silent, and no longer the one lookup trying it again.
      this.#silent.delete(server)
      if (connections.probing === server) connections.probing = undefined
      const dropped = `${server}: failed the lookup after the service bind: ${(error as Error).message.split('\n')[0]}`
      const retry = await this.#connect(connections, next, [dropped])
      return search(retry.client, retry.server)
    }
  }

  /**
   * The first server, in order from `from`, that connects, upgrades to TLS when asked, and accepts the service
   * account. `failures` are earlier servers' (#searches), reported with these when none is left.
   */
  async #connect(connections: Connections, from = 0, failures: string[] = []): Promise<{ client: Client; server: string }> {
    for (const server of this.#config.servers.slice(from)) {
      if (connections.closed) break
      const silent = this.#silent.get(server)
      if (silent?.probed) {
        failures.push(`${server}: did not answer a lookup in time lately; another lookup is trying it again`)
        continue
      }
      if (silent) {
        silent.probed = true
        connections.probing = server
      }
      connections.server = server
      const secure = server.startsWith('ldaps:')
      const client = new (ldapts().Client)({
        url: server,
        connectTimeout: this.#config.timeouts.connect_seconds * 1000,
        timeout: this.#config.timeouts.lookup_seconds * 1000,
        ...boundedConnections,
        // ldapts treats any TLS options as "connect with TLS", so plain ldap:// gets them only at StartTLS.
        ...(secure ? { tlsOptions: this.#tls } : {}),
      })
      connections.clients.add(client)
      try {
        await this.#open(client, server, server !== this.#config.servers.at(-1))
        return { client, server }
      } catch (error) {
        connections.clients.delete(client)
        client.unbind().catch(() => {})
        connections.server = undefined
        if (connections.probing === server) {
          connections.probing = undefined
          silent!.probed = false
        }
        if (SILENT_OPENINGS.includes((error as Error).message)) this.#markSilent(server)
        if (error instanceof ldapts().InvalidCredentialsError) {
          throw new DirectoryUnreachable('The directory refused the service account.', new Error(`${server}: the service account bind (ldap.bind_dn) was refused: wrong DN or password`))
        }
        failures.push(`${server}: ${(error as Error).message.split('\n')[0]}`)
      }
    }
    throw new DirectoryUnreachable('The directory could not be reached.', new Error(failures.join('; ')))
  }

  /**
   * Opens the conversation with `server`: the connection, StartTLS when configured, and the service account's bind.
   * The connection and TLS get `connect_seconds`, StartTLS's exchange included, as LDAPS's handshake is (ldapts'
   * `connectTimeout`). So does the service bind when another server follows (`passable`): a server that takes
   * connections but answers nothing (a stopped process, a balancer in front of a dead one) is then passed for the
   * next one, rather than holding every login until `lookup_seconds` runs out. The last server's bind has the rest of
   * the lookup's time, so that a lone directory that is slow, not silent, still serves.
   */
  async #open(client: Client, server: string, passable: boolean): Promise<void> {
    const openBy = performance.now() + this.#config.timeouts.connect_seconds * 1000
    if (this.#config.start_tls) await beforeTime(client.startTLS({ ...this.#tls, host: hostOf(server), ...serverName(server) }), openBy)
    const bind = client.bind(this.#config.bind_dn, this.#bindPassword)
    await (passable ? beforeTime(bind, openBy) : bind)
  }

  async #findUser(client: Client, username: string): Promise<Entry | undefined> {
    const found = await this.#findEntries(client, username)
    // Two entries for one username is a directory mistake; picking one would let the wrong person in.
    return found === SEVERAL ? undefined : found[0]
  }

  /** The entry the user filter finds for `username` (none or one), or SEVERAL. */
  async #findEntries(client: Client, username: string): Promise<Entry[] | typeof SEVERAL> {
    const { base, filter, scope } = this.#config.user_search
    try {
      const { searchEntries } = await client.search(base, {
        scope,
        filter: fillFilter(filter, { username }),
        attributes: Object.values(this.#config.attributes),
        explicitBufferAttributes: [this.#config.attributes.uuid],
        sizeLimit: 2,
      })
      return searchEntries.length > 1 ? SEVERAL : searchEntries
    } catch (error) {
      if (error instanceof ldapts().SizeLimitExceededError) return SEVERAL
      throw error
    }
  }

  /**
   * Whether the user filter, given `username`, finds `entry` and no other. A username no account may have is left to
   * be refused as such (`directory_username_invalid`, ldap-sync.ts).
   */
  async #findsAgain(client: Client, username: string, entry: Entry): Promise<boolean> {
    if (!USERNAME_PATTERN.test(username)) return true
    const again = await this.#findUser(client, username)
    return again !== undefined && normalizeDn(again.dn) === normalizeDn(entry.dn)
  }

  async #describe(client: Client, entry: Entry): Promise<DirectoryUser> {
    return this.#mapped(entry, await this.#findGroups(client, entry.dn, onlyValue(entry, this.#config.attributes.username)))
  }

  /** The user of `entry` as a login maps them, in the groups `groupDns`. */
  #mapped(entry: Entry, groupDns: string[]): DirectoryUser {
    const { attributes } = this.#config
    const username = onlyValue(entry, attributes.username)
    const normalized = groupDns.map(normalizeDn)
    const member = (dns: Set<string>) => normalized.some((dn) => dns.has(dn))
    return {
      dn: entry.dn,
      entryId: entryIdOf(entry, attributes.uuid),
      username,
      email: firstValue(entry, attributes.email),
      firstName: firstValue(entry, attributes.first_name),
      lastName: firstValue(entry, attributes.last_name),
      groupDns,
      isSuperuser: this.#superuserDns.size ? member(this.#superuserDns) : undefined,
      isSystemAuditor: this.#auditorDns.size ? member(this.#auditorDns) : undefined,
      groups: this.#namedGroups.filter(([, dns]) => member(dns)).map(([name]) => name).sort(),
    }
  }

  async #findGroups(client: Client, dn: string, username: string): Promise<string[]> {
    if (!this.#config.group_search) return []
    const { base, filter, scope } = this.#config.group_search
    // Page by page, so a user in very many groups (or a filter that matches every group) is noticed before it is all
    // read. No size limit is asked for: ldapts would then hide the directory's own limit being hit, and with it a
    // part of the groups; that limit ends the search with an error instead.
    const pages = client.searchPaginated(base, { scope, filter: fillFilter(filter, { dn, username }), attributes: ['1.1'], paged: { pageSize: GROUP_PAGE_SIZE } })
    const groupDns: string[] = []
    for await (const { searchEntries } of pages) {
      groupDns.push(...searchEntries.map((group) => group.dn))
      if (groupDns.length > MAX_GROUPS) {
        // A part of the groups could clear a role the rest would give: the login is refused instead.
        throw new TooManyGroups('The directory\'s answer was too large.', new Error(`${dn} is in more than ${MAX_GROUPS} groups found by ldap.group_search; a login reads at most that many`))
      }
    }
    return groupDns.sort()
  }

  /** Binds as the user on the lookup's own connection, which is closed afterwards. */
  async #bindAs(client: Client, dn: string, password: string): Promise<boolean> {
    if (isBlank(password)) throw new InvalidCredentials()
    const policy = passwordPolicyRequest()
    try {
      await client.bind(dn, password, policy)
    } catch (error) {
      if (error instanceof ldapts().InvalidCredentialsError) {
        // OpenLDAP's password policy says why it refused a right password; a wrong one gets no such answer.
        if (policy.error === PASSWORD_EXPIRED) throw new PasswordExpired()
        const refusal = activeDirectoryRefusal(error.message)
        if (refusal) throw refusal
        return false
      }
      throw error
    }
    // A password an administrator set may have to be changed first: OpenLDAP's password policy then takes the
    // bind but refuses every other operation (insufficientAccessRights). One look at the user's own entry finds out;
    // any other refusal (an ACL hiding the entry from its owner) says nothing about the password.
    try {
      await client.search(dn, { scope: 'base', attributes: ['1.1'] })
    } catch (error) {
      if (error instanceof ldapts().InsufficientAccessError) throw new PasswordChangeRequired()
      if (!(error instanceof ldapts().ResultCodeError)) throw error
    }
    return true
  }
}

/** The password policy control (draft-behera-ldap-password-policy §6.1), OpenLDAP's ppolicy overlay's, and its `passwordExpired` error. */
const PASSWORD_POLICY_CONTROL = '1.3.6.1.4.1.42.2.27.8.5.1'
const PASSWORD_EXPIRED = 0
/** The control's answer's members: `warning` [0] (constructed) and `error` [1] (an enumeration). */
const POLICY_WARNING_TAG = 0xa0
const POLICY_ERROR_TAG = 0x81

type PasswordPolicyRequest = Control & { error: number | undefined }
let PasswordPolicyControl: (new () => PasswordPolicyRequest) | undefined

/**
 * The password policy control, asked for with a user's bind (critical: no; a directory without a policy ignores it).
 * ldapts parses the control of the answer into the control that asked for it, even when the bind failed: its `error`
 * is then the policy's reason. A value that does not parse leaves it unset: the bind is then judged without it.
 */
function passwordPolicyRequest(): PasswordPolicyRequest {
  PasswordPolicyControl ??= class extends ldapts().Control {
    error: number | undefined

    constructor() {
      super(PASSWORD_POLICY_CONTROL)
    }

    protected override parseControl(reader: BerReader): void {
      try {
        if (reader.readSequence() === null) return
        const end = reader.offset + reader.length
        while (reader.offset < end) {
          const tag = reader.peek()
          if (tag === POLICY_ERROR_TAG) {
            this.error = reader.readTag(POLICY_ERROR_TAG) ?? undefined
          } else if (tag === POLICY_WARNING_TAG) {
            reader.readSequence(POLICY_WARNING_TAG)
            reader.offset += reader.length
          } else return
        }
      } catch {
        this.error = undefined
      }
    }
  }
  return new PasswordPolicyControl()
}

/**
 * Active Directory's reason for refusing a bind (invalidCredentials), from the `data` code in its diagnostic message
 * ("80090308: LdapErr: ..., comment: AcceptSecurityContext error, data 532, v4563"), for the codes it gives only when
 * the password was right: an expired password (532), one an administrator set that must be changed first (773), a
 * disabled account (533), an expired account (701). A locked account (775) is answered whatever the password, and is
 * therefore left a wrong password, as are every other code and a message without one: a guesser learns nothing.
 */
export function activeDirectoryRefusal(diagnostic: string): GatehouseError | undefined {
  const data = /\bdata ([0-9a-f]{3,8})\b/i.exec(diagnostic)?.[1]?.toLowerCase()
  switch (data) {
    case '532': return new PasswordExpired()
    case '773': return new PasswordChangeRequired()
    case '533': return new AccountDisabled()
    case '701': return new AccountExpired()
    default: return undefined
  }
}

/** Two or more entries found for one username. */
const SEVERAL = Symbol('several entries')

/**
 * No server could be reached, or the service account was refused: nothing can be asked of the directory, whoever it
 * is about. A lookup that failed otherwise (its answer too large, too slow, an error) may be about one entry alone.
 */
export class DirectoryUnreachable extends DirectoryUnavailable {}

/** A user in more groups than a login reads (MAX_GROUPS): a login is refused, the account check maps them as in no group. */
class TooManyGroups extends DirectoryUnavailable {}

/** The most groups a login reads, and how many it asks for at a time. */
const MAX_GROUPS = 1000
const GROUP_PAGE_SIZE = 200

/** How long a finished lookup's turn waits for its connections to close. */
const UNBIND_WAIT_MS = 1000
/**
 * The share of `lookup_seconds` a server must have let pass in one lookup to be taken for silent: nearly all of it, so
 * that a check that came with less (it waited behind others) does not judge a server that is only slow, while the
 * first check of a burst, whose admission and turn took a moment on a busy machine, still does.
 */
const SILENT_AFTER_SHARE = 0.9

const NOT_FOUND_BY_USERNAME = 'The directory entry\'s username (ldap.attributes.username) does not find the entry with ldap.user_search.filter, which Gatehouse searches with to check that the entry is still there.'

const SSO_HOLDS_NAME = 'This username belongs to a single sign-on account; an administrator must rename or delete it before you can sign in from the directory.'

export type AfterDirectoryLogin = (account: User, found: DirectoryUser) => Promise<unknown>

/** At most `size` holders at once; the others wait, first come first served. */
class Turns {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(size: number) {
    this.#free = size
  }

  take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  give(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free++
  }
}

/** The connections one lookup opened; once closed, it opens no more. */
interface Connections {
  readonly clients: Set<Client>
  closed: boolean
  /** The server it is talking to (connecting, or connected). */
  server: string | undefined
  /** The silent server it is trying again, the one lookup that may (`LdapDirectory.#silent`). */
  probing: string | undefined
}

/** ldapts' error when a server did not take the connection within `connect_seconds`. */
const CONNECT_TIMEOUT = 'Connection timeout'
/** The error when a server took the connection but did not finish opening the conversation within `connect_seconds`. */
const OPENING_TIMEOUT = 'did not answer StartTLS or the service bind within ldap.timeouts.connect_seconds'
/** The failures to open a conversation after which a server is taken for silent (`LdapDirectory.#silent`). */
const SILENT_OPENINGS = [CONNECT_TIMEOUT, OPENING_TIMEOUT]

/**
 * `step`, unless `by` (a `performance.now()` time) passes first: it then fails with OPENING_TIMEOUT, and the step's own
 * failure, once the connection is closed, is left unheard.
 */
async function beforeTime<T>(step: Promise<T>, by: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(OPENING_TIMEOUT)), Math.max(0, by - performance.now()))
  })
  step.catch(() => {})
  try {
    return await Promise.race([step, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Accounts from the directory. It answers only for usernames that have no account yet or whose account
 * came from the directory: a directory entry never takes over a local account. On a successful bind the
 * account is created or updated from the directory (ldap-sync.ts). A single sign-on account of the same name (made
 * before single sign-on checked the directory, src/directory/sso-sync.ts) is not taken over either, but a directory
 * user who proves their password is told why they cannot sign in, rather than that the password is wrong.
 */
export class LdapPasswords implements PasswordSource {
  readonly id = 'ldap'
  readonly #directory: LdapDirectory
  readonly #store: Store
  readonly #accounts: Accounts
  readonly #afterSync: AfterDirectoryLogin | undefined

  /** `afterSync` runs once the account is up to date: memberships mapped from the directory's groups. */
  constructor(directory: LdapDirectory, store: Store, accounts: Accounts, afterSync?: AfterDirectoryLogin) {
    this.#directory = directory
    this.#store = store
    this.#accounts = accounts
    this.#afterSync = afterSync
  }

  /** Whether an entry of the directory has this username: only the search, no groups (LdapDirectory.has). */
  async knowsUsername(username: string): Promise<boolean> {
    return this.#directory.has(username)
  }

  async verify(username: string, password: string): Promise<User | NotMine> {
    if (!USERNAME_PATTERN.test(username)) throw new InvalidCredentials()
    const existing = await this.#store.users.findByUsername(username)
    if (existing && existing.source !== 'ldap' && existing.source !== 'sso') return NOT_MINE
    // After the local account's turn: a local password may be all spaces, a directory one is never sent so.
    if (isBlank(password)) throw new InvalidCredentials()
    // A name the user filter finds the entry by (`alice@example.test` for `alice`) shares the account's failed logins.
    const { user, passwordValid, foundByUsername } = await this.#directory.lookup(username, password, countAgainstAccount)
    if (!user) return NOT_MINE
    // The directory matches names without regard to case, so `ADMIN` finds the entry `admin`: when that name is a
    // local account's, the login is one as that account in another spelling, answered as under its own (the local
    // password is what counts), so the answer does not tell whether the directory took the password.
    if (user.username !== username && user.username.toLowerCase() === username.toLowerCase()) {
      const owner = await this.#store.users.findByUsername(user.username)
      if (owner?.source === 'local') return NOT_MINE
    }
    if (!passwordValid) throw new InvalidCredentials()
    // A user filter that finds the entry by the name typed (`(mail={username})`) but not by the account's username
    // (`uid`): the account check would look for the entry as `(mail=alice)`, find nobody, and disable the account.
    if (!foundByUsername) throw new DirectoryUsernameInvalid(NOT_FOUND_BY_USERNAME)
    if (existing && existing.source !== 'ldap') throw new AccountSourceConflict(SSO_HOLDS_NAME)
    const account = await syncDirectoryAccount(this.#store, this.#accounts, user)
    await this.#afterSync?.(account, user)
    return account
  }
}

/** The lockout's count of the account an entry gets, for a check of any name that finds the entry. */
async function countAgainstAccount(user: DirectoryUser): Promise<void> {
  if (USERNAME_PATTERN.test(user.username)) await countAlsoAs(user.username)
}

/**
 * Puts values into a filter template, escaped (RFC 4515 section 3), so they can only ever be values. The template's
 * own escaped UTF-8 is written as the characters it spells, which ldapts sends as they are (withUtf8Unescaped).
 */
export function fillFilter(template: string, values: { username?: string; dn?: string }): string {
  return (withUtf8Unescaped(template) ?? template).replace(/\{(username|dn)\}/g, (_, name: 'username' | 'dn') => ldapts().Filter.escape(values[name] ?? ''))
}

/**
 * Whether a server could take the password for none: empty, white space, or nothing before a NUL, where a server or
 * proxy written in C (a pass-through to PAM or Kerberos, say) ends the string.
 */
function isBlank(password: string): boolean {
  return password.split('\0', 1)[0]!.trim().length === 0
}

function valuesOf(entry: Entry, attribute: string): unknown[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase())
  const value = key === undefined ? undefined : entry[key]
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

function firstValue(entry: Entry, attribute: string): string {
  const [first] = valuesOf(entry, attribute)
  return first === undefined ? '' : String(first)
}

/**
 * The attribute's value when it has exactly one, else nothing: a directory keeps no order among an attribute's
 * values, so picking one could give the same entry a different account from one login to the next.
 */
function onlyValue(entry: Entry, attribute: string): string {
  const values = valuesOf(entry, attribute)
  return values.length === 1 ? String(values[0]) : ''
}

/** The width of ldap_entries.entry_id (migration 024_ldap_entries). */
const MAX_ENTRY_ID = 255

/**
 * The entry's stable identifier, as text the database holds (ldap_entries.entry_id): entryUUID's own, the hexadecimal
 * of a binary one (objectGUID), or the SHA-256 of one longer than the column. '' when the entry has none, or several
 * values, which identify nothing.
 */
function entryIdOf(entry: Entry, attribute: string): string {
  const values = valuesOf(entry, attribute)
  if (values.length !== 1) return ''
  const bytes = Buffer.isBuffer(values[0]) ? values[0] : Buffer.from(String(values[0]))
  const text = bytes.toString('latin1')
  if (text.length <= MAX_ENTRY_ID && /^[\x21-\x7e]+$/.test(text)) return text
  const hex = bytes.toString('hex')
  return hex.length <= MAX_ENTRY_ID ? hex : createHash('sha256').update(bytes).digest('hex')
}

/**
 * DNs compare case-insensitively, without the unescaped spaces some tools put around `,` `=` `+`, and by what their
 * values say rather than how they escape it (RFC 4514 section 2.4): OpenLDAP answers `cn=ops\\2C admins` for the
 * group a configuration names `cn=ops\\, admins`. An escaped character is part of the value, so `cn=a\\, b` (the value
 * `a, b`) and `cn=a\\,b` (`a,b`) stay two groups, as do `cn=a\\ ` and `cn=a`. The result is for comparing only: every
 * character but ASCII letters, digits, `-`, `.` and `_` is written as its UTF-8 bytes in hexadecimal.
 */
export function normalizeDn(dn: string): string {
  let out = ''
  /** The type or value being read, as written out. */
  let part = ''
  /** Unescaped spaces read after it: inside it if more of it follows, else no part of it. */
  let looseSpaces = 0
  let inValue = false
  const add = (text: string) => {
    if (part && looseSpaces) part += '\\20'.repeat(looseSpaces)
    looseSpaces = 0
    part += text
  }
  const end = (separator: string) => {
    out += part + separator
    part = ''
    looseSpaces = 0
  }
  for (let i = 0; i < dn.length; i++) {
    const code = dn.charCodeAt(i)
    if (code === BACKSLASH && i + 1 < dn.length) {
      HEX_ESCAPES.lastIndex = i
      const escaped = HEX_ESCAPES.exec(dn)?.[0]
      if (escaped) {
        add(comparedEscapedBytes(escaped))
        i += escaped.length - 1
      } else {
        const char = String.fromCodePoint(dn.codePointAt(i + 1)!)
        add(comparedChar(char))
        i += char.length
      }
    } else if (code === SPACE) {
      looseSpaces++
    } else if (code === EQUALS && !inValue) {
      end('=')
      inValue = true
    } else if ((code === COMMA || code === PLUS) && inValue) {
      end(dn[i]!)
      inValue = false
    } else {
      const char = String.fromCodePoint(dn.codePointAt(i)!)
      add(comparedChar(char))
      i += char.length - 1
    }
  }
  end('')
  return out
}

/** One or more `\\XX` escapes in a row, read where normalizeDn is (sticky). */
const HEX_ESCAPES = /(?:\\[0-9a-fA-F]{2})+/y
const BACKSLASH = 0x5c
const SPACE = 0x20
const EQUALS = 0x3d
const COMMA = 0x2c
const PLUS = 0x2b

/** A character of a DN as normalizeDn writes it: in lower case, itself when plain, else its UTF-8 bytes in hexadecimal. */
function comparedChar(char: string): string {
  const lower = char.toLowerCase()
  if (lower.length === 1 && isPlainDnCode(lower.charCodeAt(0))) return lower
  let text = ''
  for (const byte of Buffer.from(lower, 'utf8')) text += comparedByte(byte)
  return text
}

/**
 * A run of `\\XX` escapes as normalizeDn writes it: as the characters it spells when it is UTF-8, so that `\\C3\\89`
 * compares as `É` does (in lower case), else byte by byte.
 */
function comparedEscapedBytes(escaped: string): string {
  const bytes = Buffer.from(escaped.replaceAll('\\', ''), 'hex')
  let text: string
  try {
    text = UTF8.decode(bytes)
  } catch {
    return [...bytes].map(comparedByte).join('')
  }
  let out = ''
  for (const char of text) out += comparedChar(char)
  return out
}

/** A byte of a DN's value (from a `\\XX` escape) as normalizeDn writes it. */
function comparedByte(byte: number): string {
  const lower = byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte
  return isPlainDnCode(lower) ? String.fromCharCode(lower) : `\\${lower.toString(16).padStart(2, '0')}`
}

/** ASCII lower-case letters, digits, `-`, `.` and `_`. */
function isPlainDnCode(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2e || code === 0x5f
}

function hostOf(server: string): string {
  return new URL(server).hostname.replace(/^\[|\]$/g, '')
}

/** SNI carries names only (RFC 6066 section 3), so it is left out for addresses. */
function serverName(server: string): { servername?: string } {
  const host = hostOf(server)
  return isIP(host) ? {} : { servername: host }
}
