import { flushCompileCache } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import type { App } from '../app.ts'
import { unknownNames } from '../access/rules.ts'
import { directoryWarnings } from '../config/ldap.ts'
import type { Config } from '../config/schema.ts'
import { lastConfigText } from '../config/load.ts'
import { checkListeners, ListenFailed, type PlannedListener } from '../listener/listen-errors.ts'
import { listen } from '../listener/listener.ts'
import { logEnded, resolveLogFormat, type LogFormatChoice, type LogLevel } from '../logging/format.ts'
import { saveCodeCaches } from '../vendor/code-cache.ts'
import { resolveConfig } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'
import { exposedGc } from './exposed-gc.ts'
import { lowerThreadPoolPriority } from './pool-priority.ts'
import { checkStartFiles, demoUpstreamsProblem, missingSecrets, publicUrlWarning, readableSecretsWarning, readableTlsKeyWarnings, sharedServiceClientWarnings } from './preflight.ts'
import { adminHint, formatSummary, listeningLine, startupFacts } from './serve-summary.ts'
import { misnamed, outOfDate } from '../listener/tls.ts'
import { startGatehouse } from './start.ts'
import { reloadServicesTls, watchServicesTls } from '../gateway/upstream-tls.ts'
import { readConfigAgain } from './reload.ts'
import { serviceChanges } from '../config/reload.ts'
import { announceConfiguration, announceReady, holdHangUps, isWorker, onSignals, printsSummary, runningConfiguration, runWorkers } from './workers.ts'

interface ServeOptions extends StorageOptions {
  host?: string
  port?: string
  workers?: number
  logFormat: LogFormatChoice
  logLevel: LogLevel
}

/**
 * An address this machine cannot listen on (not one of its own, a name that does not resolve, a port it may not
 * open) is a mistake in how serve was called, exit status 2; a port another process holds is not.
 */
function cannotListen(host: string, port: number, error: unknown): Error {
  const message = `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${(error as Error)?.message ?? String(error)}`
  return (error as NodeJS.ErrnoException)?.code === 'EADDRINUSE' ? new Error(message, { cause: error }) : new UsageError(message)
}

/** The gateway's port, and the plain-HTTP redirect's and the metrics listener's when set: each to be had before the start. */
function plannedListeners(config: Config, host: string, port: number): PlannedListener[] {
  const redirect = config.server.tls?.redirect_http_port
  return [
    { host, port, settings: { host: 'server.host', port: 'server.port' } },
    ...(redirect ? [{ host, port: redirect, settings: { host: 'server.host', port: 'server.tls.redirect_http_port' } }] : []),
    ...(config.metrics.enabled && config.metrics.port ? [{ host: config.metrics.host, port: config.metrics.port, settings: { host: 'metrics.host', port: 'metrics.port' } }] : []),
  ]
}

export async function serve(options: ServeOptions): Promise<void> {
  // Node keeps the compile cache's entry of every module it loaded (4 MB or so, read from NODE_COMPILE_CACHE) in
  // malloc'd memory until the process exits; a flush writes out the new ones and frees them all. Done before the start
  // allocates (the store, the app, the routes), which then reuse that memory instead of growing past it: about 2 MB
  // less resident at idle. A module loaded later is read from the cache as before.
  flushCompileCache()
  const releaseHangUps = holdHangUps()
  const releaseConfiguration = runningConfiguration(options.config)
  const config = resolveConfig(options)
  const host = options.host ?? config.server.host
  const port = options.port === undefined ? config.server.port : Number(options.port)
  const demoProblem = demoUpstreamsProblem(config, options.demo === true)
  if (demoProblem) throw new UsageError(demoProblem)
  // Before anything is opened or migrated: a missing or unusable certificate, or a secret's variable unset, stops here, in one line.
  const { tls, problems, clientCertificateWarnings } = checkStartFiles(config, { create: true })
  problems.push(...missingSecrets(config, process.env))
  if (problems.length) throw new UsageError(problems.join('; '))
  // A worker's ports are the primary's, which asked already (and holds the metrics port itself). Two of them on one
  // port (--port on metrics.port, which the schema compared with the file's server.port only) are found here too.
  if (!isWorker()) await checkListeners(plannedListeners(config, host, port))
  // The workers it starts read the TLS files themselves: a hangup before them has nothing to reload.
  if ((options.workers ?? 1) > 1 && !isWorker()) {
    releaseHangUps()
    return runWorkers(options.workers!, options.database, options.config === undefined ? undefined : lastConfigText(options.config))
  }
  const terminal = process.stdout.isTTY === true
  const pretty = resolveLogFormat(options.logFormat, terminal) === 'pretty'

  let publicUrl = config.server.public_url ?? `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`
  // Loaded only for people: JSON output, what services and tests use, starts without it.
  const logStream = pretty ? (await import('../logging/pretty.ts')).prettyLogStream(process.stdout, terminal) : undefined
  // A worker runs with the primary's arguments, so it knows how many processes share the port (and the lockout).
  const { app, server, admin, close: closeAll } = await startGatehouse(config, { publicUrl, processes: options.workers ?? 1, seedDemo: options.demo === true && options.config === undefined, server: { https: tls?.options, logLevel: options.logLevel, ...(logStream ? { logStream } : {}) } })
  // Logged once the first line (`Gatehouse listening on ...`, which scripts wait for) is out, or, when the start
  // cannot listen, before it stops.
  const startWarnings: (() => void)[] = []
  const warnAfterFirstLine = () => {
    for (const warn of startWarnings.splice(0)) warn()
  }
  for (const warning of directoryWarnings(config.ldap)) startWarnings.push(() => server.log.warn(warning))
  for (const warning of sharedServiceClientWarnings(config)) startWarnings.push(() => server.log.warn(warning))
  const certificateRefused = tls && (outOfDate(tls) ?? misnamed(tls, config.server.public_url))
  if (certificateRefused) startWarnings.push(() => server.log.warn({ subject: tls.subject, valid_to: tls.validTo }, `server.tls.cert_file: ${certificateRefused}; clients will refuse it`))
  for (const warning of clientCertificateWarnings) startWarnings.push(() => server.log.warn(warning))
  const secretsWarning = options.config === undefined ? undefined : readableSecretsWarning(options.config, config)
  if (secretsWarning) startWarnings.push(() => server.log.warn(secretsWarning))
  for (const keyWarning of readableTlsKeyWarnings(config)) startWarnings.push(() => server.log.warn(keyWarning))
  let listening
  try {
    listening = await listen(server, config, { host, port }, tls)
  } catch (error) {
    warnAfterFirstLine()
    await server.close()
    await closeAll()
    // The superuser this start created stays: its generated password is said now, or no one could ever sign in as it.
    if (admin?.generatedPassword) process.stderr.write(`gatehouse: ${adminHint(admin)}\n`)
    // What listen() explains names the setting already.
    throw error instanceof ListenFailed ? error : cannotListen(host, port, error)
  }
  // The services' TLS files are read again when they change, as server.tls's are (which listen() watches).
  let unwatchServicesTls = watchServicesTls(app.routes, server.log)
  if (!config.server.public_url) {
    publicUrl = listening.url
    app.publicUrl = publicUrl
  }
  // With --workers, the worker that prints the summary says it for all of them.
  const proxyWarning = printsSummary() ? publicUrlWarning(config, publicUrl) : undefined
  if (proxyWarning) startWarnings.push(() => server.log.warn({ setting: proxyWarning.setting, issuer: proxyWarning.issuer }, proxyWarning.message))

  // Before it says it listens: whoever stops it on that line gets a graceful stop, not the signal's default.
  const graceMs = config.server.shutdown_grace_seconds * 1000
  const cutNow = new AbortController()
  let stopping = false
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      server.log.warn({ signal }, 'second signal: cutting the requests still in flight')
      cutNow.abort()
      return
    }
    stopping = true
    unwatchServicesTls()
    server.log.info({ signal, grace_seconds: config.server.shutdown_grace_seconds }, 'shutting down: no new connections; finishing the requests in flight')
    const { cut } = await listening.close(graceMs, cutNow.signal)
    if (cut) server.log.warn({ connections: cut }, 'requests still in flight were cut')
    await closeAll()
    server.log.info('stopped')
    await logEnded(server.log)
    process.exit(0)
  }
  // The configuration file is read again, and its services applied when all of it is valid (docs/proxy.md#reloading-the-configuration);
  // the gateway's own TLS files (server.tls) and the services' (services[].tls) are read again either way.
  const hangUp = () => {
    if (stopping) return
    reloadConfiguration()
    if (tls) listening.reloadTls('SIGHUP')
    reloadServicesTls(app.routes, server.log, 'SIGHUP')
  }
  const reloadConfiguration = () => {
    const read = readConfigAgain(options, config)
    if ('problems' in read) return server.log.error({ problems: read.problems }, 'SIGHUP: the configuration file has problems: none of it was applied, the gateway runs as it did')
    const changes = serviceChanges(app.config, read.config)
    const { needsRestart, applicationAudiences } = app.reloadServices(read.config)
    announceConfiguration(options.config === undefined ? undefined : lastConfigText(options.config))
    unwatchServicesTls()
    unwatchServicesTls = watchServicesTls(app.routes, server.log)
    const applicationTokens = applicationAudiences ? { application_token_audiences: applicationAudiences } : {}
    server.log.info({ services_added: changes.added, services_removed: changes.removed, services_changed: changes.changed, ...applicationTokens }, 'SIGHUP: configuration file read again; its services apply to new requests')
    if (needsRestart.length) server.log.warn({ settings: needsRestart }, 'SIGHUP: these settings changed in the configuration file but apply only at a restart: they were not applied')
    for (const warning of sharedServiceClientWarnings(read.config)) server.log.warn(warning)
    // As at start: a misspelt name in a deny rule added now would deny no one, without a word.
    for (const problem of unknownNames(read.config, app.access.names())) server.log.warn({ problem }, 'access rule names something that does not exist')
  }
  // A SIGHUP from now on reads the file.
  releaseConfiguration()
  onSignals(stop, hangUp)
  // One that came while starting may have meant certificates renewed after they were read; a worker's came from the
  // terminal, and the primary passes that on.
  if (releaseHangUps() && !isWorker()) hangUp()

  const facts = startupFacts(app, listening, tls)
  // The address this process listens on, which a script waiting for the line can reach; public_url may name a proxy.
  const firstLine = listeningLine(app, listening.url)
  announceReady()
  // With --workers, the first worker says this for all of them.
  if (printsSummary() && pretty) {
    process.stdout.write(formatSummary(facts, firstLine, admin))
  } else if (printsSummary()) {
    process.stdout.write(`${firstLine}\n`)
    if (admin?.generatedPassword) process.stderr.write(`${adminHint(admin)}\n`)
    // As the readable summary says it: a password given for the first admin on a later start was not used.
    const ignored = !admin && process.env.GATEHOUSE_ADMIN_PASSWORD ? { admin_password_ignored: 'GATEHOUSE_ADMIN_PASSWORD is used only on a first start, with no accounts' } : {}
    server.log.info({ ...facts, admin: admin ? 'created' : 'existing', ...ignored }, 'started')
  }
  warnAfterFirstLine()
  if (isWorker()) server.log.info({ url: listening.url }, 'worker listening')
  readRealmKeys(app, server.log, () => stopping)
  // A rule may name a team, organization or role before it is created: it applies once it is, but a typo should be seen.
  for (const problem of unknownNames(config, app.access.names())) server.log.warn({ problem }, 'access rule names something that does not exist')
  // What the start ran of the dependencies' bundles, compiled, for the next start (a first start, or a new install).
  saveCodeCaches()
  releaseStartupMemory()
  void lowerThreadPoolPriority()
}

/**
 * The realms' keys are read once the process listens, not at each realm's first request: a process that answered no
 * request of a realm before the database stopped answering would otherwise have no keys of it to serve its discovery
 * and JWKS from, nor to verify its tokens with (docs/oidc.md). Not awaited: the start does not wait on the database
 * for what most requests never use; `/readyz` reports the realms whose keys are not read yet, and reads them.
 */
function readRealmKeys(app: App, log: FastifyBaseLogger, stopping: () => boolean): void {
  for (const realm of app.oidc.all()) {
    realm.loadKeys().catch(() => {
      // A stop right after the start closes the database under the read: nothing to warn about.
      if (!stopping()) log.warn({ realm: realm.name }, 'the realm\'s keys could not be read at start: they are read at its first request (or /readyz)')
    })
  }
}

/**
 * Loading the modules leaves V8's young generation at its largest (about 30 MB of the resident memory), and an idle
 * process never gives it back. One memory-reducing collection returns it; traffic grows it again as far as it needs.
 *
 * It runs at once, with a callback queued on process.nextTick's queue, blocking the process for the 40-80 ms it takes,
 * once, as it starts to listen. Run when no tick was queued (as `execution: 'async'` ran it, in a task of its own), the
 * collection left every later process.nextTick several times slower for good (300 against 40 ns), which Node's HTTP
 * stack calls about ten times per proxied request: about 12% more CPU time per request (docs/performance.md).
 */
function releaseStartupMemory(): void {
  process.nextTick(keepsTickQueueOccupied)
  exposedGc()({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}

function keepsTickQueueOccupied(): void {}
