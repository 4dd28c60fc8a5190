import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { configFileAsWritten, settingsFromEnvironment } from '../config/load.ts'
import { defaultServiceAudiences, defaultServiceClient } from '../config/realms.ts'
import type { Config } from '../config/schema.ts'
import { parse, readPem, readTlsFiles, TlsFilesUnusable, type TlsCredentials } from '../listener/tls.ts'
import { clientCertificateOutOfDate, readUpstreamTls } from '../gateway/upstream-tls.ts'
import { metricsAccess, MetricsTokenUnusable } from '../metrics/access.ts'
import { urlPasswords } from '../store/database.ts'

export interface StartFiles {
  tls?: TlsCredentials
  /** One line each, naming the setting: nothing can start while there is one. */
  problems: string[]
  /** The services' client certificates out of their validity dates, one line each naming the setting: said, as server.tls's is. */
  clientCertificateWarnings: string[]
}

/**
 * The files a configuration names that `serve` reads or opens before it touches the database (the TLS files, the
 * services' TLS files, the metrics token, the audit file), each checked as it will be used: `serve` stops on what is found here, and
 * `config check` reports it with the schema's problems. `create` opens the audit file, as `serve` will append to it;
 * without it nothing is created, and only whether it could be is checked.
 */
export function checkStartFiles(config: Config, { create }: { create: boolean }): StartFiles {
  const problems: string[] = []
  const clientCertificateWarnings: string[] = []
  let tls: TlsCredentials | undefined
  try {
    if (config.server.tls) tls = readTlsFiles(config.server.tls)
  } catch (error) {
    if (!(error instanceof TlsFilesUnusable)) throw error
    problems.push(error.message)
  }
  config.services.forEach((service, i) => {
    try {
      // The schema takes `tls` for an https:// upstream only, whose URL parses.
      if (!service.tls) return
      const refused = clientCertificateOutOfDate(`services.${i}.tls`, readUpstreamTls(`services.${i}.tls`, new URL(service.upstream), service.tls))
      if (refused) clientCertificateWarnings.push(`${refused}; the service "${service.name}" will refuse it`)
    } catch (error) {
      if (!(error instanceof TlsFilesUnusable)) throw error
      problems.push(error.message)
    }
  })
  // Read here as the server's and the services' files are: the directory's own reading of it comes once the database
  // is opened, and `config check` would not say it.
  const ldapCa = config.ldap?.tls.ca_file
  try {
    if (ldapCa !== undefined) {
      const pem = readPem('ldap.tls.ca_file', ldapCa)
      parse('ldap.tls.ca_file', ldapCa, 'a PEM CA certificate', () => new X509Certificate(pem))
    }
  } catch (error) {
    if (!(error instanceof TlsFilesUnusable)) throw error
    problems.push(error.message)
  }
  try {
    if (config.metrics.enabled) metricsAccess(config.metrics)
  } catch (error) {
    if (!(error instanceof MetricsTokenUnusable)) throw error
    problems.push(error.message)
  }
  const auditFile = config.audit.output === 'file' ? config.audit.file! : undefined
  try {
    if (auditFile && create) closeSync(openSync(auditFile, 'a', 0o600))
    else if (auditFile) accessSync(existsSync(auditFile) ? auditFile : dirname(auditFile), constants.W_OK)
  } catch (error) {
    problems.push(`audit.file ${auditFile}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be written'}`)
  }
  return { tls, problems, clientCertificateWarnings }
}

/**
 * The built-in demo upstream answers every request with what it received: a configuration that names it by mistake
 * must not start serving it, so it runs only when asked for with --demo (`serve` stops here, `config check` says so).
 */
export function demoUpstreamsProblem(config: Config, demo: boolean): string | undefined {
  const names = config.services.filter((service) => service.upstream === 'builtin:demo').map((service) => service.name)
  if (!names.length || demo) return undefined
  return `services ${names.join(', ')} use builtin:demo upstreams, which run only with --demo`
}

/**
 * A configuration file that holds secrets itself (not through `${NAME}` or the `*_env` settings) and that other
 * users of the machine may read gives them away, as ssh refuses a private key in such a file. Said, not refused:
 * the file may be readable only inside a container, or a group may be meant to read it.
 */
export function readableSecretsWarning(file: string, config: Config): string | undefined {
  const secrets = [
    ...(config.ldap?.bind_password === undefined ? [] : ['ldap.bind_password']),
    ...config.sso.flatMap((provider, i) => (provider.client_secret === undefined ? [] : [`sso.${i}.client_secret`])),
    ...config.realms.flatMap((realm, i) => realm.clients.flatMap((client, j) => [
      ...(client.secret === undefined ? [] : [`realms.${i}.clients.${j}.secret`]),
      // Still taken until it expires: as much a secret as the one that replaces it.
      ...(client.previous_secret === undefined ? [] : [`realms.${i}.clients.${j}.previous_secret.secret`]),
    ])),
    ...(config.forward_auth?.secret === undefined ? [] : ['forward_auth.secret']),
    ...(databasePasswordWritten(file) ? ['storage.database'] : []),
  ]
  const mode = statSync(file).mode & 0o777
  if (!secrets.length || !(mode & 0o077)) return undefined
  const fromEnvironment = settingsFromEnvironment(file)
  const inline = secrets.filter((setting) => !fromEnvironment.has(setting))
  if (!inline.length) return undefined
  return `WARNING: ${file} holds secrets (${inline.join(', ')}) and other users of this machine may read it (mode ${mode.toString(8)}): ` +
    'chmod 600 it, or take them from the environment (${NAME}, or ldap.bind_password_env, sso[].client_secret_env, GATEHOUSE_DATABASE_URL)'
}

/**
 * The TLS private keys, readable by other users of the machine, let them pose as the gateway: server.tls's to its
 * clients, a service's client key (`services[].tls.key_file`) to that service. Said as the configuration file's
 * secrets are (readableSecretsWarning): warned of, not refused, since a group may be meant to read them (Debian's
 * ssl-cert) or the file be readable only inside a container. A key that cannot be read at all is a problem of
 * checkStartFiles', not a warning.
 */
export function readableTlsKeyWarnings(config: Config): string[] {
  const keys = [
    ...(config.server.tls ? [{ setting: 'server.tls.key_file', file: config.server.tls.key_file, holds: 'the TLS private key' }] : []),
    ...config.services.flatMap((service, i) => service.tls?.key_file === undefined ? [] : [{ setting: `services.${i}.tls.key_file`, file: service.tls.key_file, holds: `the key of the client certificate presented to the service "${service.name}"` }]),
  ]
  return keys.flatMap(({ setting, file, holds }) => {
    let mode: number
    try {
      mode = statSync(file).mode & 0o777
    } catch {
      return []
    }
    if (!(mode & 0o077)) return []
    return [`WARNING: ${setting} ${file} holds ${holds} and other users of this machine may read it (mode ${mode.toString(8)}): chmod 600 it`]
  })
}

/**
 * Whether the file's own `storage.database` holds a password written out (`postgres://user:PASSWORD@host`, or
 * `?password=`), not one a `${NAME}` gives: read from the file as written, since the URL in effect may be
 * `--database`'s or `GATEHOUSE_DATABASE_URL`'s, and once substituted no longer says where its password came from.
 */
function databasePasswordWritten(file: string): boolean {
  const database = (configFileAsWritten(file) as { storage?: { database?: unknown } } | undefined)?.storage?.database
  return typeof database === 'string' && urlPasswords(database).some((password) => !password.includes('${'))
}

/**
 * The environment variables the configuration reads secrets from that are not set (or empty) here, one line each
 * naming its setting: `serve` stops on them before it opens the database.
 */
export function missingSecrets(config: Config, env: NodeJS.ProcessEnv): string[] {
  const named = [
    ...(config.ldap?.bind_password_env === undefined ? [] : [['ldap.bind_password_env', config.ldap.bind_password_env]]),
    ...config.sso.flatMap((provider, i) => (provider.client_secret_env === undefined ? [] : [[`sso.${i}.client_secret_env`, provider.client_secret_env]])),
  ]
  return named.filter(([, variable]) => !env[variable!]).map(([setting, variable]) => `${setting}: the environment variable ${variable} is not set or empty`)
}

/** The same for `config check`: a warning, not a problem, since a file is often checked where the secrets are not (a CI job). */
export function missingSecretWarnings(config: Config, env: NodeJS.ProcessEnv): string[] {
  return missingSecrets(config, env).map((problem) => `WARNING: ${problem} here; serve would stop`)
}

/** A service that takes its realm's tokens, with the audiences it takes them for (src/oidc/realm.ts `policyFor`). */
interface TokenTaker {
  setting: string
  name: string
  realm: string
  client: string | undefined
  /** Its `oidc.client_id` is unset: the realm's first client with `standard_flow`. */
  defaulted: boolean
  /** Its `oidc.audiences` names them; otherwise they are its name and client. */
  named: boolean
  audiences: readonly string[]
}

function tokenTakers(config: Config): TokenTaker[] {
  return config.services.flatMap((service, i) => {
    const realm = config.realms.find((r) => r.name === (service.oidc?.realm ?? config.realms[0]?.name))
    if (!service.accepts.includes('oidc') || !realm) return []
    const client = service.oidc?.client_id ?? defaultServiceClient(realm)
    const named = Boolean(service.oidc?.audiences.length)
    const audiences = named ? service.oidc!.audiences : defaultServiceAudiences(service.name, client)
    return [{ setting: `services.${i}`, name: service.name, realm: realm.name, client, defaulted: service.oidc?.client_id === undefined, named, audiences }]
  })
}

/**
 * Services of one realm that take each other's tokens: said, not refused, as services may share tokens on purpose.
 * Those with the same client, one of them by default (`oidc.client_id` unset: the realm's first client with
 * `standard_flow`) and each with the default audiences (its name and that client): a token issued to that client is
 * meant for all of them; naming the client in each says they share it on purpose. And those whose audiences meet
 * where one of them names its own (`oidc.audiences`): a token naming one that both take is meant for both.
 */
export function sharedServiceClientWarnings(config: Config): string[] {
  const takers = tokenTakers(config)
  const byClient = new Map<string, TokenTaker[]>()
  for (const taker of takers) {
    if (taker.named || taker.client === undefined) continue
    const key = JSON.stringify([taker.realm, taker.client])
    byClient.set(key, [...(byClient.get(key) ?? []), taker])
  }
  const sharedClients = [...byClient].filter(([, services]) => services.length > 1 && services.some((s) => s.defaulted)).map(([key, services]) => {
    const [realm, client] = JSON.parse(key) as [string, string]
    const named = services.map((s) => `${s.setting} (${s.name}${s.defaulted ? ', oidc.client_id unset' : ''})`).join(' and ')
    return `WARNING: ${named} of realm "${realm}" ${services.length === 2 ? 'both' : 'all'} take the tokens of client "${client}" (an unset oidc.client_id is the realm's first client with standard_flow), so each accepts the tokens meant for the other. Give each service its own client with oidc.client_id, or, where they are meant to share one, name it in each.`
  })
  const whence = (taker: TokenTaker) => (taker.named ? `${taker.setting}.oidc.audiences` : `${taker.setting}'s default: its name and client`)
  const sharedAudiences = takers.flatMap((first, i) => takers.slice(i + 1).flatMap((second) => {
    if (first.realm !== second.realm || !(first.named || second.named)) return []
    const both = first.audiences.filter((audience) => second.audiences.includes(audience))
    if (!both.length) return []
    return [`WARNING: ${first.setting} (${first.name}) and ${second.setting} (${second.name}) of realm "${first.realm}" both take the tokens whose aud or azp names ${both.map((a) => `"${a}"`).join(', ')} (${whence(first)}, ${whence(second)}), so each accepts the tokens meant for the other. Give each service audiences of its own.`]
  }))
  return [...sharedClients, ...sharedAudiences]
}

/**
 * Behind a proxy that terminates TLS, the address Gatehouse listens on is not the one clients reach: without
 * `server.public_url`, the realms' issuer and discovery documents, and the redirects written from them, name that
 * listening address (`http://127.0.0.1:8080`), which clients' token checks and browsers then refuse or cannot reach.
 * Trusted proxies being listed is the sign that one is in front. So with several processes on one PostgreSQL
 * database, each naming its own address. Said, not refused: a proxy for the client address only (plain HTTP on one
 * name) works as it is, and so does one process on PostgreSQL.
 */
export function publicUrlWarning(config: Config, listeningUrl: string): { setting: string; issuer: string; message: string } | undefined {
  if (config.server.public_url !== undefined) return undefined
  const issuer = `${listeningUrl}/realms/{realm}`
  if (config.server.trusted_proxies.length) {
    return {
      setting: 'server.public_url',
      issuer,
      message: `server.trusted_proxies is set but server.public_url is not: realm issuers, discovery documents and redirects will name ${listeningUrl}, `
        + 'the address Gatehouse listens on, not the one clients reach through the proxy; set server.public_url to that (e.g. https://gateway.example.com)',
    }
  }
  // Processes on one PostgreSQL database are one gateway to their clients: a realm token one of them issues under its
  // own address is refused by the others as another issuer's (the workers of one `serve --workers` share an address).
  if (config.storage.database !== undefined && config.realms.length) {
    return {
      setting: 'server.public_url',
      issuer,
      message: `storage.database is set but server.public_url is not: each gateway process on that database names its realms' issuer by its own address (this one ${listeningUrl}), `
        + 'and refuses the realm tokens the others issue; set server.public_url to the one address clients use (e.g. https://gateway.example.com)',
    }
  }
  return undefined
}
