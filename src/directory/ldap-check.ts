import { randomUUID } from 'node:crypto'
import { SYSTEM_ACTOR } from '../audit/actor.ts'
import type { AuditTrail } from '../audit/trail.ts'
import { AccountDisabled, DirectoryUnavailable, SelfLockout } from '../errors.ts'
import type { Store } from '../store/store.ts'
import type { User } from '../store/users.ts'
import type { Accounts } from './accounts.ts'
import type { AfterDirectoryLogin, LdapDirectory } from './ldap.ts'
import { DirectoryUnreachable } from './ldap.ts'
import { roleChangesBetween, type DirectoryUser } from './ldap-sync.ts'

/** The audit entry's code for an account disabled because its directory entry is gone. */
export const DIRECTORY_ENTRY_GONE = 'directory_entry_gone' as const
/** The audit entry's code for an account whose roles the check changed because its directory groups did. */
export const DIRECTORY_GROUPS_CHANGED = 'directory_groups_changed'
/** The audit entry's code for an account disabled because its entry could not be read, run after run, while others could. */
export const DIRECTORY_ENTRY_UNREADABLE = 'directory_entry_unreadable' as const

/**
 * Lookups that may fail one after another before a run asks the directory whether it answers at all (a search of its
 * own), and stops if it does not. A lookup failing alone (an entry whose answer is too large or too slow) is one
 * account's, and the run goes on past it.
 */
export const FAILED_LOOKUPS_IN_A_ROW = 5
/**
 * Runs in a row in which an account's lookup failed while the directory answered about most others, after which the account
 * is disabled: the check cannot tell whether its entry is gone or its groups changed, and a person who can edit their
 * own entry could otherwise keep what the directory took from them by making it unreadable.
 */
export const UNREADABLE_RUNS = 3

export interface AccountCheckOptions {
  /** Time between two runs; 0: none (a realm refresh still checks). */
  intervalSeconds: number
  /** Accounts read from the database, and then asked about, at a time. */
  pageSize: number
  /** Run after the check read an account's groups, as after a login: memberships mapped from the directory's groups. */
  afterSync?: AfterDirectoryLogin | undefined
}

/**
 * A page of at least this many accounts of which the directory finds none is taken for a user search that finds
 * nobody (a wrong base or filter), not for that many people leaving at once: nobody in it is disabled.
 */
export const NOBODY_FOUND_MINIMUM = 3

/** The lease (src/store/leases.ts) that makes one process on the database run the periodic check. */
const LEASE = 'ldap_account_check'
/**
 * How many intervals a process's lease lasts from its last tick: long enough that a tick a little late does not
 * lose it, short enough that when its holder dies another process runs the check within a few intervals.
 */
const LEASE_INTERVALS = 1.5

/**
 * What a run or a check found: accounts disabled, whether the directory failed to answer (the rest then waits), and
 * the accounts of a page the directory found none of (`NOBODY_FOUND_MINIMUM`), left as they are.
 */
export interface CheckOutcome {
  checked: number
  disabled: string[]
  /** Accounts whose roles (flags, named groups, mapped memberships) now follow a change of their directory groups. */
  regrouped: string[]
  unavailable: DirectoryUnavailable | undefined
  notFoundKept: number
  /** Accounts whose lookup failed while the directory answered about others: passed over this run. */
  unreadable: string[]
}

/** An account whose lookup failed, and why. */
export interface FailedLookup {
  user: User
  error: DirectoryUnavailable
}

/**
 * Disables directory accounts whose entry is gone or no longer matches the user filter, so that what they still
 * hold (gateway sessions, personal tokens, realm grants and refresh tokens) stops working, not only their next
 * password login. Asked periodically about every active directory account that holds something live, a page at a
 * time, and at each realm refresh about the refreshing user. Disabling ends the sessions in the same transaction and
 * makes tokens and grants refused (accounts.ts, app.ts), is written to the audit trail and reported to
 * `onDisabled`. An account whose entry is still there gets the roles its directory groups now give, when logins read
 * groups (#regroup), so that a group a person left stops counting before their next password login.
 *
 * Fails safe for availability: a directory that does not answer disables nobody; the run stops there and the next
 * one starts again.
 *
 * The periodic run is one process's job among all on the database (`serve --workers`, several hosts): each tick
 * takes or renews a lease, and only its holder runs, so the directory is asked once per interval, not once per
 * process. A holder that dies keeps the lease until it runs out (LEASE_INTERVALS), then the next process to tick
 * takes it; one that stops gives it up. Should two runs meet anyway (a run called directly, a refresh), the second
 * finds the account already disabled.
 */
export class DirectoryAccountCheck {
  readonly #directory: LdapDirectory
  readonly #store: Store
  readonly #accounts: Accounts
  readonly #audit: AuditTrail
  readonly #options: AccountCheckOptions
  readonly #disabledListeners: ((user: User, code: typeof DIRECTORY_ENTRY_GONE | typeof DIRECTORY_ENTRY_UNREADABLE) => void)[] = []
  readonly #unavailableListeners: ((error: DirectoryUnavailable) => void)[] = []
  readonly #nobodyFoundListeners: ((accounts: number) => void)[] = []
  readonly #takeOverListeners: (() => void)[] = []
  readonly #failedLookupListeners: ((failed: FailedLookup, runsInARow: number, disabledAfter: number) => void)[] = []
  /** Accounts by id whose lookup failed alone, and in how many runs in a row (UNREADABLE_RUNS). */
  readonly #unreadableRuns = new Map<number, number>()
  /** Where the next run starts: after the accounts a run stopped at, so that they cannot keep the others from being checked. */
  #resumeAfterId = 0
  /** This process, as the lease names its holder. */
  readonly #holder = randomUUID()
  #holdsLease = false
  #timer: NodeJS.Timeout | undefined
  #running: Promise<CheckOutcome> | undefined

  constructor(directory: LdapDirectory, store: Store, accounts: Accounts, audit: AuditTrail, options: AccountCheckOptions) {
    this.#directory = directory
    this.#store = store
    this.#accounts = accounts
    this.#audit = audit
    this.#options = options
  }

  /** Told each account disabled because its entry is gone, or could not be read run after run (the log listens). */
  onDisabled(listener: (user: User, code: typeof DIRECTORY_ENTRY_GONE | typeof DIRECTORY_ENTRY_UNREADABLE) => void): void {
    this.#disabledListeners.push(listener)
  }

  /** Told when a run could not ask the directory, and so disabled nobody (the log listens; a refresh does not tell, as there are many). */
  onUnavailable(listener: (error: DirectoryUnavailable) => void): void {
    this.#unavailableListeners.push(listener)
  }

  /** Told when the directory found none of a page's accounts, and so disabled nobody in it (the log listens). */
  onNobodyFound(listener: (accounts: number) => void): void {
    this.#nobodyFoundListeners.push(listener)
  }

  /** Told of each account whose lookup failed while the directory answered about others, with the runs in a row it did (the log listens). */
  onFailedLookup(listener: (failed: FailedLookup, runsInARow: number, disabledAfter: number) => void): void {
    this.#failedLookupListeners.push(listener)
  }

  /** Told when the periodic run becomes this process's job: at its first run, or when the process that had it is gone. */
  onTakeOver(listener: () => void): void {
    this.#takeOverListeners.push(listener)
  }

  start(): void {
    if (this.#timer || this.#options.intervalSeconds <= 0) return
    this.#timer = setInterval(() => void this.#tick().catch(() => {}), this.#options.intervalSeconds * 1000)
    this.#timer.unref()
  }

  /** Stops the timer, waits for a run under way, and gives the lease up so that another process runs the check next. */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running?.catch(() => {})
    if (this.#holdsLease) await this.#store.leases.release(LEASE, this.#holder).catch(() => {})
    this.#holdsLease = false
  }

  /**
   * Renews the lease at every tick, also while a long run goes on, so no other process starts one beside it. A
   * database that does not answer takes nobody's lease: the run would fail on it anyway.
   */
  async #tick(): Promise<void> {
    const held = await this.#store.leases.take(LEASE, this.#holder, this.#options.intervalSeconds * 1000 * LEASE_INTERVALS)
    if (held && !this.#holdsLease) for (const listener of this.#takeOverListeners) listener()
    this.#holdsLease = held
    if (held) await this.run()
  }

  /** One run over every active directory account holding something live, a page at a time; one run at a time. */
  run(now = Date.now()): Promise<CheckOutcome> {
    this.#running ??= this.#runPages(now).finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  /**
   * At a realm refresh: false when the user's entry is gone (the account is then disabled). True for every other
   * account, whose roles then follow its directory groups, and whenever the directory does not answer: the refresh
   * then goes on as it would without a directory.
   */
  async confirm(user: User): Promise<boolean> {
    if (user.source !== 'ldap' || !user.isActive) return true
    const outcome = await this.#check([user])
    return outcome.disabled.length === 0
  }

  async #runPages(now: number): Promise<CheckOutcome> {
    const total: CheckOutcome = { checked: 0, disabled: [], regrouped: [], unavailable: undefined, notFoundKept: 0, unreadable: [] }
    const failed: FailedLookup[] = []
    const answered: number[] = []
    for (let afterId = this.#resumeAfterId; ;) {
      const page = await this.#store.users.activeHoldersOfCredentials('ldap', afterId, this.#options.pageSize, now)
      const outcome = await this.#check(page, failed, answered)
      total.checked += outcome.checked
      total.disabled.push(...outcome.disabled)
      total.regrouped.push(...outcome.regrouped)
      total.unavailable = outcome.unavailable
      total.notFoundKept += outcome.notFoundKept
      if (outcome.notFoundKept) for (const listener of this.#nobodyFoundListeners) listener(outcome.notFoundKept)
      if (outcome.unavailable) for (const listener of this.#unavailableListeners) listener(outcome.unavailable)
      if (outcome.unavailable || page.length < this.#options.pageSize) {
        // Stopped at lookups failing in a row: the next run starts after them. A directory that cannot be reached at all
        // is asked about the same account again. A whole run: the next starts from the first account.
        this.#resumeAfterId = outcome.resumeAfterId ?? (outcome.unavailable ? afterId : 0)
        break
      }
      afterId = page.at(-1)!.id
    }
    for (const id of answered) this.#unreadableRuns.delete(id)
    if (!failed.length) return total
    // Failures count against their entries only where the directory plainly works: most of the run's lookups
    // answered. A directory that answers a search of its own but fails most lookups (overloaded, an index dropped,
    // limits hit) is degraded, not showing these entries unreadable: such a run passes them over and counts nothing.
    if (answered.length <= failed.length) {
      if (!answered.length && !total.unavailable) {
        total.unavailable = failed.at(-1)!.error
        for (const listener of this.#unavailableListeners) listener(total.unavailable)
      }
      return total
    }
    for (const lookup of failed) {
      const runs = (this.#unreadableRuns.get(lookup.user.id) ?? 0) + 1
      this.#unreadableRuns.set(lookup.user.id, runs)
      total.unreadable.push(lookup.user.username)
      for (const listener of this.#failedLookupListeners) listener(lookup, runs, UNREADABLE_RUNS)
      if (runs >= UNREADABLE_RUNS && await this.#disable(lookup.user, DIRECTORY_ENTRY_UNREADABLE)) {
        this.#unreadableRuns.delete(lookup.user.id)
        total.disabled.push(lookup.user.username)
      }
    }
    return total
  }

  /**
   * Asks about every account first, so that a page the directory finds nobody of disables nobody. An entry other
   * than the one the account was made for (its name given to someone else since) is the account's entry gone. A lookup
   * that fails is passed over (`failed`), unless the directory cannot be reached at all, or FAILED_LOOKUPS_IN_A_ROW
   * fail one after another and it answers no search of its own either: the run then stops, the directory being down.
   */
  async #check(users: User[], failed: FailedLookup[] = [], answered: number[] = []): Promise<CheckOutcome & { resumeAfterId?: number }> {
    const outcome: CheckOutcome & { resumeAfterId?: number } = { checked: 0, disabled: [], regrouped: [], unavailable: undefined, notFoundKept: 0, unreadable: [] }
    const gone: User[] = []
    const present: [User, DirectoryUser][] = []
    const entries = await this.#store.ldapEntries.entriesOf(users.map((user) => user.id))
    let inARow: FailedLookup[] = []
    for (const [index, user] of users.entries()) {
      try {
        const listed = await this.#listed(user.username)
        const recorded = entries.get(user.id)
        if (listed === undefined || (listed.entryId && recorded && listed.entryId !== recorded)) gone.push(user)
        else if (listed.user) present.push([user, listed.user])
      } catch (error) {
        if (!(error instanceof DirectoryUnavailable)) throw error
        if (error instanceof DirectoryUnreachable) {
          outcome.unavailable = error
          outcome.resumeAfterId = index > 0 ? users[index - 1]!.id : undefined
          break
        }
        inARow.push({ user, error })
        if (inARow.length >= FAILED_LOOKUPS_IN_A_ROW) {
          // So many in a row look like the directory down; if it answers a search of its own, they are these entries'.
          if (await this.#directory.answers()) {
            failed.push(...inARow)
            inARow = []
            continue
          }
          outcome.unavailable = error
          outcome.resumeAfterId = index >= inARow.length ? users[index - inARow.length]!.id : undefined
          break
        }
        continue
      }
      failed.push(...inARow)
      inARow = []
      answered.push(user.id)
      outcome.checked++
    }
    // Failures at the page's end with nothing answered after them: the next page (or run) tells whether the directory answers.
    if (!outcome.unavailable) failed.push(...inARow)
    if (outcome.checked >= NOBODY_FOUND_MINIMUM && gone.length === outcome.checked) {
      outcome.notFoundKept = gone.length
      return outcome
    }
    for (const user of gone) if (await this.#disable(user)) outcome.disabled.push(user.username)
    for (const [user, found] of present) if (await this.#regroup(user, found)) outcome.regrouped.push(user.username)
    return outcome
  }

  /**
   * The entry listing the username, by its stable identifier, and, when logins read groups, the user as a login maps
   * them (one more search, for the groups); undefined when no entry lists it.
   */
  async #listed(username: string): Promise<{ entryId: string; user?: DirectoryUser | undefined } | undefined> {
    if (this.#directory.readsGroups) return this.#directory.listedUser(username)
    const entryId = await this.#directory.listedEntry(username)
    return entryId === undefined ? undefined : { entryId }
  }

  /**
   * Gives the account the roles its directory groups give now, as its next login would (ldap-sync.ts): the flags and
   * named groups (the last active superuser keeps the flag), then the mapped memberships. The update is the same
   * change as a login's, so every process drops the account's cached sessions, tokens and credentials, and the next
   * request is judged with the new roles. An entry found by another username (a filter that matches several
   * attributes), and an account disabled or changed to another source meanwhile, are left alone.
   */
  async #regroup(user: User, found: DirectoryUser): Promise<boolean> {
    if (found.username.toLowerCase() !== user.username.toLowerCase()) return false
    const current = await this.#store.users.findById(user.id)
    if (!current?.isActive || current.source !== 'ldap') return false
    const changes = roleChangesBetween(current, found)
    let after = current
    if (changes) {
      try {
        after = await this.#accounts.update(user.id, changes, { keepLastSuperuserFlag: true, onlyWhileActive: true })
      } catch (error) {
        // Disabled since it was read: left alone, as a disabled account is.
        if (error instanceof AccountDisabled) return false
        throw error
      }
      const before = { is_superuser: current.isSuperuser, is_system_auditor: current.isSystemAuditor, groups: current.groups }
      const now = { is_superuser: after.isSuperuser, is_system_auditor: after.isSystemAuditor, groups: after.groups }
      // The last active superuser's kept flag may have been the whole change: that refusal is audited as at a login.
      if (JSON.stringify(before) !== JSON.stringify(now)) this.#audit.change(SYSTEM_ACTOR, 'update', { type: 'user', id: user.id, name: user.username }, before, now, DIRECTORY_GROUPS_CHANGED)
    }
    const membershipsChanged = await this.#options.afterSync?.(after, found)
    return changes !== undefined || membershipsChanged === true
  }

  /** Disables the account unless it already is (another process was first) or it is the last active superuser. */
  async #disable(user: User, code: typeof DIRECTORY_ENTRY_GONE | typeof DIRECTORY_ENTRY_UNREADABLE = DIRECTORY_ENTRY_GONE): Promise<boolean> {
    const current = await this.#store.users.findById(user.id)
    if (!current?.isActive || current.source !== 'ldap') return false
    let after: User
    try {
      after = await this.#accounts.update(user.id, { isActive: false }, { keepAnActiveSuperuser: true })
    } catch (error) {
      if (!(error instanceof SelfLockout)) throw error
      // The directory must not lock every administrator out, any more than the API may (`403 self_lockout`).
      this.#audit.refusedChange(SYSTEM_ACTOR, 'update', { type: 'user', id: user.id, name: user.username }, 'self_lockout', { is_active: true }, { is_active: false })
      return false
    }
    this.#audit.change(SYSTEM_ACTOR, 'update', { type: 'user', id: user.id, name: user.username }, { is_active: true }, { is_active: after.isActive }, code)
    for (const listener of this.#disabledListeners) listener(after, code)
    return true
  }
}
