import type { App } from '../app.ts'
import type { TlsCredentials } from '../listener/tls.ts'
import { redactUrl } from '../store/database.ts'
import { version } from '../version.ts'

/**
 * What `serve` says when it has started: where it listens and what it is wired to, so a person sees at a
 * glance that the configuration is the one they meant. On a terminal it is a block of aligned lines; for log
 * collectors the same facts are one structured `started` line. Nothing secret is in it except, on a terminal,
 * a generated admin password that is shown only this once.
 */
export interface StartupFacts {
  version: string
  listening: string[]
  public_url: string
  database: string
  tls: { subject: string; valid_to: string; client_certificates: boolean } | null
  services: { name: string; prefix: string; upstream: string; demo: boolean }[]
  realms: { name: string; clients: string[] }[]
  ldap: { servers: string[]; users: string } | null
  sso: { name: string; issuer: string }[]
  /** Where Prometheus scrapes, and who may; null when metrics are off. */
  metrics: { url: string; allow_from: string[]; bearer_token: boolean } | null
  audit: { retention_days: number; max_entries: number; output: string }
}

export type AdminBootstrap = { username: string; generatedPassword?: string } | undefined

export function startupFacts(app: App, listening: { url: string; redirectUrl: string | undefined }, tls: TlsCredentials | undefined): StartupFacts {
  const { config } = app
  // A password in an upstream's URL is never sent (the proxy connects to its origin), and never shown either.
  const upstreams = new Map(app.routes.map((route) => [route.name, redactUrl(route.upstream.href)]))
  return {
    version,
    listening: [listening.url, ...(listening.redirectUrl ? [listening.redirectUrl] : [])],
    public_url: app.publicUrl,
    database: app.store.database.description,
    tls: tls ? { subject: tls.subject, valid_to: tls.validTo, client_certificates: tls.options.requestCert } : null,
    services: config.services.map((s) => ({ name: s.name, prefix: s.prefix, upstream: upstreams.get(s.name) ?? s.upstream, demo: s.upstream === 'builtin:demo' })),
    realms: config.realms.map((realm) => ({ name: realm.name, clients: realm.clients.map((client) => client.client_id) })),
    ldap: config.ldap ? { servers: [...config.ldap.servers], users: config.ldap.user_search.base } : null,
    sso: config.sso.map((provider) => ({ name: provider.name, issuer: provider.issuer })),
    metrics: config.metrics.enabled
      ? { url: app.metrics.listenerUrl ?? `${listening.url}/metrics`, allow_from: [...config.metrics.allow_from], bearer_token: config.metrics.bearer_token_file !== undefined }
      : null,
    audit: { retention_days: config.audit.retention_days, max_entries: config.audit.max_entries, output: config.audit.output === 'file' ? config.audit.file! : config.audit.output },
  }
}

/** The first line is the one scripts wait for, the same in both formats: `Gatehouse listening on URL (dialect)`. */
export function listeningLine(app: App, url: string): string {
  return `Gatehouse listening on ${url} (${app.store.database.dialect})`
}

export function adminHint(admin: AdminBootstrap, env = process.env): string {
  if (admin?.generatedPassword) return `created superuser "admin" with password: ${admin.generatedPassword} (shown once; set GATEHOUSE_ADMIN_PASSWORD to choose it)`
  if (admin) return 'created superuser "admin" with the password in GATEHOUSE_ADMIN_PASSWORD'
  // Someone who set the variable after a first start without it expects it to be admin's password now.
  const unused = env.GATEHOUSE_ADMIN_PASSWORD ? ': GATEHOUSE_ADMIN_PASSWORD is used only on a first start, with no accounts' : ''
  return `existing accounts${unused}; reset a password with: gatehouse users set-password NAME --password-stdin`
}

/** The terminal block: a label column and a value column, one line per item. */
export function formatSummary(facts: StartupFacts, firstLine: string, admin: AdminBootstrap): string {
  const rows: [string, string[]][] = [
    ['version', [facts.version]],
    ['listening', facts.listening.map((url, i) => (i === 0 ? url : `${url} (redirects to https)`))],
    ['public URL', [facts.public_url]],
    ['database', [facts.database]],
    ['TLS', [facts.tls ? `${facts.tls.subject}, valid until ${facts.tls.valid_to}${facts.tls.client_certificates ? ', client certificates required' : ''}` : 'off (plain HTTP)']],
    ['services', facts.services.length ? column(facts.services.map((s) => [s.name, s.prefix, `→ ${s.upstream}${s.demo ? ' (built-in demo)' : ''}`])) : ['none']],
    ['realms', facts.realms.length ? facts.realms.map((r) => `${r.name} (clients: ${r.clients.join(', ') || 'none'})`) : ['none']],
    ['LDAP', [facts.ldap ? `${facts.ldap.servers.join(', ')}, users under ${facts.ldap.users}` : 'off']],
    ['SSO', facts.sso.length ? facts.sso.map((p) => `${p.name} → ${p.issuer}`) : ['none']],
    ['admin', [adminHint(admin)]],
    ['health', ['/healthz (alive), /readyz (ready for traffic)']],
    ['metrics', [facts.metrics ? `${facts.metrics.url} (from ${facts.metrics.allow_from.join(', ')}${facts.metrics.bearer_token ? ', with the bearer token' : ''})` : 'off']],
    ['audit', [`kept ${facts.audit.retention_days} days, at most ${facts.audit.max_entries} entries${facts.audit.output === 'none' ? '' : `; JSON lines to ${facts.audit.output}`}`]],
  ]
  const width = Math.max(...rows.map(([label]) => label.length)) + 2
  const lines = rows.flatMap(([label, values]) => values.map((value, i) => `  ${(i === 0 ? label : '').padEnd(width)}${value}`))
  return [firstLine, ...lines, ''].join('\n')
}

function column(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]! + 2))).join(''))
}
