/**
 * OpenID Connect Back-Channel Logout 1.0: when a realm session ends (a browser's, or a password login's), each client it
 * signed in to that has a `backchannel_logout_uri` is sent a signed logout token (§2.4), POSTed as a form (§2.5), so that the application
 * ends its own session. Keycloak does the same per client ("Backchannel logout URL"). Clients with an admin URL
 * (keycloak-connect) are sent Keycloak's older admin call instead, through the same queue (`k_logout`: admin-url.ts).
 *
 * Deliveries never hold up what ended the session (a logout page, an administrator's request, a password change):
 * they are queued and sent afterwards, a few at a time, each given up after a few seconds, without following
 * redirects. The outcome is counted and failures reported (never with the token, which ends a session).
 *
 * Each receiver (the origin of its address) has a queue of its own, and the receivers take turns: one that hangs, or
 * whose queue a user filled (a password login's every session is told of, and a user may have many), holds back its
 * own deliveries only, not those of other clients. A receiver has a few deliveries under way at most, one while its
 * last failed for want of an answer; an administrator's call to every client of a realm, which waits for the
 * outcomes, goes to the front of its receiver's queue.
 */

/** How long one delivery may take before it is given up (the receiver hangs, or answers slowly). */
export const DELIVERY_TIMEOUT_MS = 5000
/** Deliveries under way at once, per process. */
export const CONCURRENT_DELIVERIES = 16
/** Deliveries under way at once to one receiver: while its last went unanswered, one. */
export const DELIVERIES_PER_RECEIVER = 4
/** Deliveries waiting their turn at one receiver; beyond this, new ones for it are dropped (counted and reported). */
export const MAX_WAITING_PER_RECEIVER = 1000
/** Deliveries waiting in all; beyond this, new ones are dropped. */
const MAX_WAITING = 10_000

/** Why a delivery left waiting at a stop was dropped. */
const STOPPED = 'the process stopped before its turn came'

/** What a delivery came to, as the metric counts it. */
export type DeliveryOutcome = 'delivered' | 'rejected' | 'unreachable' | 'timeout' | 'unsigned' | 'dropped'

/** One logout token to send: to `uri`, signed by `sign` when its turn comes (the realm's current key then). */
export interface LogoutDelivery {
  realm: string
  clientId: string
  uri: string
  /** The token; undefined when, its turn come, there is nothing to tell (an admin URL's client kept no session of it). */
  sign(): Promise<string | undefined>
  /**
   * `logout_token`: a form with the token (back-channel logout); `admin`: the token alone as text, as Keycloak posts
   * its admin calls to a client's admin URL (ResourceAdminManager, HttpClientProvider `postText`).
   */
  format: 'logout_token' | 'admin'
  /** Someone waits for the outcome (an administrator's call to every client): it goes to the front of its receiver's queue. */
  urgent?: boolean
}

export interface DeliveryFailure {
  realm: string
  clientId: string
  /** Where it was sent, without the query, which may carry a key the receiver gave the configuration. */
  uri: string
  outcome: Exclude<DeliveryOutcome, 'delivered'>
  /** The receiver's status, or what went wrong; never the token. */
  detail: string
}

/** A delivery in the queue, with who waits for what it comes to. */
interface Queued {
  delivery: LogoutDelivery
  done: (outcome: DeliveryOutcome) => void
}

/** One receiver's deliveries: waiting, and under way. */
interface Receiver {
  readonly origin: string
  readonly waiting: Queued[]
  running: number
  /** Its last delivery got no answer (it timed out, or the receiver could not be reached). */
  failing: boolean
  /** Whether it is in the turn order, which holds the receivers with deliveries waiting. */
  queued: boolean
}

export class BackchannelLogouts {
  /** Receivers with deliveries waiting or under way, by origin. */
  readonly #receivers = new Map<string, Receiver>()
  /** The receivers with deliveries waiting, in the order they take turns. */
  readonly #turns: Receiver[] = []
  #waiting = 0
  #running = 0
  readonly #idle = new Set<() => void>()
  readonly #counted: (realm: string, outcome: DeliveryOutcome) => void
  #failed: (failure: DeliveryFailure) => void = () => {}
  #stopped = false

  constructor(counted: (realm: string, outcome: DeliveryOutcome) => void = () => {}) {
    this.#counted = counted
  }

  /** Told of each delivery that failed or was dropped (the server logs it). */
  onFailure(listener: (failure: DeliveryFailure) => void): void {
    this.#failed = listener
  }

  /**
   * Queues a delivery and returns at once; what it came to is known when the promise settles (it never rejects), which
   * those who end a session do not wait for, and an administrator's call to every client of a realm does (realm.ts).
   * A delivery with nothing to tell comes to `delivered`.
   */
  send(delivery: LogoutDelivery): Promise<DeliveryOutcome> {
    return new Promise((done) => {
      const queued = { delivery, done }
      const receiver = this.#receiver(delivery.uri)
      if (this.#stopped) {
        this.#finish(queued, 'dropped', STOPPED)
      } else if (!delivery.urgent && receiver.waiting.length >= MAX_WAITING_PER_RECEIVER) {
        // An administrator's call is never dropped for the queue: there are a few (one a client), and they go first.
        this.#finish(queued, 'dropped', `more than ${MAX_WAITING_PER_RECEIVER} logout tokens waiting to be sent to ${receiver.origin}`)
      } else if (!delivery.urgent && this.#waiting >= MAX_WAITING) {
        this.#finish(queued, 'dropped', `more than ${MAX_WAITING} logout tokens waiting to be sent`)
      } else {
        if (delivery.urgent) receiver.waiting.unshift(queued)
        else receiver.waiting.push(queued)
        this.#waiting++
        if (!receiver.queued) {
          receiver.queued = true
          this.#turns.push(receiver)
        }
        this.#next()
      }
      this.#forgetIfDone(receiver)
    })
  }

  /** Resolves once nothing is waiting or under way. */
  settled(): Promise<void> {
    if (!this.#running && !this.#waiting) return Promise.resolve()
    return new Promise((resolve) => this.#idle.add(resolve))
  }

  /**
   * For an orderly stop: sends what is queued for at most `waitMs`, then drops what is still waiting, and from then on
   * what comes (each counted and reported), and resolves once the deliveries under way have ended. A stop so waits at
   * most `waitMs` and one delivery's timeout, however many receivers hang, instead of the queue's whole length of them.
   */
  async stop(waitMs = DELIVERY_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.settled(), new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))])
    clearTimeout(timer)
    this.#stopped = true
    for (const receiver of this.#turns.splice(0)) {
      receiver.queued = false
      for (const queued of receiver.waiting.splice(0)) {
        this.#waiting--
        this.#finish(queued, 'dropped', STOPPED)
      }
      this.#forgetIfDone(receiver)
    }
    await this.settled()
  }

  #receiver(uri: string): Receiver {
    const origin = new URL(uri).origin
    let receiver = this.#receivers.get(origin)
    if (!receiver) this.#receivers.set(origin, receiver = { origin, waiting: [], running: 0, failing: false, queued: false })
    return receiver
  }

  #forgetIfDone(receiver: Receiver): void {
    if (!receiver.running && !receiver.waiting.length) this.#receivers.delete(receiver.origin)
  }

  /** Starts deliveries while there are free places: each receiver in its turn, one delivery a turn, as far as its own bound allows. */
  #next(): void {
    let passed = 0
    while (this.#running < CONCURRENT_DELIVERIES && passed < this.#turns.length) {
      const receiver = this.#turns.shift()!
      if (receiver.running >= (receiver.failing ? 1 : DELIVERIES_PER_RECEIVER)) {
        this.#turns.push(receiver)
        passed++
        continue
      }
      passed = 0
      const queued = receiver.waiting.shift()!
      this.#waiting--
      if (receiver.waiting.length) this.#turns.push(receiver)
      else receiver.queued = false
      this.#start(receiver, queued)
    }
  }

  #start(receiver: Receiver, queued: Queued): void {
    this.#running++
    receiver.running++
    void this.#deliver(queued).then((outcome) => {
      receiver.failing = outcome === 'timeout' || outcome === 'unreachable'
    }).finally(() => {
      this.#running--
      receiver.running--
      this.#forgetIfDone(receiver)
      this.#next()
      if (!this.#running && !this.#waiting) {
        for (const resolve of this.#idle) resolve()
        this.#idle.clear()
      }
    })
  }

  async #deliver(queued: Queued): Promise<DeliveryOutcome> {
    const { delivery } = queued
    let token: string | undefined
    try {
      token = await delivery.sign()
    } catch (error) {
      // The realm's keys could not be read (the database is down past the active key's turn).
      return this.#finish(queued, 'unsigned', describe(error))
    }
    if (token === undefined) {
      queued.done('delivered')
      return 'delivered'
    }
    const admin = delivery.format === 'admin'
    let response: Response
    try {
      response = await fetch(delivery.uri, {
        method: 'POST',
        headers: { 'content-type': admin ? 'text/plain; charset=utf-8' : 'application/x-www-form-urlencoded' },
        body: admin ? token : new URLSearchParams({ logout_token: token }).toString(),
        // A redirect would send the token somewhere the configuration never named (§2.5 has the RP answer 200).
        redirect: 'manual',
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      })
      // Only the status matters; the body is not read, so a receiver cannot hold the connection with one.
      await response.body?.cancel().catch(() => {})
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError'
      return this.#finish(queued, timedOut ? 'timeout' : 'unreachable', timedOut ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : describe(error))
    }
    // §2.8: 200 on success; some frameworks answer 204, which OPs are told to be prepared for.
    if (response.status === 200 || response.status === 204) return this.#finish(queued, 'delivered', '')
    return this.#finish(queued, 'rejected', `answered ${response.status}`)
  }

  #finish({ delivery, done }: Queued, outcome: DeliveryOutcome, detail: string): DeliveryOutcome {
    done(outcome)
    this.#counted(delivery.realm, outcome)
    if (outcome !== 'delivered') this.#failed({ realm: delivery.realm, clientId: delivery.clientId, uri: withoutQuery(delivery.uri), outcome, detail })
    return outcome
  }
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  if (typeof cause?.code === 'string') return cause.code
  if (typeof cause?.message === 'string') return cause.message
  return error instanceof Error ? error.message : String(error)
}

/** A receiver's address as it may be shown or logged: without its query, which may carry a key the receiver gave. */
export function withoutQuery(uri: string): string {
  const url = new URL(uri)
  return url.origin + url.pathname
}
