import { createWriteStream, openSync, type WriteStream } from 'node:fs'
import type { AuditSchema } from '../config/operations.ts'
import { DatabaseUnavailable } from '../errors.ts'
import { printableJson } from '../logging/printable.ts'
import { AUDIT_FIELD_LIMITS, type AuditKind, type NewAuditEntry } from '../store/audit.ts'
import type { Store } from '../store/store.ts'
import type { z } from 'zod'
import type { Actor } from './actor.ts'
import { changesBetween, isEmpty, type Fields } from './changes.ts'
import { UncheckedRefusals } from './unchecked-refusals.ts'

type AuditOptions = z.output<typeof AuditSchema>

/** What was acted on: its kind (`user`, `setting`, `token`, `session`, ...), id and a readable name. */
export interface AuditObject {
  readonly type: string
  readonly id?: string | number | null | undefined
  readonly name?: string | null | undefined
}

/** The `code` of a deletion the deletion of another object made: its organization's, or its owner's. */
export const DELETED_WITH_ORGANIZATION = 'deleted_with_organization'
export const DELETED_WITH_OWNER = 'deleted_with_owner'

/** Something that happened to a sign-in: a login, a failed one, a logout, a lockout. */
export interface AuthEvent {
  readonly operation: 'login' | 'login_error' | 'logout' | 'lockout'
  readonly object: AuditObject
  /** Why it failed: the error's stable code (invalid_credentials, account_locked, login_throttled, ...). */
  readonly code?: string | null | undefined
  readonly realm?: string | null | undefined
}

const PRUNE_EVERY_MS = 60 * 60 * 1000
/** Rows per INSERT: well inside SQLite's and PostgreSQL's limits on bound parameters. */
const BATCH_ROWS = 500

/**
 * The audit trail: who did what, when and from where. Recording is synchronous and cheap (an entry joins a
 * queue); the queue is written in one batch every `flush_ms`, so a burst of failed logins costs one INSERT per
 * batch, not one per request. The queue is bounded: authentication entries beyond `queue_limit` are counted, not
 * kept (one `dropped` entry says how many), while changes made through the API or CLI are always kept. The table
 * is bounded by age (`retention_days`) and by count (`max_entries`), which deletes the oldest sign-in entries before
 * any change (src/store/audit.ts `prune`). A refused login that verified no password
 * (throttled, locked, busy) is written once per client and minute, with how often it repeated (src/audit/unchecked-refusals.ts).
 */
export class AuditTrail {
  readonly #store: Store
  readonly #options: AuditOptions
  #queue: NewAuditEntry[] = []
  #dropped = 0
  #insertedSincePrune = 0
  #flushing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #pruneTimer: NodeJS.Timeout | undefined
  #lines: WriteStream | NodeJS.WriteStream | undefined
  readonly #listeners: ((entry: NewAuditEntry) => void)[] = []
  /** The entries that are always kept, whatever the queue's bound: changes, and refused changes. */
  readonly #alwaysKept = new WeakSet<NewAuditEntry>()
  /** The trail's own `dropped` entries, which carry a count rather than an event. */
  readonly #dropCounts = new WeakSet<NewAuditEntry>()
  readonly #uncheckedRefusals = new UncheckedRefusals()
  /**
   * Queues an entry carrying a window's count of repeated refusals; listeners counted each refusal already. Always
   * kept, as changes are: a full queue would otherwise drop the one entry that stands for all of them, and there are
   * at most as many as the windows followed at once (src/audit/unchecked-refusals.ts).
   */
  readonly #writeRepeated = (entry: NewAuditEntry): void => this.#add(entry, true, false)
  /** Entries counted instead of kept since start (gatehouse_audit_dropped_total). */
  droppedTotal = 0
  onError: (error: unknown) => void = () => {}

  constructor(store: Store, options: AuditOptions) {
    this.#store = store
    this.#options = options
  }

  /** Entries recorded and not yet written: after close, those the database refused. */
  get waiting(): number {
    return this.#queue.length
  }

  /** Called with every entry as it is recorded (metrics count them), dropped ones included. */
  onEntry(listener: (entry: NewAuditEntry) => void): void {
    this.#listeners.push(listener)
  }

  /**
   * Records a change to an object: `before` and `after` are its fields as the API shows them (absent before a
   * create and after a delete); only the fields that differ are kept, secrets masked (src/audit/changes.ts). `code`
   * says why Gatehouse itself made a change (`directory_entry_gone`). An update that changed no field is no change:
   * nothing is recorded (a body sent again, or an empty one, would otherwise write an entry each time).
   */
  change(actor: Actor, operation: 'create' | 'update' | 'delete', object: AuditObject, before?: Fields, after?: Fields, code?: string): void {
    const changes = changesBetween(before, after)
    if (operation === 'update' && !code && isEmpty(changes)) return
    const entry = entryOf(actor, operation, object, changes, 'change')
    this.#add(code ? { ...entry, code } : entry, true)
  }

  /**
   * Records the session a sign-in started or a sign-out ended. Kept in the queue as a change is (every login's session
   * is in the trail), and stored as a sign-in entry: the count bound deletes it with the login beside it, before any
   * change. An administrator's or a user's ending of another session is a `change`.
   */
  signInSession(actor: Actor, operation: 'create' | 'delete', session: AuditObject, fields: Fields): void {
    const [before, after] = operation === 'create' ? [undefined, fields] : [fields, undefined]
    this.#add(entryOf(actor, operation, session, changesBetween(before, after), 'sign_in'), true)
  }

  /**
   * Records a change that was asked for and not made, with why (the stable code of the refusal, as the API would
   * answer it): `before` and `after` are what was asked. Always kept, as changes are.
   */
  refusedChange(actor: Actor, operation: 'update' | 'delete', object: AuditObject, code: string, before?: Fields, after?: Fields): void {
    this.#add({ ...entryOf(actor, operation, object, changesBetween(before, after), 'change'), code }, true)
  }

  /**
   * Records an action on a realm that changes none of its fields (Keycloak's admin event of type ACTION, which the
   * platform's operations do not have): an `update` of the realm, carrying its `realm`, `fields` what it did.
   */
  realmAction(actor: Actor, realm: string, fields: Fields): void {
    this.#add({ ...entryOf(actor, 'update', { type: 'realm', id: realm, name: realm }, changesBetween(undefined, fields), 'change'), realm }, true)
  }

  /**
   * Records an authentication event; under a flood these are the entries that may be dropped. Listeners (metrics)
   * are told of every one; a refusal that verified no password is written only once per client and window.
   */
  auth(actor: Actor, event: AuthEvent): void {
    const entry = { ...entryOf(actor, event.operation, event.object, null, 'sign_in'), code: event.code ?? null, realm: event.realm ?? null }
    for (const listener of this.#listeners) listener(entry)
    if (this.#uncheckedRefusals.admit(entry, this.#writeRepeated)) this.#add(entry, false, false)
  }

  /**
   * Opens the JSON-lines output and starts writing batches and pruning. A command-line run passes `periodic: false`
   * (its entries are written when it closes) and `stdout: false` (standard output is the command's own).
   */
  start(how: { periodic?: boolean; stdout?: boolean } = {}): void {
    if (this.#timer || this.#lines) return
    if (this.#options.output === 'stdout' && how.stdout !== false) this.#lines = process.stdout
    if (this.#options.output === 'file') {
      // Opened now, so a path that cannot be written fails the start rather than a later write.
      const lines = createWriteStream('', { fd: openSync(this.#options.file!, 'a', 0o600) })
      lines.on('error', (error) => this.onError(error))
      this.#lines = lines
    }
    if (how.periodic === false) return
    this.#timer = setInterval(() => void this.flush(), this.#options.flush_ms)
    this.#timer.unref()
    this.#pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS)
    this.#pruneTimer.unref()
    void this.prune()
  }

  /** Writes what is waiting, in batches; one flush at a time. */
  flush(): Promise<void> {
    this.#flushing ??= this.#write().finally(() => {
      this.#flushing = undefined
    })
    return this.#flushing
  }

  async prune(now = Date.now()): Promise<number> {
    this.#insertedSincePrune = 0
    try {
      return await this.#store.audit.prune(now - this.#options.retention_days * 86_400_000, this.#options.max_entries)
    } catch (error) {
      this.onError(error)
      return 0
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    clearInterval(this.#pruneTimer)
    // The counts of windows still open are written now: nothing would write them after the stop.
    await this.#flushing
    this.#uncheckedRefusals.endBefore(Infinity, this.#writeRepeated)
    await this.flush()
    if (this.#lines && this.#lines !== process.stdout) await new Promise((resolve) => (this.#lines as WriteStream).end(resolve))
  }

  #add(entry: NewAuditEntry, keep: boolean, notify = true): void {
    if (notify) for (const listener of this.#listeners) listener(entry)
    if (!keep && this.#queue.length >= this.#options.queue_limit) {
      this.#dropped++
      this.droppedTotal++
      return
    }
    if (keep) this.#alwaysKept.add(entry)
    this.#queue.push(entry)
  }

  /** Resolves once the lines are handed to the file (or standard output), so a flush means written. */
  #writeLines(batch: NewAuditEntry[]): Promise<void> {
    // On standard output, where an operator may be reading: what a client chose (a username, a token's name) acts on no terminal.
    const text = batch.map((entry) => printableJson(asLine(entry))).join('\n') + '\n'
    return new Promise((resolve) => this.#lines!.write(text, () => resolve()))
  }

  /**
   * The database is away: the entries wait for the next flush. Changes always do, as when they were recorded;
   * authentication entries as far as the queue's bound leaves room beside them, and the rest are counted as dropped
   * (in the next `dropped` entry and the metric), as when the queue was full.
   */
  #keepForNextFlush(entries: NewAuditEntry[], error: unknown): void {
    const changes = entries.filter((entry) => this.#alwaysKept.has(entry)).length
    let room = Math.max(0, this.#options.queue_limit - this.#queue.length - changes)
    const kept = entries.filter((entry) => {
      // A count of dropped entries goes back into the count, to be written in one entry once the database answers.
      if (this.#dropCounts.has(entry)) {
        this.#dropped += (entry.changes as { count: number }).count
        return false
      }
      if (this.#alwaysKept.has(entry) || room-- > 0) return true
      this.#dropped++
      this.droppedTotal++
      return false
    })
    this.#queue.unshift(...kept)
    this.onError(error)
  }

  async #write(): Promise<void> {
    this.#uncheckedRefusals.endBefore(performance.now(), this.#writeRepeated)
    if (this.#dropped) {
      const count = { ...entryOf({ userId: null, username: null, address: null, method: null }, 'dropped', { type: 'audit' }, { count: this.#dropped }, 'sign_in'), code: 'queue_full' }
      this.#dropCounts.add(count)
      this.#queue.push(count)
      this.#dropped = 0
    }
    while (this.#queue.length) {
      const batch = this.#queue.splice(0, BATCH_ROWS)
      try {
        await this.#store.audit.insertMany(batch)
      } catch (error) {
        if (error instanceof DatabaseUnavailable) return this.#keepForNextFlush(batch, error)
        // Refused for what it holds, not for the database being away: tried again as it is, it would hold every
        // entry behind it for good. Row by row, only a row the database refuses is left out of the table, reported
        // (and counted as dropped); the lines below still carry it.
        for (const [index, entry] of batch.entries()) {
          try {
            await this.#store.audit.insertMany([entry])
          } catch (rowError) {
            if (rowError instanceof DatabaseUnavailable) return this.#keepForNextFlush(batch.slice(index), rowError)
            this.onError(rowError)
            this.droppedTotal++
          }
        }
      }
      if (this.#lines) await this.#writeLines(batch)
      this.#insertedSincePrune += batch.length
    }
    // A burst must not wait an hour for the count bound.
    if (this.#insertedSincePrune >= Math.max(100, this.#options.max_entries / 10)) await this.prune()
  }
}

/** Names and addresses cut as the table cuts them (AUDIT_FIELD_LIMITS), so that the JSON lines say the same. */
function entryOf(actor: Actor, operation: string, object: AuditObject, changes: unknown, kind: AuditKind): NewAuditEntry {
  return {
    created: Date.now(),
    operation,
    contentType: object.type,
    objectId: object.id === undefined || object.id === null ? null : String(object.id),
    objectName: object.name?.slice(0, AUDIT_FIELD_LIMITS.objectName) ?? null,
    actorId: actor.userId,
    actorUsername: actor.username?.slice(0, AUDIT_FIELD_LIMITS.actorUsername) ?? null,
    sourceAddress: actor.address?.slice(0, AUDIT_FIELD_LIMITS.sourceAddress) ?? null,
    authMethod: actor.method,
    code: null,
    realm: null,
    changes,
    kind,
  }
}

/** The JSON line for log shippers: the entry with an ISO time. */
function asLine(entry: NewAuditEntry) {
  return { time: new Date(entry.created).toISOString(), ...entry, created: undefined }
}
