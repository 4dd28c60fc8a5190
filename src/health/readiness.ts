import { connect } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { performance } from 'node:perf_hooks'
import type { App } from '../app.ts'
import type { Route } from '../gateway/routes.ts'
import type { DatabaseStatus } from '../store/database.ts'
import { DatabaseUnavailable } from '../errors.ts'

/**
 * What /readyz answers: whether this process can serve requests correctly now. The database must answer and
 * hold every migration this version needs, and the event bus must be hearing about changes, because without
 * them logins fail and revocations would not reach this process; and each realm's keys must have been read once, so
 * that its discovery and JWKS are served from memory when the database stops answering. Upstreams are reported but
 * do not decide: every gateway process shares the same upstreams, so taking them all out of rotation for one service down
 * would turn that service's outage into an outage of every service, the API and the login page, while the
 * gateway already answers requests to the service that is down with 502 `upstream_unavailable`.
 *
 * Bounded and cheap: one check runs at a time and concurrent probes share it; each part gives up after the
 * configured timeout; a database query that outlives its timeout is not repeated until it settles, so a hung
 * database holds at most one pooled connection for readiness however often the probe is called; and an upstream is
 * connected to at most once per UPSTREAM_PROBE_REUSE_MS, since the probe is public and each connection it opens
 * and closes leaves a port of this machine's in TIME_WAIT for a minute.
 */

export type Status = 'UP' | 'DOWN'

/** Shaped like Keycloak's and MicroProfile Health's checks, so their monitoring reads it. */
export interface Check {
  name: 'database' | 'migrations' | 'event_bus' | 'realm_keys'
  status: Status
  data: Record<string, unknown>
}

/** An upstream's state; addresses are left out because the endpoint is public. */
export interface UpstreamCheck {
  service: string
  status: Status
  ms: number
  /** `tls`: an https upstream's handshake failed, its certificate refused as every request to it would be. */
  reason?: 'timeout' | 'refused' | 'unreachable' | 'tls'
}

export interface ReadinessReport {
  ready: boolean
  checks: Check[]
  upstreams: UpstreamCheck[]
}

type MigrationStatus = Awaited<ReturnType<App['store']['database']['migrationStatus']>>
/** `unreadable`: the database answered, with an error (the migrations table is not what it should be). */
type Outcome<T> = { ok: true; value: T; ms: number } | { ok: false; reason: 'timeout' | 'unreachable' | 'unreadable'; ms: number }

/** The bus reads the log every second (and on every push); this long without a complete read means it is stuck. */
const STALE_MS = 3000
/** How long an upstream's probe is reported again instead of connecting anew: upstreams do not decide readiness. */
const UPSTREAM_PROBE_REUSE_MS = 1000

export class Readiness {
  readonly #app: App
  readonly #timeoutMs: number
  #running: Promise<ReadinessReport> | undefined
  /** A database query from an earlier check that has not settled yet. */
  #databaseQuery: Promise<unknown> | undefined
  /** The read of the realms' keys a check started, while it goes on: later checks wait on it rather than read again. */
  #realmKeysRead: Promise<unknown> | undefined
  /** Each upstream's latest probe (under way or done), by its service's route, with when it began. */
  readonly #upstreamProbes = new Map<Route, { startedAt: number; probe: Promise<UpstreamCheck> }>()

  constructor(app: App, timeoutMs: number) {
    this.#app = app
    this.#timeoutMs = timeoutMs
  }

  check(): Promise<ReadinessReport> {
    this.#running ??= this.#checkAll().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #checkAll(): Promise<ReadinessReport> {
    const routes = this.#app.routes
    // By route: a service a reload of the configuration changed is probed anew, one it removed is forgotten.
    for (const probed of this.#upstreamProbes.keys()) if (!routes.includes(probed)) this.#upstreamProbes.delete(probed)
    const [database, upstreams, realmKeys] = await Promise.all([this.#queryDatabase(), Promise.all(routes.map((route) => this.#recentProbe(route))), this.#realmKeysCheck()])
    const checks: Check[] = [databaseCheck(database, this.#app.store.database.status(), this.#app.bus.status().writesFailingSince), migrationsCheck(database), this.#busCheck(), realmKeys]
    return { ready: checks.every((check) => check.status === 'UP'), checks, upstreams }
  }

  async #queryDatabase(): Promise<Outcome<MigrationStatus>> {
    const started = performance.now()
    const ms = () => Math.round(performance.now() - started)
    if (this.#databaseQuery) return { ok: false, reason: 'timeout', ms: 0 }
    const query = this.#app.store.database.migrationStatus()
    this.#databaseQuery = query
    void query.catch(() => {}).finally(() => {
      if (this.#databaseQuery === query) this.#databaseQuery = undefined
    })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs)
    })
    try {
      const value = await Promise.race([query, timeout])
      return value === 'timeout' ? { ok: false, reason: 'timeout', ms: ms() } : { ok: true, value, ms: ms() }
    } catch (error) {
      return { ok: false, reason: error instanceof DatabaseUnavailable ? 'unreachable' : 'unreadable', ms: ms() }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Each realm's keys must be in memory: a process without them answers the realm's discovery, JWKS and tokens with 503
   * while the database does not answer, where the others answer from memory. The start reads them once it listens
   * (src/cli/serve.ts); a realm whose read failed then is read here, within the check's timeout.
   */
  async #realmKeysCheck(): Promise<Check> {
    const realms = this.#app.oidc.all()
    const unread = () => realms.filter((realm) => !realm.keysInMemory)
    if (unread().length) {
      this.#realmKeysRead ??= Promise.allSettled(unread().map((realm) => realm.loadKeys())).finally(() => {
        this.#realmKeysRead = undefined
      })
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.#realmKeysRead, new Promise((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)))])
      clearTimeout(timer)
    }
    const missing = unread().map((realm) => realm.name)
    return { name: 'realm_keys', status: missing.length ? 'DOWN' : 'UP', data: missing.length ? { reason: 'unread', realms: missing } : { realms: realms.length } }
  }

  #busCheck(): Check {
    const bus = this.#app.bus.status()
    const sinceRead = bus.sinceReadMs
    const recent = sinceRead !== undefined && sinceRead <= STALE_MS
    // A lost LISTEN connection (reconnected with backoff) only slows news down to the poll, so it is reported, not decisive.
    return {
      name: 'event_bus',
      status: bus.running && recent ? 'UP' : 'DOWN',
      data: {
        ...(bus.running ? {} : { reason: 'stopped' }),
        ...(bus.running && !recent ? { reason: 'stale' } : {}),
        listening: bus.listening,
        last_read_ms_ago: sinceRead === undefined ? null : Math.round(sinceRead),
      },
    }
  }

  #recentProbe(route: Route): Promise<UpstreamCheck> {
    const now = performance.now()
    const recent = this.#upstreamProbes.get(route)
    if (recent && now - recent.startedAt < UPSTREAM_PROBE_REUSE_MS) return recent.probe
    const probe = this.#probeUpstream(route)
    this.#upstreamProbes.set(route, { startedAt: now, probe })
    return probe
  }

  /**
   * An https upstream is up once the service has accepted the handshake. Over TLS 1.2 that is when it completes here;
   * over TLS 1.3 the client's certificate (or its absence) is judged by the service after the handshake has completed
   * on this side, and a refusal arrives about one round trip later, as an alert or the connection closed, which the
   * proxy's requests would meet. So the probe, sending nothing, waits for the first of: the service's session ticket
   * (sent once it has accepted the client: OpenSSL's, Go's and most servers' do), an alert or the connection's end
   * (`tls`), or as long again as the connection and handshake took (at least CLIENT_CERTIFICATE_VERDICT_MIN_MS,
   * within the check's own timeout), in which a refusal would have come.
   */
  #awaitVerdict(socket: TLSSocket, handshakeMs: number, done: (reason?: UpstreamCheck['reason']) => void): void {
    if (socket.getProtocol() !== 'TLSv1.3') return done()
    const settle = (reason?: UpstreamCheck['reason']) => {
      clearTimeout(verdict)
      socket.off('session', accepted)
      socket.off('close', refused)
      done(reason)
    }
    const accepted = () => settle()
    const refused = () => settle('tls')
    // Ended just before the check's own timeout, which would report a service that sends no ticket as DOWN.
    const verdict = setTimeout(accepted, Math.min(Math.max(CLIENT_CERTIFICATE_VERDICT_MIN_MS, handshakeMs), this.#timeoutMs - handshakeMs - VERDICT_MARGIN_MS))
    socket.once('session', accepted)
    socket.once('close', refused)
    // Records are read only from a flowing socket: the ticket, the alert, or what else the service sends.
    socket.resume()
  }

  #probeUpstream(route: Route): Promise<UpstreamCheck> {
    const { name: service, upstream } = route
    const started = performance.now()
    return new Promise((resolve) => {
      const host = upstream.hostname.replace(/^\[(.*)\]$/, '$1')
      const https = upstream.protocol === 'https:'
      const address = { host, port: Number(upstream.port) || (https ? 443 : 80) }
      // An https upstream answers once its handshake is done, its certificate verified as the proxy verifies it (the
      // same name, the same CAs, the same client certificate: `services[].tls`): one whose certificate every request
      // is refused for, or that refuses the gateway's, is not up.
      const tls = https ? route.upstreamTls.current() : undefined
      const socket = tls ? tlsConnect({ ...address, ...(tls.servername === undefined ? {} : { servername: tls.servername }), ...(tls.secureContext ? { secureContext: tls.secureContext } : {}), ALPNProtocols: ['http/1.1'] }) : connect(address)
      let connected = false
      const done = (reason?: UpstreamCheck['reason']) => {
        clearTimeout(timer)
        socket.destroy()
        resolve({ service, status: reason ? 'DOWN' : 'UP', ms: Math.round(performance.now() - started), ...(reason ? { reason } : {}) })
      }
      const timer = setTimeout(() => done('timeout'), this.#timeoutMs)
      socket.once('connect', () => connected = true)
      if (https) socket.once('secureConnect', () => this.#awaitVerdict(socket as TLSSocket, performance.now() - started, done))
      else socket.once('connect', () => done())
      socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'refused' : connected ? 'tls' : 'unreachable'))
    })
  }
}

/**
 * The least a TLS 1.3 probe waits for the service's verdict on the client certificate, however fast the handshake
 * was: a service's event loop may be slower to judge than its network is to answer (a busy one took over 50 ms to
 * send its refusal). A service that accepts sends its ticket at once, so only one that sends none waits this long.
 */
const CLIENT_CERTIFICATE_VERDICT_MIN_MS = 200
/** How long before the check's timeout that wait ends at the latest. */
const VERDICT_MARGIN_MS = 5

/**
 * Writes refused while reads are answered are reported but do not decide: every process on the database (each
 * worker on a SQLite file's disk) refuses them alike, and taking them all out of rotation would end the reads and
 * the remembered credentials that still work, as an upstream that is down would end every other service.
 */
function databaseCheck(outcome: Outcome<MigrationStatus>, status: DatabaseStatus, writesFailingSince: number | undefined): Check {
  const down = !outcome.ok && outcome.reason !== 'unreadable'
  const writesFailing = !down && writesFailingSince !== undefined
  return {
    name: 'database',
    status: down ? 'DOWN' : 'UP',
    data: {
      ms: outcome.ms,
      ...(down ? { reason: outcome.reason, ...(status.reachable ? {} : { unreachable_since: new Date(status.since).toISOString() }) } : {}),
      ...(writesFailing ? { writes: 'failing', writes_failing_since: new Date(writesFailingSince).toISOString() } : {}),
    },
  }
}

/** Pending migrations make this process not ready; unknown ones (a newer version ran them during a rolling upgrade) do not. */
function migrationsCheck(outcome: Outcome<MigrationStatus>): Check {
  if (!outcome.ok) return { name: 'migrations', status: 'DOWN', data: { reason: outcome.reason === 'unreadable' ? 'unreadable' : 'database_unreachable' } }
  const { applied, pending, unknown } = outcome.value
  return {
    name: 'migrations',
    status: pending.length ? 'DOWN' : 'UP',
    data: { applied, ...(pending.length ? { reason: 'pending', pending } : {}), ...(unknown.length ? { newer: unknown } : {}) },
  }
}
