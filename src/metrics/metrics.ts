import { setTimeout } from 'node:timers/promises'
import type { GatewayRequest } from '../http/gateway-request.ts'
import type { Gauge, Metric, Registry } from 'prom-client'
import type { NewAuditEntry } from '../store/audit.ts'
import type { Database, HeldLock } from '../store/database.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { CacheStats } from '../store/cache.ts'
import type { ConnectionCap } from '../listener/address-shares.ts'
import { answerCollections, clustered, scrapeEveryWorker } from './cluster.ts'
import { sharedRuns } from './shared-runs.ts'
import { CounterFamily, HistogramFamily, type CounterCell, type HistogramSeries } from './instruments.ts'

const METHOD_CLASSES = ['read', 'write'] as const
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
const AUTH_METHODS = ['none', 'basic', 'session', 'token', 'oidc'] as const
/** Requests no place took (health probes, /metrics, unknown paths) count under this service. */
const NO_SERVICE = 'none'

/** What the metrics read of an answer: Fastify's reply, or the proxy's lean response (src/gateway/lean-proxy.ts). */
export interface AnsweredRequest {
  readonly statusCode: number
  /** Milliseconds from the request's arrival to its answer. */
  readonly elapsedTime: number
}

const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const UPSTREAM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const LAG_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]
/** How often prom-client samples the event loop's lag (its default), and how long the first scrape waits for a sample. */
const EVENT_LOOP_PRECISION_MS = 10
const FIRST_LAG_SAMPLE_MS = 3 * EVENT_LOOP_PRECISION_MS

type PromClient = typeof import('prom-client')

/** What a scrape answers: the text exposition format and its content type. */
export interface Scrape {
  readonly contentType: string
  readonly text: string
}

/**
 * Everything /metrics shows (docs/metrics.md). Every series the request path counts is made at start and
 * found by array index, so counting a request is a few integer operations and increments.
 * prom-client, which formats them and adds the process's own metrics (CPU, memory, event-loop lag, garbage
 * collection), loads at the first scrape: with OpenTelemetry's API it is about 90 modules and 3 to 4 MB of an idle
 * gateway's resident memory, and its event-loop monitor wakes the process a hundred times a second for no one until
 * someone scrapes. Those process metrics therefore count from the first scrape.
 */
export class GatewayMetrics {
  #registry: Promise<Registry> | undefined
  /** Made with prom-client when it loads, in the order they were asked for. */
  readonly #gauges: ((client: PromClient) => Gauge)[] = []
  /** Where the separate metrics listener (`metrics.port`) is, once it listens. */
  listenerUrl: string | undefined
  readonly #serviceIndex = new Map<string, number>()
  readonly #requestCells: CounterCell[] = []
  readonly #gatewayTime: HistogramSeries[] = []
  readonly #upstreamTime: HistogramSeries[] = []
  readonly #granted = new Map<string, CounterCell>()
  readonly #refusedCells: Record<ConnectionCap, CounterCell>
  readonly #requests = new CounterFamily('gatehouse_requests_total', 'Requests, counted as they end (answered, or not whole: 499 when the client left first, 444 when the gateway closed the connection unanswered), by service, method class (read: GET, HEAD, OPTIONS; write: the rest), status class and authentication method.', ['service', 'method', 'status', 'auth'])
  readonly #gatewayDuration = new HistogramFamily('gatehouse_request_duration_seconds', 'The gateway\'s own time per request: until the request was forwarded (proxied requests), or until the response was sent (its own API and pages).', ['service'], FAST_BUCKETS)
  readonly #upstreamDuration = new HistogramFamily('gatehouse_upstream_duration_seconds', 'Time from forwarding a request until the upstream\'s response headers arrived.', ['service'], UPSTREAM_BUCKETS)
  readonly #decisions = new CounterFamily('gatehouse_auth_decisions_total', 'Authentication decisions, by method and outcome (granted, or refused with its error code).', ['method', 'outcome', 'code'])
  readonly #logins = new CounterFamily('gatehouse_logins_total', 'Password logins, by method and outcome (success, failure) with the failure\'s code.', ['method', 'outcome', 'code'])
  readonly #created = new CounterFamily('gatehouse_credentials_created_total', 'Sessions and personal tokens created.', ['kind'])
  readonly #oidcGrants = new CounterFamily('gatehouse_oidc_token_grants_total', 'Tokens issued by a realm\'s token endpoint, by realm and grant type.', ['realm', 'grant_type'])
  readonly #logoutTokens = new CounterFamily('gatehouse_oidc_backchannel_logouts_total', 'Logout tokens sent to a realm\'s clients (back-channel logout, and keycloak-connect\'s k_logout), by realm and outcome: delivered, rejected (an answer other than 200 or 204), unreachable, timeout, unsigned (the realm\'s keys could not be read) or dropped (too many waiting).', ['realm', 'outcome'])
  readonly #revoked = new CounterFamily('gatehouse_revocations_total', 'Sessions and personal tokens ended or revoked through this process\'s API (the CLI, a process of its own, is not counted).', ['kind'])
  readonly #lockouts = new CounterFamily('gatehouse_lockouts_total', 'Usernames locked after too many failed logins.', [])
  readonly #auditDropped = new CounterFamily('gatehouse_audit_dropped_total', 'Audit entries counted instead of kept because the queue was full.', [])
  readonly #cacheLookups = new CounterFamily('gatehouse_cache_lookups_total', 'Lookups of in-memory caches, answered from memory (hit) or read again (miss).', ['cache', 'result'])
  readonly #busLag = new HistogramFamily('gatehouse_event_bus_lag_seconds', 'How long after another process committed a change this process read its news.', [], LAG_BUCKETS)
  readonly #passwordChecksRefused = new CounterFamily('gatehouse_password_checks_refused_total', 'Password checks refused at once because every core was checking one and auth.password_checks_waiting more waited.', [])
  readonly #connectionsRefused = new CounterFamily('gatehouse_connections_refused_total', 'Connections closed as they arrived because server.max_connections or server.max_connections_per_address was reached, by that cap.', ['reason'])
  readonly #websocketsClosed = new CounterFamily('gatehouse_websockets_closed_total', 'WebSockets closed after they opened, by service and by what closed them (client, service, idle, credential_revoked, access_narrowed, database_unavailable, directory_unavailable, password_checks_busy, shutdown, service_reloaded), and upgrades whose client left before the service answered (client_before_answer).', ['service', 'reason'])
  readonly #queryDuration = new HistogramFamily('gatehouse_db_query_duration_seconds', 'Database query time, failed queries included.', [], FAST_BUCKETS)
  readonly #lockWaits = new CounterFamily('gatehouse_db_lock_waits_total', 'PostgreSQL statements that gave up waiting for a lock another transaction held (their requests answered 503 database_unavailable, no outage), by lock: row, table or advisory.', ['lock'])

  /** `places`: the names requests are counted under besides `none` (src/gateway/places.ts: services, `gateway`, `ui`, `realms/<name>`). */
  constructor(places: readonly string[]) {
    this.addPlaces([NO_SERVICE, ...places])
    for (const method of AUTH_METHODS) this.#granted.set(method, this.#decisions.series(method, 'granted', ''))
    this.#lockouts.series()
    this.#auditDropped.series()
    this.#refusedCells = { max_connections: this.#connectionsRefused.series('max_connections'), max_connections_per_address: this.#connectionsRefused.series('max_connections_per_address') }
    if (clustered()) answerCollections(async () => (await this.#loadedRegistry()).getMetricsAsJSON())
  }

  /**
   * Names requests may be counted under from now on: a service a reload of the configuration added. A service it
   * removed keeps its series, with the totals they reached.
   */
  addPlaces(places: readonly string[]): void {
    for (const service of places) {
      if (this.#serviceIndex.has(service)) continue
      this.#serviceIndex.set(service, this.#serviceIndex.size)
      this.#gatewayTime.push(this.#gatewayDuration.series(service))
      this.#upstreamTime.push(this.#upstreamDuration.series(service))
      for (const method of METHOD_CLASSES) for (const status of STATUS_CLASSES) for (const auth of AUTH_METHODS) {
        this.#requestCells.push(this.#requests.series(service, method, status, auth))
      }
    }
  }

  /** The registry, with prom-client loaded on the first call; a failed load is tried again at the next scrape. */
  #loadedRegistry(): Promise<Registry> {
    this.#registry ??= import('prom-client').then(async (client) => {
      const registry = this.#registryOf(client)
      // Its event-loop lag is sampled from now on, every EVENT_LOOP_PRECISION_MS: read before the first sample, it
      // would be an empty histogram's (a minimum of 292 years, a mean of NaN).
      await setTimeout(FIRST_LAG_SAMPLE_MS)
      return registry
    }).catch((error: unknown) => {
      this.#registry = undefined
      throw error
    })
    return this.#registry
  }

  /** Gatehouse's families, then prom-client's process metrics, then the gauges: the order they had when made at start. */
  #registryOf(client: PromClient): Registry {
    const registry = new client.Registry()
    for (const family of [this.#requests, this.#gatewayDuration, this.#upstreamDuration, this.#decisions, this.#logins, this.#created, this.#oidcGrants, this.#logoutTokens, this.#revoked, this.#lockouts, this.#auditDropped, this.#passwordChecksRefused, this.#connectionsRefused, this.#websocketsClosed, this.#cacheLookups, this.#busLag, this.#queryDuration, this.#lockWaits]) {
      registry.registerMetric(family as unknown as Metric)
    }
    client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS })
    for (const gauge of this.#gauges) registry.registerMetric(gauge(client))
    return registry
  }

  /** Counts an answered request, and the authentication decision it carried; called once per request from the response hook. */
  requestDone(request: Pick<GatewayRequest, 'method' | 'gatehouse'>, reply: AnsweredRequest): void {
    const context = request.gatehouse
    if (!context) return
    const s = (context.place !== undefined ? this.#serviceIndex.get(context.place.name) : undefined) ?? 0
    // A forward-authentication question counts as the request it describes, as it counts under that request's service.
    const m = isRead(context.describedMethod ?? request.method) ? 0 : 1
    const status = Math.min(4, Math.max(0, Math.floor(reply.statusCode / 100) - 1))
    const a = authIndex(context.principal?.method)
    this.#requestCells[((s * 2 + m) * 5 + status) * 5 + a]!.value++
    const elapsedMs = reply.elapsedTime
    const forwardedAt = context.forwardedAtMs
    this.#gatewayDuration.observe(this.#gatewayTime[s]!, (forwardedAt ?? elapsedMs) / 1000)
    if (context.upstreamMs !== undefined) this.#upstreamDuration.observe(this.#upstreamTime[s]!, context.upstreamMs / 1000)
    // The authenticator that claimed the credential, and what became of the request (src/gateway/authorize.ts).
    const method = context.authenticator
    if (method === undefined) return
    const cell = context.principal && context.decision !== 'refused' ? this.#granted.get(method) : this.#decisions.series(method, 'refused', context.code ?? 'unknown')
    if (cell) cell.value++
  }

  /**
   * Logins, lockouts, credentials created and revoked: counted from the audit trail's entries as they are recorded, a
   * revocation of many by how many it ended (`endedBy`).
   */
  readonly auditEntry = (entry: NewAuditEntry): void => {
    switch (entry.operation) {
      case 'login': this.#logins.series(entry.authMethod ?? '', 'success', '').value++; break
      case 'login_error': this.#logins.series(entry.authMethod ?? '', 'failure', entry.code ?? '').value++; break
      case 'lockout': this.#lockouts.series().value++; break
      case 'create': if (entry.contentType === 'token' || entry.contentType === 'session') this.#created.series(entry.contentType).value++; break
      case 'delete': if (entry.contentType === 'token' || entry.contentType === 'session') this.#revoked.series(entry.contentType).value += endedBy(entry); break
    }
  }

  readonly connectionRefused = (cap: ConnectionCap): void => {
    this.#refusedCells[cap].value++
  }

  readonly oidcTokensIssued = (realm: string, grantType: string): void => {
    this.#oidcGrants.series(realm, grantType).value++
  }

  readonly logoutTokensSent = (realm: string, outcome: string): void => {
    this.#logoutTokens.series(realm, outcome).value++
  }

  watchAuditDrops(dropped: () => number): void {
    const cell = this.#auditDropped.series()
    this.#auditDropped.beforeScrape = () => (cell.value = dropped())
  }

  /** A WebSocket of `service` closed, by `reason` (src/gateway/websocket.ts). */
  webSocketClosed(service: string, reason: string): void {
    this.#websocketsClosed.series(service, reason).value++
  }

  /** `open`: each service's open WebSockets, counted by the tunnels (src/gateway/websocket.ts). */
  watchWebSockets(open: () => ReadonlyMap<string, number>): void {
    this.#gauges.push((client) => new client.Gauge({
      name: 'gatehouse_websockets_open',
      help: 'WebSockets open through this process, by service.',
      labelNames: ['service'],
      registers: [],
      collect() {
        this.reset()
        for (const [service, count] of open()) this.set({ service }, count)
      },
    }))
  }

  /** The process's password checks refused for a full queue (src/directory/passwords.ts), read at each scrape. */
  watchPasswordChecks(refused: () => number): void {
    const cell = this.#passwordChecksRefused.series()
    this.#passwordChecksRefused.beforeScrape = () => (cell.value = refused())
  }

  watchCaches(caches: Record<string, CacheStats>): void {
    const cells = Object.entries(caches).map(([name, stats]) => ({ stats, hit: this.#cacheLookups.series(name, 'hit'), miss: this.#cacheLookups.series(name, 'miss') }))
    this.#cacheLookups.beforeScrape = () => {
      for (const { stats, hit, miss } of cells) {
        hit.value = stats.hits
        miss.value = stats.misses
      }
    }
  }

  watchBus(bus: EventBus): void {
    const series = this.#busLag.series()
    bus.onRead((lagMs) => this.#busLag.observe(series, Math.max(0, lagMs) / 1000))
    this.#gauges.push((client) => new client.Gauge({
      name: 'gatehouse_event_bus_last_read_age_seconds',
      help: 'Time since this process last read the event log completely (it reads every second); under serve --workers, the longest of the workers\'.',
      registers: [],
      aggregator: 'max',
      collect() {
        const { sinceReadMs } = bus.status()
        this.set(sinceReadMs === undefined ? -1 : sinceReadMs / 1000)
      },
    }))
  }

  watchDatabase(database: Database): void {
    const series = this.#queryDuration.series()
    database.onQuery((seconds) => this.#queryDuration.observe(series, seconds))
    const lockWaits: Record<HeldLock, CounterCell> = { row: this.#lockWaits.series('row'), table: this.#lockWaits.series('table'), advisory: this.#lockWaits.series('advisory') }
    database.onEachLockWait((lock) => lockWaits[lock].value++)
    this.#gauges.push((client) => new client.Gauge({
      name: 'gatehouse_db_pool_connections',
      help: 'PostgreSQL pool connections: open (total), idle, and requests waiting for one. SQLite has one connection and reports none.',
      labelNames: ['state'],
      registers: [],
      collect() {
        const pool = database.poolStatus()
        if (!pool) return
        this.set({ state: 'total' }, pool.total)
        this.set({ state: 'idle' }, pool.idle)
        this.set({ state: 'waiting' }, pool.waiting)
      },
    }))
  }

  /** What /metrics answers: this process's metrics, or under `serve --workers` every worker's together (src/metrics/cluster.ts). */
  readonly scrape: () => Promise<Scrape> = sharedRuns(async () => {
    if (clustered()) return scrapeEveryWorker()
    const registry = await this.#loadedRegistry()
    return { contentType: registry.contentType, text: await registry.metrics() }
  })
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS'
}

function authIndex(method: string | undefined): number {
  switch (method) {
    case 'basic': return 1
    case 'session': return 2
    case 'token': return 3
    case 'oidc': return 4
    default: return 0
  }
}

/**
 * How many sessions or tokens a `delete` entry ended: one named by id, or as many as an entry for many says it ended
 * (`revoked` of tokens/revoke/ and a new password's `revoke_tokens`, src/audit/tokens.ts; `ended` of a user's sessions,
 * src/api/sessions.ts, and of the gateway sessions a realm's `logout-all` ended, src/api/realm-sessions.ts).
 */
function endedBy(entry: NewAuditEntry): number {
  if (entry.objectId !== null) return 1
  const removed = (entry.changes as { removed_fields?: Record<string, unknown> } | null)?.removed_fields
  const count = removed?.revoked ?? removed?.ended
  return typeof count === 'number' && Number.isSafeInteger(count) && count > 0 ? count : 0
}
