import { createHash } from 'node:crypto'
import type { Lockout } from './lockout.ts'
import { placeOf, type ImportedAccount } from './account-import.ts'
import { burnVerificationTime, hashPassword, verifyPassword } from './passwords.ts'
import { AccountChanged, AccountDisabled, DirectoryUnavailable, GatehouseError, InvalidCredentials, NotFound, SelfLockout, UsernameTaken, ValidationFailed } from '../errors.ts'
import { UniqueViolation } from '../store/errors.ts'
import type { Announce, EventBus } from '../store/event-bus.ts'
import { BoundedCache, type CacheStats } from '../store/cache.ts'
import type { Repositories, Store } from '../store/store.ts'
import type { Application } from '../store/applications.ts'
import { DATABASE_NOW, type NewUser, type User, type UserChanges } from '../store/users.ts'
import { passwordPolicyProblems, type PasswordPolicy } from './password-policy.ts'
import { NOT_MINE, type PasswordSource } from './password-source.ts'
import { USER_TOPIC } from '../store/topics.ts'

const MAX_CACHED = 50_000
/**
 * ASCII only (`\w` without the `u` flag), where the platform takes letters of any script: the name goes to every
 * service unencoded in X-Gatehouse-User, whose bytes beyond ASCII services decode differently, and into LDAP filters.
 */
export const USERNAME_PATTERN = /^[\w.@+-]{1,150}$/
export const INVALID_USERNAME = 'Enter a valid username: 1-150 ASCII letters, digits and @ . + - _ only.'

/**
 * What is wrong with a username for an account made or renamed here, if anything: an empty or too long one in the
 * words Django REST framework has for the platform's `username` (a CharField of at most 150), other characters
 * in Gatehouse's own, which say why only ASCII is taken.
 */
export function usernameProblem(username: string): string | undefined {
  if (username === '') return 'This field may not be blank.'
  if (username.length > 150) return 'Ensure this field has no more than 150 characters.'
  return USERNAME_PATTERN.test(username) ? undefined : INVALID_USERNAME
}
/**
 * Keycloak names a client's service account `service-account-<clientId>`, and the realm's client_credentials grant acts
 * as the account of that name (ServiceAccounts in src/oidc/claims.ts): any other account holding such a name would
 * make that client's grant fail. So only the realm makes accounts with the prefix; an administrator, single sign-on
 * and the directory cannot (docs/sso.md). Any letter case: a realm login ignores it.
 */
const SERVICE_ACCOUNT_PREFIX = 'service-account-'
export const SERVICE_ACCOUNT_NAME = 'Usernames starting with "service-account-" are kept for the service accounts of OpenID Connect clients.'

export function isServiceAccountName(username: string): boolean {
  return username.toLowerCase().startsWith(SERVICE_ACCOUNT_PREFIX)
}

/** Refuses (as Django REST framework words a field's problem) a new name that only a client's service account may have. */
export function refuseServiceAccountName(username: string | undefined, current?: string): void {
  if (username !== undefined && username !== current && isServiceAccountName(username)) throw new ValidationFailed({ username: [SERVICE_ACCOUNT_NAME] })
}
/** Argon2 input beyond this is refused before hashing: nobody types it, and it only costs CPU. */
export const MAX_PASSWORD_LENGTH = 1024

export interface UserChange {
  passwordChanged: boolean
  deactivated: boolean
  deleted: boolean
  /** Asked for with a new password: the user's personal tokens end too. */
  revokeTokens: boolean
  /** How many personal tokens ended with it: set by the listener that ends them. */
  tokensRevoked?: number
  /** The applications that went with a deleted account: set by the listener that deletes them. */
  applicationsDeleted?: Application[]
}

/** How a password check was asked for, for the audit trail: the login method, and the realm of an OIDC login. */
export interface LoginVia {
  readonly method: 'basic' | 'session' | 'oidc'
  readonly realm?: string | undefined
  /**
   * The caller records the login (`recordLogin`) before it issues anything, which confirms that the password hash the
   * check verified is still the account's. Otherwise `checkPassword` confirms it itself, with one read more.
   */
  readonly recordsLogin?: boolean | undefined
}

/** One password check's outcome: `user` when it succeeded, the error's stable `code` when it did not. */
export interface LoginAttempt {
  readonly username: string
  readonly address: string | undefined
  readonly via: LoginVia
  readonly user?: User | undefined
  readonly code?: string | undefined
}

/** An address a directory entry gives its person that another account signs in with, so left unset (ldap-sync.ts). */
export interface AddressWithheld {
  readonly email: string
  /** The username of the account that signs in with it. */
  readonly heldBy: string
}

/** What an import wrote (Accounts.importAccounts). */
export interface ImportOutcome {
  created: User[]
  updated: { before: User; after: User; passwordChanged: boolean }[]
  /** Accounts that exist already, left as they are. */
  skipped: User[]
  /**
   * Accounts updated but for their password, which the file would have replaced and whose user has one of their own
   * since (importedPassword).
   */
  passwordsKept: User[]
  /** Accounts an update enabled or disabled, as the file says (importedFlag). */
  enabled: User[]
  disabled: User[]
  /**
   * Accounts the file enables that an update left disabled: disabled in Gatehouse while the file said what it says, or
   * by no import (importedFlag).
   */
  keptDisabled: User[]
  /** Accounts the file disables that an update left enabled: enabled in Gatehouse while the file said what it says. */
  keptEnabled: User[]
  /** Privileges the file gives accounts that an update left them without, as `keptDisabled` is left disabled. */
  privilegesWithheld: { user: User; privileges: ('superuser' | 'Platform Auditor')[] }[]
  /** Privileges the file takes away that an update left accounts with, as `keptEnabled` is left enabled. */
  privilegesLeft: { user: User; privileges: ('superuser' | 'Platform Auditor')[] }[]
}

/**
 * Writes that belong with an import (the teams its groups become), made through `tx` in its transaction once its
 * accounts are written, knowing which: they commit together, or nothing does.
 */
export type ImportedTogether = (tx: Repositories, announce: Announce, written: ImportOutcome) => Promise<void>

/** Runs inside the change's transaction: writes only through `tx`. */
type ChangeListener = (tx: Repositories, user: User, change: UserChange, announce: Announce) => void | Promise<void>

export interface AccountInput extends Omit<NewUser, 'passwordHash'> {
  password?: string | undefined
}

export type AccountChanges = Omit<UserChanges, 'passwordHash'> & {
  password?: string | null | undefined
  /** With a new password: revoke the user's personal tokens as well. */
  revokeTokens?: boolean | undefined
}

/**
 * Writes that belong with an account's creation or change (the API's memberships given with it), made through `tx`
 * in its transaction after the account's own writes: they commit together, or neither does, and the news they
 * announce is told once committed.
 */
export type WrittenTogether = (tx: Repositories, announce: Announce, user: User) => Promise<void>

/** What a change (an administrator's, or a login's) may ask for besides the change itself. */
export interface AdministrativeChange {
  /** Writes made in the change's transaction, after it (the API's memberships named with the change). */
  together?: WrittenTogether | undefined
  /**
   * Refuse a change that would leave no active superuser (the API's users/ endpoints, the CLI's `users disable`).
   * Recovering stays open: the CLI creates a superuser, or sets a password, whatever the database holds.
   */
  keepAnActiveSuperuser?: boolean | undefined
  /**
   * A directory or SSO login's: make the change, but keep the superuser flag it clears when no other active
   * superuser would remain, and tell onLastSuperuserKept. A group removed upstream (or a mapping gone wrong) must
   * not lock every administrator out, where the API would refuse the same change; the login itself succeeds.
   */
  keepLastSuperuserFlag?: boolean | undefined
  /**
   * A directory or SSO sign-in's, or the account check's: refuse (AccountDisabled) to change an account disabled since
   * the caller read it active. Its roles follow its groups only while it is active; read again in the change's
   * transaction, so a disable that lands while a sign-in talks to the directory is not undone by the sign-in.
   */
  onlyWhileActive?: boolean | undefined
  /**
   * The account as the caller read it to decide the change (a superuser's enabling of a directory account, judged on
   * what the directory said then): refuse (AccountChanged, 409) once the account, read again locked in the change's
   * transaction, has changed since, so that a disable that landed meanwhile is not undone by a decision made before it.
   */
  asRead?: User | undefined
  /**
   * An organization admin's change of a member: a new password the policy refuses is refused even when it is the one
   * the account has, which would otherwise be kept as no change (see `update`).
   */
  policyBeforeSamePassword?: boolean | undefined
  /** Told, once the change is saved, how many personal tokens it revoked (`revokeTokens`): the caller records it. */
  tokensRevoked?: ((count: number) => void) | undefined
  /**
   * Told, once the change is saved, the account as the change found it, read under its lock: what it changed from,
   * for the audit trail, where another change at the same time may have come between the caller's read and this one.
   */
  changedFrom?: ((before: User) => void) | undefined
}

/**
 * Accounts: the in-memory view the request path reads, the password check every login method shares,
 * and every change to an account (which tells other processes, and lets sessions and tokens react).
 */
export class Accounts {
  readonly #store: Store
  readonly #bus: EventBus
  /** Accounts as read: one older than the bus's `maxStaleMs` is read again, in case news of a change was missed. */
  readonly #byId: BoundedCache<number, User>
  readonly #sources: PasswordSource[]
  readonly #changeListeners: ChangeListener[] = []
  readonly #forgetListeners: ((userId: number) => void)[] = []
  readonly #loginListeners: ((attempt: LoginAttempt) => void)[] = []
  readonly #keptListeners: ((user: User) => void)[] = []
  readonly #withheldListeners: ((user: User, withheld: AddressWithheld) => void)[] = []
  readonly #signInListeners: ((source: 'ldap' | 'sso', before: User | undefined, after: User) => void)[] = []
  /** Brute-force protection around every password check. */
  readonly lockout: Lockout
  readonly #passwordPolicy: () => PasswordPolicy

  /** Its cache's hits and misses (gatehouse_cache_lookups_total). */
  get stats(): CacheStats {
    return this.#byId.stats
  }

  constructor(store: Store, bus: EventBus, sources: PasswordSource[], lockout: Lockout, passwordPolicy: () => PasswordPolicy) {
    this.#store = store
    this.#bus = bus
    this.#sources = sources
    this.lockout = lockout
    this.#passwordPolicy = passwordPolicy
    this.#byId = new BoundedCache({ maxEntries: MAX_CACHED, maxAgeMs: () => bus.maxStaleMs })
    bus.on(USER_TOPIC, (key) => this.#forget(key === 'all' ? 'all' : Number(key)))
    bus.onMissed(() => this.#byId.clear())
  }

  /** Runs in the process that makes a change, in its transaction (end sessions, ...). */
  onChange(listener: ChangeListener): void {
    this.#changeListeners.push(listener)
  }

  /** Runs in every process when an account changed anywhere: drop whatever was derived from it. */
  onForget(listener: (userId: number) => void): void {
    this.#forgetListeners.push(listener)
  }

  /** Told the outcome of every login's password check (`checkPassword` with `via`): the audit trail and metrics listen. */
  onLoginAttempt(listener: (attempt: LoginAttempt) => void): void {
    this.#loginListeners.push(listener)
  }

  /** Told when a login's change kept the flag of the last active superuser (`keepLastSuperuserFlag`): the audit trail and the log listen. */
  onLastSuperuserKept(listener: (user: User) => void): void {
    this.#keptListeners.push(listener)
  }

  /** Told when a directory login left its account's address unset, as another account signs in with it: the log listens. */
  onAddressWithheld(listener: (user: User, withheld: AddressWithheld) => void): void {
    this.#withheldListeners.push(listener)
  }

  tellAddressWithheld(user: User, withheld: AddressWithheld): void {
    for (const listener of this.#withheldListeners) listener(user, withheld)
  }

  /**
   * Told when a directory or SSO sign-in made an account (`before` undefined) or changed one (ldap-sync.ts,
   * sso-sync.ts): the audit trail listens, as it does to the API's and the CLI's changes.
   */
  onSignInChange(listener: (source: 'ldap' | 'sso', before: User | undefined, after: User) => void): void {
    this.#signInListeners.push(listener)
  }

  tellSignInChange(source: 'ldap' | 'sso', before: User | undefined, after: User): void {
    for (const listener of this.#signInListeners) listener(source, before, after)
  }

  addPasswordSource(source: PasswordSource, position = this.#sources.length): void {
    this.#sources.splice(position, 0, source)
  }

  /** The account by id, from memory after the first read; changes anywhere evict it. */
  async get(id: number, now = Date.now()): Promise<User | undefined> {
    return this.#byId.load(id, () => this.#store.users.findById(id), now)
  }

  async require(id: number): Promise<User> {
    const user = await this.get(id)
    if (!user) throw new NotFound('No such user.')
    return user
  }

  /**
   * Checks a username and password against each password source in order, under the brute-force lockout
   * (src/directory/lockout.ts), for a client at `address` (the trusted client address: Fastify's `request.ip`).
   * Whatever goes wrong, the caller learns only "invalid credentials" after about the same time; a disabled
   * account is named only once the password was right, a locked username or throttled address before any check.
   * `read`: the account named `username` as the caller just read it, which a source that keeps it takes instead of
   * reading it again. `signal`: the caller's client went away, so a check still waiting for a core is dropped.
   */
  async checkPassword(username: string, password: string, address: string | undefined, via?: LoginVia, read?: User, signal?: AbortSignal): Promise<User> {
    try {
      if (!USERNAME_PATTERN.test(username)) {
        // A name no account can have still costs a hash (its answer's timing tells nothing), so it is a wrong
        // password for the address: throttled, counted and queued with the others from it. No record of the name is
        // kept: any string could be one.
        await this.lockout.guard(undefined, address, async () => {
          await burnVerificationTime(password.slice(0, MAX_PASSWORD_LENGTH), signal)
          throw new InvalidCredentials()
        }, signal)
        throw new InvalidCredentials()
      }
      const user = await this.lockout.guard(username, address, () => this.#verifyPassword(username, password, read, signal), signal)
      if (!via?.recordsLogin) await this.#confirmPasswordHash(user)
      if (via) this.#reportLogin({ username, address, via, user })
      return user
    } catch (error) {
      if (via) this.#reportLogin({ username, address, via, code: error instanceof GatehouseError ? error.code : 'internal_error' })
      throw error
    }
  }

  /**
   * The account row a check verified the password against was read before the check waited its turn (behind the
   * lockout's budget, for a core to hash on) and hashed: a password changed meanwhile must not let the old one in.
   */
  async #confirmPasswordHash(user: User): Promise<void> {
    if (!(await this.#store.users.hasPasswordHash(user.id, user.passwordHash))) throw new InvalidCredentials()
  }

  #reportLogin(attempt: LoginAttempt): void {
    for (const listener of this.#loginListeners) listener(attempt)
  }

  /**
   * Whether a source whose accounts the database may not hold yet (the directory) has an account of this username. A
   * source that cannot say now (the directory does not answer) counts as not having it: its own users cannot sign in
   * meanwhile anyway.
   */
  async elsewhereHasUsername(username: string): Promise<boolean> {
    for (const source of this.#sources) {
      try {
        if (await source.knowsUsername?.(username)) return true
      } catch (error) {
        if (!(error instanceof DirectoryUnavailable)) throw error
      }
    }
    return false
  }

  async #verifyPassword(username: string, password: string, read: User | undefined, signal: AbortSignal | undefined): Promise<User> {
    if (!password || password.length > MAX_PASSWORD_LENGTH) {
      await burnVerificationTime(password.slice(0, MAX_PASSWORD_LENGTH), signal)
      throw new InvalidCredentials()
    }
    for (const source of this.#sources) {
      const user = await source.verify(username, password, read?.username === username ? read : undefined, signal)
      if (user === NOT_MINE) continue
      if (!user.isActive) throw new AccountDisabled()
      return user
    }
    await burnVerificationTime(password, signal)
    throw new InvalidCredentials()
  }

  /** `together`: writes made in the creation's transaction once the account is (AdministrativeChange.together). */
  async create(input: AccountInput, options: { together?: WrittenTogether | undefined } = {}): Promise<User> {
    const problems: Record<string, string[]> = {}
    const usernameRefused = usernameProblem(input.username)
    if (usernameRefused) problems.username = [usernameRefused]
    if (input.password !== undefined) await this.#checkNewPassword(input.password, input.username, problems)
    if (Object.keys(problems).length) throw new ValidationFailed(problems)
    await this.#refuseCaseVariant(input.username)
    const passwordHash = input.password === undefined ? null : await hashPassword(input.password)
    const { together } = options
    // Only the account's own write is a taken username; what `together` writes fails as itself.
    let writingTogether = false
    // Failures are counted by username, an account's or not: those counted before this account (against a deleted
    // one of the same name, or a name guessed before it existed) must not lock it out of the password just chosen for
    // it, as a new password ends a lock (update). Forgotten in the creation's transaction: an account made is never
    // answered as a failure because the second write met a busy database.
    const forgetFailures = passwordHash !== null
    try {
      return await this.#bus.change(async (tx, announce) => {
        writingTogether = false
        const created = await tx.users.create({ ...input, passwordHash })
        writingTogether = true
        await this.#runCreationListeners(tx, created, announce)
        if (forgetFailures) await tx.loginFailures.clear(created.username.toLowerCase())
        if (together) await together(tx, announce, created)
        return created
      })
    } catch (error) {
      if (error instanceof UniqueViolation && !writingTogether) throw new UsernameTaken()
      throw error
    }
  }

  /**
   * Saves the changes, the listeners' writes (sessions ended) and the user's event in one transaction: every
   * process drops the account, its sessions, tokens and verified passwords together, and no crash can leave
   * the change made but unannounced.
   */
  async update(id: number, changes: AccountChanges, options: AdministrativeChange = {}): Promise<User> {
    const current = await this.#store.users.findById(id)
    if (!current) throw new NotFound('No such user.')
    const problems: Record<string, string[]> = {}
    const usernameRefused = changes.username === undefined ? undefined : usernameProblem(changes.username)
    if (usernameRefused) problems.username = [usernameRefused]
    // The password the account has already is no change: the ansible.platform collection's user module sends it
    // with every run, as it cannot see it. Nothing ends (whoever knew it still does), and the policy, which applies
    // to a password being set, is not asked again. Asked to revoke the tokens, it is set as a new one.
    // An organization admin's change of a member asks the policy first: compared first, a password the policy refuses
    // would be answered "kept" when it is the account's and "refused" otherwise, a test of guesses that no lockout
    // counts. One the policy accepts is no such test: unless it is the account's, it becomes the new one.
    const policyFirst = options.policyBeforeSamePassword === true && typeof changes.password === 'string'
    if (policyFirst) await this.#checkNewPassword(changes.password as string, changes.username ?? current.username, problems)
    const keepsPassword = typeof changes.password === 'string' && changes.revokeTokens !== true && current.passwordHash !== null
      && !problems.password && await verifyPassword(current.passwordHash, changes.password)
    if (typeof changes.password === 'string' && !keepsPassword && !policyFirst) await this.#checkNewPassword(changes.password, changes.username ?? current.username, problems)
    if (Object.keys(problems).length) throw new ValidationFailed(problems)
    if (changes.username !== undefined && changes.username !== current.username) await this.#refuseCaseVariant(changes.username, id)
    const { password, revokeTokens, ...rest } = changes
    const passwordHash = password === undefined || keepsPassword ? undefined : password === null ? null : await hashPassword(password)
    let saved: { before: User; after: User; keptSuperuser: boolean; tokensRevoked: number | undefined } | undefined
    let writingTogether = false
    try {
      saved = await this.#bus.change(async (tx, announce) => {
        writingTogether = false
        const mayRemoveSuperuser = options.keepAnActiveSuperuser === true && (rest.isSuperuser === false || rest.isActive === false)
        const mayKeepSuperuser = options.keepLastSuperuserFlag === true && rest.isSuperuser === false
        if (mayRemoveSuperuser || mayKeepSuperuser) await tx.users.lockActiveSuperusers()
        // Locked, as a personal token's issue locks it: a token written meanwhile is committed before the listeners
        // delete the account's tokens, or its issue waits and sees this change.
        const before = await tx.users.findByIdForUpdate(id)
        if (options.onlyWhileActive && before && !before.isActive) throw new AccountDisabled()
        if (options.asRead && before && changedSince(options.asRead, before)) throw new AccountChanged()
        if (keepsPassword && before && before.passwordHash !== current.passwordHash) {
          throw new ValidationFailed({ password: ['The password was changed meanwhile: send the request again.'] })
        }
        // Counted under lockActiveSuperusers, as requireAnActiveSuperuser counts: two such logins at once are one
        // after the other, and the second keeps its flag.
        const keptSuperuser = mayKeepSuperuser && before !== undefined && isActiveSuperuser(before) && await tx.users.activeSuperuserCount() === 1
        const fields = keptSuperuser ? { ...rest, isSuperuser: undefined } : rest
        const after = before && await tx.users.update(id, {
          ...fields,
          ...(passwordHash !== undefined ? { passwordHash } : {}),
          ...notBeforeChanges(before, rest, passwordHash !== undefined, revokeTokens === true),
        })
        if (!before || !after) return undefined
        if (mayRemoveSuperuser && isActiveSuperuser(before) && !isActiveSuperuser(after)) await requireAnActiveSuperuser(tx)
        announce(USER_TOPIC, String(id))
        const change: UserChange = {
          passwordChanged: passwordHash !== undefined,
          deactivated: before.isActive && !after.isActive,
          deleted: false,
          revokeTokens: passwordHash !== undefined && revokeTokens === true,
        }
        await this.#runChangeListeners(tx, after, change, announce)
        writingTogether = true
        await options.together?.(tx, announce, after)
        return { before, after, keptSuperuser, tokensRevoked: change.tokensRevoked }
      })
    } catch (error) {
      if (error instanceof UniqueViolation && !writingTogether) throw new UsernameTaken()
      throw error
    }
    if (!saved) throw new NotFound('No such user.')
    const { before, after, keptSuperuser, tokensRevoked } = saved
    options.changedFrom?.(before)
    if (tokensRevoked !== undefined) options.tokensRevoked?.(tokensRevoked)
    if (keptSuperuser) for (const listener of this.#keptListeners) listener(after)
    // A new password, or an account enabled again, is an administrator's answer to a lock: it ends it.
    if (passwordHash || (!before.isActive && after.isActive)) await this.lockout.clear(after.username)
    return after
  }

  /**
   * Writes the accounts of a file (src/directory/account-import.ts), all in one transaction: every one, or, at the first
   * problem, none. An account whose username exists already is skipped, or with `update` given the file's fields, its
   * password as `importedPassword` decides and its being active, a superuser and an auditor as `importedFlag` does. The change listeners run for every account written, created or updated,
   * so that the auditor flag brings or takes the Platform Auditor role as any other change of it does; `together` runs
   * after them. The hashes are stored as they are, without the password policy, which cannot judge a hash.
   */
  async importAccounts(accounts: readonly ImportedAccount[], options: { update: boolean; together?: ImportedTogether | undefined }): Promise<ImportOutcome> {
    const problems: Record<string, string[]> = {}
    for (const account of accounts) {
      const refused = usernameProblem(account.username)
      if (refused) problems[placeOf(account)] = [refused]
    }
    if (Object.keys(problems).length) throw new ValidationFailed(problems)
    const outcome = await this.#bus.change(async (tx, announce) => {
      const written: ImportOutcome = { created: [], updated: [], skipped: [], passwordsKept: [], enabled: [], disabled: [], keptDisabled: [], keptEnabled: [], privilegesWithheld: [], privilegesLeft: [] }
      if (options.update) await tx.users.lockActiveSuperusers()
      let demoted = false
      for (const account of accounts) {
        const { index, username, passwordHash, temporaryPassword, notImported, ...fields } = account
        const existing = await tx.users.findCaseVariant(username)
        if (existing && existing.username !== username) throw new ValidationFailed({ [placeOf(account)]: [`The account ${existing.username} has this username in another letter case.`] })
        if (!existing) {
          const created = await tx.users.create({ username, ...fields, passwordHash, importedPasswordDigest: passwordHash && hashDigest(passwordHash), importedActive: fields.isActive,
            importedSuperuser: fields.isSuperuser, importedAuditor: fields.isSystemAuditor })
          await this.#runCreationListeners(tx, created, announce)
          written.created.push(heldCreated(account, created))
          continue
        }
        if (!options.update) {
          written.skipped.push(existing)
          continue
        }
        if (existing.source !== 'local') throw new ValidationFailed({ [placeOf(account)]: [`The account exists as a ${existing.source} account, whose password is its source's.`] })
        const before = await tx.users.findByIdForUpdate(existing.id)
        if (!before) throw new AccountChanged()
        const recorded = await tx.users.importRecord(before.id)
        const password = importedPassword(before, recorded.passwordDigest, account)
        if (password.kept) written.passwordsKept.push(before)
        const passwordChanged = password.hash !== undefined
        const active = importedFlag(before.isActive, recorded.active, account.isActive)
        const superuser = importedFlag(before.isSuperuser, recorded.superuser, account.isSuperuser)
        const auditor = importedFlag(before.isSystemAuditor, recorded.auditor, account.isSystemAuditor)
        const changes = { ...fields, isActive: active.value, isSuperuser: superuser.value, isSystemAuditor: auditor.value }
        const after = await tx.users.update(before.id, {
          ...changes,
          ...(passwordChanged ? { passwordHash: password.hash } : {}),
          ...(password.digest !== undefined ? { importedPasswordDigest: password.digest } : {}),
          importedActive: active.record,
          importedSuperuser: superuser.record,
          importedAuditor: auditor.record,
          ...notBeforeChanges(before, changes, passwordChanged, false),
        })
        if (!after) throw new AccountChanged()
        if (active.kept) (account.isActive ? written.keptDisabled : written.keptEnabled).push(after)
        else if (active.value !== undefined) (active.value ? written.enabled : written.disabled).push(after)
        const keptBack = (given: boolean) => [
          ...superuser.kept && account.isSuperuser === given ? ['superuser' as const] : [],
          ...auditor.kept && account.isSystemAuditor === given ? ['Platform Auditor' as const] : [],
        ]
        const withheld = keptBack(true)
        if (withheld.length) written.privilegesWithheld.push({ user: after, privileges: withheld })
        const left = keptBack(false)
        if (left.length) written.privilegesLeft.push({ user: after, privileges: left })
        demoted ||= isActiveSuperuser(before) && !isActiveSuperuser(after)
        announce(USER_TOPIC, String(after.id))
        await this.#runChangeListeners(tx, after, { passwordChanged, deactivated: before.isActive && !after.isActive, deleted: false, revokeTokens: false }, announce)
        written.updated.push({ before, after, passwordChanged })
      }
      await options.together?.(tx, announce, written)
      if (demoted) await requireAnActiveSuperuser(tx)
      return written
    })
    // As `update` does: a new password, or an account enabled again, ends its lock.
    for (const { before, after, passwordChanged } of outcome.updated) if (passwordChanged || (!before.isActive && after.isActive)) await this.lockout.clear(after.username)
    return outcome
  }

  /**
   * Keycloak keeps usernames in lower case; Gatehouse keeps their case but, like Keycloak, lets a realm login name an
   * account in any case (src/oidc/login-name.ts). A second account whose name differs only in case would make such a
   * login match two accounts, and fail, so it is refused as a taken name (django-ansible-base compares exactly and
   * allows it). Renaming an account to its own name in another case is no clash. Two creations or renames at once
   * both pass this check: the database's unique index on the lowered name (migration 021) refuses the second write,
   * answered as the same taken name.
   */
  async #refuseCaseVariant(username: string, exceptId?: number): Promise<void> {
    if (await this.#store.users.findCaseVariant(username, exceptId)) throw new UsernameTaken()
  }

  /** Deletes an account; answers the applications that went with it, for the audit trail to record each as deleted too. */
  async delete(id: number, options: AdministrativeChange = {}): Promise<{ applications: Application[] }> {
    const deleted = await this.#bus.change(async (tx, announce) => {
      if (options.keepAnActiveSuperuser) await tx.users.lockActiveSuperusers()
      const user = await tx.users.findById(id)
      if (!user) return undefined
      announce(USER_TOPIC, String(id))
      const change: UserChange = { passwordChanged: false, deactivated: true, deleted: true, revokeTokens: false }
      await this.#runChangeListeners(tx, user, change, announce)
      const gone = await tx.users.delete(id)
      if (options.keepAnActiveSuperuser && isActiveSuperuser(user)) await requireAnActiveSuperuser(tx)
      return gone ? { applications: change.applicationsDeleted ?? [] } : undefined
    })
    if (!deleted) throw new NotFound('No such user.')
    return deleted
  }

  /**
   * Records a login, before anything is issued for it. `user` is the account as the login read it: when its password
   * hash is no longer the account's (the password was changed, or the account deleted, while the login ran) nothing
   * is recorded and the login is refused (InvalidCredentials), so that the old password issues nothing
   * (`LoginVia.recordsLogin`).
   */
  async recordLogin(user: User): Promise<void> {
    // A read begun before the write must not store the account without it.
    this.#byId.forget(user.id)
    const stamp = this.#byId.stamp()
    const recorded = await this.#store.users.recordLogin(user.id, user.passwordHash)
    if (!recorded) throw new InvalidCredentials()
    // Not worth an event for every process; this one keeps the row the write returned (the login's next step reads
    // it: one statement less per login), unless a change came meanwhile; the others show it on their next reload.
    this.#byId.set(user.id, recorded, stamp)
  }

  /** Every path that sets a local password comes here: the API, self-service, the CLI and the first admin. */
  async #checkNewPassword(password: string, username: string, problems: Record<string, string[]>): Promise<void> {
    const found = await this.newPasswordProblems(password, username)
    if (found.length) problems.password = found
  }

  /** What refuses `password` as the new local password of `username` (its length, the policy); empty when nothing does. */
  async newPasswordProblems(password: string, username: string): Promise<string[]> {
    return password.length === 0 ? ['This field may not be blank.']
      : password.length > MAX_PASSWORD_LENGTH ? [`Ensure this field has no more than ${MAX_PASSWORD_LENGTH} characters.`]
      : await passwordPolicyProblems(password, username, this.#passwordPolicy())
  }

  async #runChangeListeners(tx: Repositories, user: User, change: UserChange, announce: Announce): Promise<void> {
    for (const listener of this.#changeListeners) await listener(tx, user, change, announce)
  }

  /**
   * An account made is a change too: an auditor (the CLI's import, a directory or SSO sign-in's `auditor_groups`) gets
   * the Platform Auditor role with its flag (keepAuditorRoleWithFlag), in the creation's transaction. Nothing a
   * listener could end exists yet.
   */
  async #runCreationListeners(tx: Repositories, user: User, announce: Announce): Promise<void> {
    // Any other account made has nothing to keep in step, and is no news: the user's news makes every process forget
    // what it verified for them, this one's first sign-in too (a directory's credential, kept for when the directory
    // is down), and one more query would be every first sign-in's.
    if (!user.isSystemAuditor) return
    announce(USER_TOPIC, String(user.id))
    await this.#runChangeListeners(tx, user, { passwordChanged: false, deactivated: false, deleted: false, revokeTokens: false }, announce)
  }

  /**
   * `all`: every account's row changed, but only in what the request path checks against the account read afresh
   * (its not-before, src/auth/pipeline.ts): what was derived from the accounts (verified passwords, sessions) stays.
   */
  #forget(id: number | 'all'): void {
    if (id === 'all') return this.#byId.clear()
    this.#byId.forget(id)
    for (const listener of this.#forgetListeners) listener(id)
  }
}

/**
 * Whether the account is no longer as read: every change sets `modified` (by the writing process's clock), and an
 * enable or a disable moves `notBefore` too (by the database's), so a disable and an enable since are seen either way.
 */
function changedSince(read: User, current: User): boolean {
  return current.modified !== read.modified || current.notBefore !== read.notBefore || current.isActive !== read.isActive
}

/**
 * The not-before times a change moves to now (the database's time, as the change is written), for the credentials
 * it ends: disabling the account and a new password end its sessions and OpenID Connect grants (`notBefore`), a new
 * password with `revokeTokens` its personal tokens too (`tokensNotBefore`). Enabling the account again ends nothing more than the disable did, but moves `notBefore`
 * once more: a login or refresh in flight during the disable wrote its session or tokens after the disable had ended
 * the rest, and the disabled account's check refused them only until now. Personal tokens are not ended by a
 * disable, as the platform keeps them: they work again once the account is enabled.
 */
/**
 * An account an import created, as the database gave it back, held until its audit entry is written: what the file
 * gave it is its imported account's, the rest (its id, when it was made, no sign-in yet) its own. A large import holds
 * all it created at once, and each, as the database's copy, was twice the size and held the file's strings again.
 */
class CreatedByImport implements User {
  readonly #account: ImportedAccount
  readonly id: number
  readonly created: number

  constructor(account: ImportedAccount, id: number, created: number) {
    this.#account = account
    this.id = id
    this.created = created
  }

  get username() { return this.#account.username }
  get email() { return this.#account.email }
  get firstName() { return this.#account.firstName }
  get lastName() { return this.#account.lastName }
  get passwordHash() { return this.#account.passwordHash }
  get isSuperuser() { return this.#account.isSuperuser ?? false }
  get isActive() { return this.#account.isActive }
  get isSystemAuditor() { return this.#account.isSystemAuditor ?? false }
  get source() { return 'local' as const }
  get external() { return false }
  get groups() { return [] }
  get modified() { return this.created }
  get lastLogin() { return null }
  get notBefore() { return 0 }
  get tokensNotBefore() { return 0 }
}

/** Every field of an account, so that one added to User is compared too (or the type check fails here). */
const USER_FIELDS = Object.keys({
  id: true, username: true, email: true, firstName: true, lastName: true, passwordHash: true, isSuperuser: true, isActive: true, source: true,
  external: true, isSystemAuditor: true, groups: true, created: true, modified: true, lastLogin: true, notBefore: true, tokensNotBefore: true,
} satisfies Record<keyof User, true>) as (keyof User)[]

/** The account created, held as CreatedByImport where that is the database's account field for field, or else as it came. */
function heldCreated(account: ImportedAccount, created: User): User {
  const held = new CreatedByImport(account, created.id, created.created)
  const same = USER_FIELDS.every((field) => field === 'groups' ? created.groups.length === 0 : held[field] === created[field])
  return same ? held : created
}

/**
 * What an update's import does with an existing account's password. Gatehouse cannot tell from two hashes whether they
 * are of the same password, so it tells by the account's own: while its hash is still the one the last import stored
 * (its digest recorded), the source's password is the account's, and the file's, a new one there, replaces it, or, a
 * temporary one no one may keep, removes it. An account whose hash is another (its user changed the password, or a
 * sign-in replaced the imported hash with Gatehouse's own) keeps its own: `kept`. So does one no import gave its hash.
 * An account without a password takes the file's. A file without a password for the user changes nothing.
 *
 * `hash`: the account's new hash (null: none), undefined to keep it; `digest`: the digest to record, undefined to keep it.
 */
function importedPassword(account: User, importedDigest: string | null, file: ImportedAccount): { hash?: string | null; digest?: string | null; kept?: true } {
  const current = account.passwordHash
  if (file.passwordHash === null && !file.temporaryPassword) return {}
  // Recording the digest of a hash the file and the account share lets accounts imported before it was kept be updated.
  if (file.passwordHash === current) return importedDigest === hashDigest(current!) ? {} : { digest: hashDigest(current!) }
  // No secret is compared: both sides come from the account's own row.
  const stillImported = current !== null && hashDigest(current) === importedDigest
  if (current !== null && !stillImported) return { kept: true }
  if (file.passwordHash !== null) return { hash: file.passwordHash, digest: hashDigest(file.passwordHash) }
  return current === null ? {} : { hash: null, digest: null }
}

/**
 * What an update's import does with one of an existing account's flags: `is_active`, `is_superuser`, the Platform
 * Auditor's. The import records the file's word on each (`recorded`), whatever it did with it, so that the next one
 * tells the source's changes from Gatehouse's: an administrator's latest decision here wins over the file until the
 * file itself changes its word.
 *
 * - the file says what it said at the last import (`recorded`): the account stays as it is, whatever an administrator
 *   made of it since (enabled then disabled, or disabled then enabled, it is their latest decision that stands): `kept`
 *   when that differs from the file;
 * - the file says otherwise (the source changed it since): the file's word is given, as the source's latest decision;
 * - no import recorded a word (null: made in Gatehouse, or imported by a version that kept no record): the file's off
 *   is given, as it opens nothing, and its on is `kept` back, as an administrator's decision here may have taken it.
 *
 * `value`: the flag's new value, undefined to leave it; `record`: the word to record, undefined when the file has none
 * (a Keycloak user's privileges), which leaves the flag and the record as they are.
 */
function importedFlag(current: boolean, recorded: boolean | null, file: boolean | undefined): { value?: boolean; record?: boolean; kept?: true } {
  if (file === undefined) return {}
  if (file === current) return { record: file }
  if (recorded === file || (recorded === null && file)) return { record: file, kept: true }
  return { value: file, record: file }
}

/** A stored hash's SHA-256, as `importedPasswordDigest` keeps it: it says which hash, and tells nothing the hash does not. */
function hashDigest(passwordHash: string): string {
  return createHash('sha256').update(passwordHash).digest('hex')
}

function notBeforeChanges(before: User | undefined, changes: UserChanges, newPassword: boolean, revokeTokens: boolean): Pick<UserChanges, 'notBefore' | 'tokensNotBefore'> {
  if (!before) return {}
  const activeChanged = changes.isActive !== undefined && changes.isActive !== before.isActive
  return {
    ...(activeChanged || newPassword ? { notBefore: DATABASE_NOW } : {}),
    ...(newPassword && revokeTokens ? { tokensNotBefore: DATABASE_NOW } : {}),
  }
}

function isActiveSuperuser(user: User): boolean {
  return user.isSuperuser && user.isActive
}

/**
 * Ends the change's transaction (rolling it back) when it left no active superuser. Counted after the change,
 * under lockActiveSuperusers: two superusers demoting each other at once are then one after the other, and the
 * second is refused.
 */
async function requireAnActiveSuperuser(tx: Repositories): Promise<void> {
  if (await tx.users.activeSuperuserCount() === 0) {
    throw new SelfLockout('At least one active superuser must remain: this change would leave none.')
  }
}
