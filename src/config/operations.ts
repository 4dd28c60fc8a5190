import { z } from 'zod'
import { cidr } from './access.ts'

/**
 * Options for watching and auditing Gatehouse: the Prometheus metrics endpoint (docs/metrics.md) and the audit
 * trail (docs/audit.md). Defaults are defined here next to their descriptions, like every other option.
 */

export const MetricsSchema = z.object({
  enabled: z.boolean().default(true).describe('Serve Prometheus metrics at /metrics.'),
  port: z.number().int().min(0).max(65535).optional()
    .describe('Serve /metrics on a listener of its own at this port (on `host`) instead of the main port, so the gateway\'s public port never answers it. 0 picks a free port. Its connections are under `server.max_connections`, `server.max_connections_per_address` and `server.timeouts` as well.'),
  host: z.string().min(1).default('127.0.0.1').describe('Address of the separate metrics listener (with `port`).'),
  bearer_token_file: z.string().min(1).optional()
    .describe('A file holding a token every scrape must send as `Authorization: Bearer <token>` (Prometheus\'s `authorization.credentials_file`). Read once at start.'),
  allow_from: z.array(cidr).default(['127.0.0.0/8', '::1/128'])
    .describe('Client addresses or CIDRs allowed to scrape, read as `server.trusted_proxies` is (an IPv4-mapped CIDR such as `::ffff:10.0.0.0/104` is the IPv4 range it maps); matched against the trusted client address: behind a reverse proxy listed in `server.trusted_proxies`, the forwarded one. Default: this machine only, so a fresh install publishes nothing; widen it, or set a bearer token, for a remote Prometheus.'),
}).strict()

export const AuditSchema = z.object({
  retention_days: z.number().int().min(1).max(3650).default(90)
    .describe('Audit entries older than this are deleted (checked every hour).'),
  max_entries: z.number().int().min(100).max(100_000_000).default(1_000_000)
    .describe('Most audit entries kept: beyond it the oldest sign-in entries (logins, failed logins, logouts, lockouts, and the sessions logins start and logouts end) are deleted first, and the oldest changes only when the changes alone are more, so a flood of logins can neither fill the disk nor push an administrator\'s change out.'),
  queue_limit: z.number().int().min(10).max(1_000_000).default(10_000)
    .describe('Most entries waiting to be written. Login and authentication entries arriving while it is full are counted (gatehouse_audit_dropped_total, and one summary entry) instead of kept; changes made through the API or CLI are always kept.'),
  flush_ms: z.number().int().min(10).max(60_000).default(500)
    .describe('How often waiting entries are written, in one batch.'),
  output: z.enum(['none', 'stdout', 'file']).default('none')
    .describe('Also write every entry as one JSON line, for a log shipper: to standard output, or appended to `file`.'),
  file: z.string().min(1).optional().describe('The JSON lines file for `output: file` (relative to the working directory).'),
}).strict().superRefine((audit, ctx) => {
  if (audit.output === 'file' && !audit.file) ctx.addIssue({ code: 'custom', path: ['file'], message: 'name the file for output: file' })
})

// Parsed once: without zod's compiled fast path, which costs more to make than it saves here (src/config/load.ts).
export const metricsDefaults = MetricsSchema.parse({}, { jitless: true })
export const auditDefaults = AuditSchema.parse({}, { jitless: true })
