import { z } from 'zod'
import { authMethods } from '../limits.ts'
import { isIPv6Text } from '../http/address-ranges.ts'
import { AccessRulesSchema, cidr } from './access.ts'
import { CorsSchema } from './cors.ts'
import { ForwardAuthSchema } from './forward-auth.ts'
import { LdapSchema, PasswordSourcesSchema } from './ldap.ts'
import { AuditSchema, auditDefaults, MetricsSchema, metricsDefaults } from './operations.ts'
import { GatewayOidcSchema, RealmSchema, ServiceOidcSchema } from './realms.ts'
import { SsoProvidersSchema } from './sso.ts'
import { BARE_URL_MESSAGE, isBareOrigin, isBareUrl, isWildcardOrigin, ORIGIN_MESSAGE, SUBDOMAIN_ORIGIN_MESSAGE, subdomainOrigin } from './urls.ts'

/**
 * A PostgreSQL URL that parses: one that does not (`postgres://u:pw@[bad/x`) passed `config check` and stopped every
 * command after it. A password holding `@` and then `/`, `?` or `#` unencoded (`postgres://u:pa@ss/wd@db/gatehouse`)
 * parses too, as another URL: its host is the password's middle (`ss`), which the client looked up in the DNS and
 * named in its error, while the URL as shown, masked from the username to the last `@`, named the host meant. An `@`
 * after the host is refused for that, and so is a `#`, which no database URL has and which ends it for the parser.
 */
export function isPostgresUrl(url: string): boolean {
  const afterScheme = /^postgres(ql)?:\/\/([^]*)$/.exec(url)?.[2]
  return afterScheme !== undefined && !afterScheme.includes('#') && !/[/?][^]*@/.test(afterScheme) && URL.canParse(url)
}

/** What a database URL that isPostgresUrl refuses is told to be, with the likeliest mistake. */
export const POSTGRES_URL_FORM = 'must be a postgres:// URL, with any @ # / ? in its password percent-encoded (%40 %23 %2F %3F)'


/**
 * The configuration file's schema. Each option's default is defined here, next to its description;
 * `bin/gatehouse config reference` prints this as the reference. Run-time settings that administrators
 * change through the API live in the database instead (src/settings/definitions.ts).
 */

/**
 * Where a service's requests go. Checked as the URL parser reads it too: a port past 65535 or a host it refuses
 * (`http://[1]/`) matched the pattern, and stopped every command that built the routes with "Invalid URL".
 */
function isUpstream(value: string): boolean {
  return value === 'builtin:demo' || (/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(value) && URL.canParse(value))
}

export const AuthMethodSchema = z.enum(authMethods)

/** Segments `.` and `..` excluded: every request whose path holds one is refused (400 unsafe_path), so a prefix with one could never be reached. */
const pathPrefix = z.string().regex(/^\/(?:(?!\.\.?\/)[A-Za-z0-9._~!$&'()*+,;=:@-]+\/)*$/, 'must start and end with "/" and contain only plain path segments (not "." or "..")')
/** A `*` anywhere but at the end matched only itself (`/ws/*.css` made the path `/ws/*.css` public): refused, as in rules. */
const publicPath = z.string().regex(/^\/[^?#\s*]*\*?$/, 'must be an absolute path, optionally ending in "*" to match everything under it (a "*" nowhere else)')
/** A request field's name (RFC 9110 §5.1), or a prefix of names ending in `*`. */
const removedHeaders = z.array(z.string().regex(/^[A-Za-z0-9!#$%&'+.^_`|~-]+\*?$/, 'must be a header field name, or a prefix of names ending in "*"'))

/**
 * A host name as SNI carries it (RFC 6066 §3: a DNS name, never an address): labels of letters, digits and `-`,
 * at most 253 characters.
 */
const serverName = z.string().max(253).regex(/^(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a DNS host name (SNI carries no address)')

/** How the gateway connects to an https:// service (nginx's `proxy_ssl_*`, Traefik's serversTransport). Relative paths are from the working directory. */
export const ServiceTlsSchema = z.object({
  ca_file: z.string().min(1).optional()
    .describe('PEM CA certificates the service\'s certificate must chain to, instead of Node\'s CAs (its bundled public ones, NODE_EXTRA_CA_CERTS, NODE_USE_SYSTEM_CA), as nginx\'s `proxy_ssl_trusted_certificate`: a private CA\'s, so that no public CA can sign for the service. Read at start, when it changes and on SIGHUP.'),
  cert_file: z.string().min(1).optional()
    .describe('PEM client certificate (chain) presented to a service that requires one (mutual TLS). With `key_file`. Read at start, when it changes and on SIGHUP.'),
  key_file: z.string().min(1).optional()
    .describe('PEM private key (unencrypted) of `cert_file`. Read with it.'),
  watch: z.boolean().default(true)
    .describe('Re-read the files when they change (checked every second), as `server.tls.watch`. SIGHUP re-reads them either way.'),
  server_name: serverName.optional()
    .describe('The name sent in SNI and that the service\'s certificate must hold, instead of the upstream URL\'s host (nginx\'s `proxy_ssl_name`): for a service reached by an address or an internal name its certificate does not hold. The `Host` it receives is still the upstream URL\'s.'),
}).strict()

export const ServiceSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, "_" or "-"')
    .describe('Service name: the `aud` of the identity JWT the service receives, and its key in `GET /api/`.'),
  prefix: pathPrefix
    .describe('Path prefix routed to this service, e.g. `/api/controller/`. The longest matching prefix wins. Not one that covers or is under what the gateway serves itself: `/api/gateway/`, `/ui/`, a realm\'s `/realms/<name>/` (or all of `/realms/`), the OAuth2 endpoints `/o/token/`, `/o/revoke_token/`, `/o/authorize/`.'),
  upstream: z.string().refine(isUpstream, 'must be an http(s) URL (a host that parses, a port up to 65535), or builtin:demo')
    .describe('Where requests go: `http(s)://host:port[/base]`. `builtin:demo` starts the demo upstream (with --demo).'),
  accepts: z.array(AuthMethodSchema).min(1).default(['basic', 'session', 'token'])
    .describe('Credential types this service accepts: basic, session, token (personal tokens, and the access tokens of the OAuth2 applications, as the platform takes both), oidc.'),
  public_paths: z.array(publicPath).default([])
    .describe('Paths served without authentication: exact, or a prefix ending in `*`.'),
  // YAML reads `401` unquoted as a number: taken as the status it names.
  unauthenticated: z.preprocess((value) => (value === 401 ? '401' : value), z.enum(['auto', 'redirect', '401']).default('auto'))
    .describe('What a request without credentials gets: `auto` redirects browsers (Accept: text/html) to the login page and answers others 401 JSON with WWW-Authenticate; `redirect` always redirects; `401` never does.'),
  oidc: ServiceOidcSchema.optional()
    .describe('For services that accept `oidc`: the realm and client (see `realms`).'),
  strip_prefix: z.boolean().default(false)
    .describe('Remove the prefix before forwarding (the upstream then sees `/rest/of/path`).'),
  remove_request_headers: removedHeaders.default([])
    .describe('Request header fields this service never receives from a client, besides the identity headers of other authenticating proxies that no service receives (docs/edge.md): names, or prefixes ending in `*`, in any case, `_` read as `-`. Add those the service believes for who is calling.'),
  method_override_parameter: z.union([z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a form field name: letters, digits, _ . -'), z.literal(false)]).default('_method')
    .describe('Where the service\'s rules name methods, a POST naming another method in this query or form-body parameter (Rails\', Symfony\'s and Laravel\'s `_method`) is judged as that method too, and a form body that cannot be read as every method (docs/access.md). `false` for a service whose framework takes no method from a parameter.'),
  method_override_json: z.boolean().default(false)
    .describe('With `method_override_parameter`: JSON bodies are read for it too, as Laravel reads `_method` from them (docs/access.md).'),
  tls: ServiceTlsSchema.optional()
    .describe('For an https:// upstream: the CAs its certificate is verified with, the client certificate presented to it, the name it is verified for (docs/proxy.md#https-services). Refused for an http:// one.'),
  cors: CorsSchema.optional()
    .describe('Let pages of other origins call this service from a browser: the gateway answers the preflights and adds the CORS headers (docs/proxy.md).'),
  timeouts: z.object({
    connect_seconds: z.number().positive().max(600).default(5).describe('Time to open a connection to the upstream (its TLS handshake included, for https) before answering 502.'),
    response_seconds: z.number().positive().max(3600).default(60).describe('Time to wait for the upstream\'s response headers, and between body chunks, before answering 504; and how long a client may read nothing of the response while the gateway holds some for it, before its connection and the upstream\'s are cut.'),
    websocket_idle_seconds: z.number().min(0).max(7 * 86400).default(3600).describe('An open WebSocket through which neither side sends anything for this long is closed, at both ends (nginx\'s `proxy_read_timeout`, 60 s there). 0: never for being quiet.'),
  }).strict().default({ connect_seconds: 5, response_seconds: 60, websocket_idle_seconds: 3600 }).describe('How long the upstream may take.'),
  access: AccessRulesSchema.optional(),
  pool: z.object({
    connections: z.number().int().min(1).max(10_000).default(128)
      .describe('Connections to the upstream open at once. A request holds one from when it is forwarded until its response has been sent.'),
    per_client: z.number().int().min(1).max(10_000).default(16)
      .describe('The most of them one client (an IPv4 address, or an IPv6 /64; behind a reverse proxy the address it forwards for, see `server.trusted_proxies`) may hold at once once half of them are taken (while more than half are free, a client may take more), so that clients that never finish their requests cannot take the service offline for others. At most `connections`.'),
    wait_seconds: z.number().positive().max(600).default(5)
      .describe('The longest a request waits for a connection it may use before it is answered 503 upstream_busy.'),
    body_buffer_kb: z.number().int().min(0).max(100 * 1024).default(64)
      .describe('Request bodies up to this size are read whole before the request takes a connection, and of larger ones this much first, the rest then streamed (as nginx\'s proxy_request_buffering): a client that sends its body slowly holds no connection meanwhile. 0 streams every body as it comes. All bodies held at once count against `server.body_buffers_mb`.'),
    websockets: z.number().int().min(1).max(1_000_000).default(1024)
      .describe('WebSockets open to the service at once, each holding a connection to it for as long as it is open. Bounded apart from `connections`, which sockets never take: hours-long sockets would starve ordinary requests. One past it is answered 503 upstream_busy, and the service never sees it.'),
    websockets_per_client: z.number().int().min(1).max(1_000_000).optional()
      .describe('The most of them one client (an IPv4 address, or an IPv6 /64, as for `per_client`) may hold at once; one past it is answered 503 upstream_busy. At most `websockets`. Default 64, or `websockets` when that is less.'),
    websockets_per_user: z.number().int().min(1).max(1_000_000).optional()
      .describe('The most of them one signed-in user may hold at once, from any addresses (sockets opened without credentials count only per client). Default `websockets_per_client`: a user gets the share of one address however many it has (an IPv6 /60 is 16 clients, enough for one account to take all of `websockets`).'),
  }).strict()
    // A smaller `websockets` alone lowers the default shares with it, rather than being refused for a share never set.
    .transform((pool) => {
      const perClient = pool.websockets_per_client ?? Math.min(64, pool.websockets)
      return { ...pool, websockets_per_client: perClient, websockets_per_user: pool.websockets_per_user ?? perClient }
    })
    .default({ connections: 128, per_client: 16, wait_seconds: 5, body_buffer_kb: 64, websockets: 1024, websockets_per_client: 64, websockets_per_user: 64 }).describe('The connections to the upstream, and each client\'s share of them; the same for its WebSockets.'),
}).strict()

const filePath = z.string().min(1)

/** HTTPS served by Gatehouse itself; without this section it serves plain HTTP (e.g. behind a TLS-terminating proxy). Relative paths are from the working directory. */
export const TlsSchema = z.object({
  cert_file: filePath.describe('PEM certificate chain (the server\'s certificate first). Re-read when it changes and on SIGHUP.'),
  key_file: filePath.describe('PEM private key of the certificate (unencrypted). Re-read with the certificate.'),
  ca_file: filePath.optional()
    .describe('PEM CA certificates for client certificates. When set, every client must present a certificate signed by one of them (mutual TLS).'),
  watch: z.boolean().default(true)
    .describe('Re-read the files when they change (checked every second). SIGHUP re-reads them either way.'),
  redirect_http_port: z.number().int().min(0).max(65535).optional()
    .describe('Also listen for plain HTTP on this port (same host) and answer every request with a 308 redirect to HTTPS. Its connections are under `max_connections` and `max_connections_per_address` as well.'),
  hsts_max_age_seconds: z.number().int().min(0).max(2 * 365 * 86400).default(365 * 86400)
    .describe('Strict-Transport-Security max-age sent with every HTTPS response (RFC 6797). 0 tells browsers to forget an earlier one.'),
  ciphers: z.string().min(1).max(2000).optional()
    .describe('OpenSSL cipher list for TLS 1.2 clients, replacing the default (forward secrecy with AES-GCM or ChaCha20-Poly1305 only, no CBC suites). TLS 1.3\'s suites are OpenSSL\'s own whatever this says, unless it names some (TLS_...).'),
  hsts_include_subdomains: z.boolean().default(false)
    .describe('Add includeSubDomains to Strict-Transport-Security: only when every subdomain of the host serves HTTPS.'),
}).strict()

/**
 * The platform's anonymous paths: the API roots (its clients start there without credentials, and get the
 * `csrftoken` cookie), the login page, the login methods and the health ping.
 */
const GATEWAY_PUBLIC_PATHS = ['/api/', '/api/gateway/', '/api/gateway/v1/', '/api/gateway/v1/login/', '/api/gateway/v1/ui_auth/', '/api/gateway/v1/ping/']

export const ConfigSchema = z.object({
  server: z.object({
    host: z.string().min(1).default('127.0.0.1').describe('Address to listen on.'),
    port: z.number().int().min(0).max(65535).default(8080).describe('Port to listen on (0 picks a free one).'),
    public_url: z.url({ protocol: /^https?$/ }).refine(isBareUrl, BARE_URL_MESSAGE).optional()
      .describe('The URL clients use to reach Gatehouse (issuer of tokens, redirects, services\' redirects to their own address, Secure cookies when https). A path in it is where a proxy in front publishes Gatehouse, taking the path off before forwarding: every path Gatehouse writes for a client starts with it (docs/edge.md). Default: http://<host>:<port>; then a service\'s redirect to its own address names the Host the client sent only when that is the listening address or one of `trusted_origins`, and is path-absolute otherwise (docs/proxy.md).'),
    trusted_proxies: z.array(cidr).default([])
      .describe('Addresses or CIDRs of the reverse proxies in front of Gatehouse. Only a peer in this list is believed about the client (X-Forwarded-For/-Proto/-Host for the client address, scheme and host; its other forwarding headers reach services); from any other peer those headers are ignored and removed (docs/edge.md).'),
    trust_proxy: z.never({ error: 'replaced by server.trusted_proxies: list the addresses or CIDRs of the reverse proxies in front of Gatehouse (e.g. [10.0.0.5] or [10.0.0.0/8])' }).optional()
      .describe('Removed: see `trusted_proxies`.'),
    remove_request_headers: removedHeaders.default([])
      .describe('Request header fields no service receives from a client, as `services[].remove_request_headers` says for one service: added to the identity headers of other authenticating proxies, which are always removed (docs/edge.md).'),
    // Only http(s): the origin of any other URL is opaque, so `app.example.com:8443` (read as a URL of scheme
    // "app.example.com") was taken, and no request's Origin ever matched it.
    // A `*` elsewhere than as a whole first label (`https://a.*.example.com`, `https://*example.com`) is a URL too,
    // but its host is taken as written, and no request's Origin ever matched it.
    trusted_origins: z.array(z.url({ protocol: /^https?$/, error: 'must be an origin: http(s)://host[:port]' })
      .refine((origin) => !isWildcardOrigin(origin) || !URL.canParse(origin) || subdomainOrigin(origin) !== undefined, SUBDOMAIN_ORIGIN_MESSAGE)
      .refine((origin) => isWildcardOrigin(origin) || isBareOrigin(origin), ORIGIN_MESSAGE)).default([])
      .describe('Extra origins (scheme://host[:port]) whose Referer/Origin pass the CSRF check, e.g. the public name behind a proxy. `https://*.example.com` is example.com and every name under it, with that scheme and port, as in Django\'s CSRF_TRUSTED_ORIGINS. Without `public_url`, the origins without a `*` are also those a service\'s redirects to its own address may be written with (docs/proxy.md).'),
    timeouts: z.object({
      headers_seconds: z.number().positive().max(600).default(10)
        .describe('Time a client has to send the request line and headers before it is answered 408 and its connection closed.'),
      request_seconds: z.number().positive().max(24 * 3600).default(300)
        .describe('Time a client has to send a whole request, body included, before it is answered 408 (or its connection closed, if the response has begun). Raise it for large uploads over slow links.'),
      send_seconds: z.number().positive().max(3600).default(60)
        .describe('Time a client may read nothing of one of the gateway\'s own answers (the API\'s, a page, the API documentation\'s files) while some of it waits to be sent, before its connection is cut (nginx\'s `send_timeout`). A client reading slowly is not cut. Proxied answers are bounded by `services[].timeouts.response_seconds`.'),
    }).strict().default({ headers_seconds: 10, request_seconds: 300, send_seconds: 60 }).describe('How long a client may take to send a request, and to read an answer.'),
    max_connections: z.number().int().min(1).max(1_000_000).default(10_000)
      .describe('Client connections open at once, on each listener (the gateway\'s port, the plain-HTTP port of `tls.redirect_http_port`, and `metrics.port`); further ones are closed as they arrive, counted in gatehouse_connections_refused_total and warned of once a minute per address. Keep it below the process\'s file descriptor limit (`ulimit -n`), which must also cover the upstream connections.'),
    max_connections_per_address: z.number().int().min(0).max(1_000_000).default(1000)
      .describe('Of those, the most one client address (an IPv6 one by its /64) may hold; further ones from it are closed as they arrive (counted and warned of as beyond `max_connections`); its connections to the plain-HTTP redirect port and to `metrics.port` count too. 0: no limit. The default leaves room for about 150 browsers (6 connections each) behind one NAT while no single host can hold all of `max_connections`. It counts the connection\'s peer: addresses in `trusted_proxies` are not limited, and behind a proxy or load balancer not listed there (one that forwards TCP, say) raise it or set 0 (docs/edge.md).'),
    api_body_limit_bytes: z.number().int().min(1024).max(100 * 1024 * 1024).default(1024 * 1024)
      .describe('Largest request body the gateway\'s own API reads. Proxied bodies are not limited here (see `services[].pool.body_buffer_kb`).'),
    body_buffers_mb: z.number().int().min(0).max(64 * 1024).default(64)
      .describe('Memory for the proxied request bodies read before forwarding (`services[].pool.body_buffer_kb`), all services together: a body that would take it past this is streamed as it comes.'),
    api_body_buffers_mb: z.number().int().min(1).max(64 * 1024).default(64)
      .describe('Memory for the request bodies the gateway\'s own API reads, all requests together (each is read whole before it is parsed): a body that would take it past this, or one client address\'s bodies past an eighth of it (or past one body of `api_body_limit_bytes`, when more), is refused with 503 body_buffers_full and Retry-After: 1. Bounds what many clients sending large bodies at once (to the public login, say) make the gateway hold. At least `api_body_limit_bytes`.'),
    tls: TlsSchema.optional().describe('Serve HTTPS with these files. Absent: plain HTTP.'),
    shutdown_grace_seconds: z.number().min(0).max(3600).default(25)
      .describe('On SIGTERM or SIGINT, how long requests in flight may take to finish before their connections are cut. Below Kubernetes\' default 30-second termination grace, so Gatehouse exits before it is killed.'),
    readiness_timeout_ms: z.number().int().min(50).max(10_000).default(800)
      .describe('Longest a check of /readyz (the database, each upstream) may take before it counts as failed. Below the 1-second timeout of a default Kubernetes probe.'),
  }).strict().default({ host: '127.0.0.1', port: 8080, trusted_proxies: [], remove_request_headers: [], trusted_origins: [], timeouts: { headers_seconds: 10, request_seconds: 300, send_seconds: 60 }, max_connections: 10_000, max_connections_per_address: 1000, api_body_limit_bytes: 1024 * 1024, body_buffers_mb: 64, api_body_buffers_mb: 64, shutdown_grace_seconds: 25, readiness_timeout_ms: 800 })
    .describe('Where and how Gatehouse listens.'),
  storage: z.object({
    data_dir: z.string().min(1).default('./data').describe('Directory for the embedded SQLite database (a relative one is from the working directory, not the file\'s).'),
    database: z.string().refine(isPostgresUrl, POSTGRES_URL_FORM).optional()
      .describe('PostgreSQL URL; when set, used instead of SQLite (also GATEHOUSE_DATABASE_URL).'),
    pool_connections: z.number().int().min(1).max(1000).default(10)
      .describe('PostgreSQL: the most connections each process opens for requests (each `--workers` worker is a process); a request that finds them all busy waits up to `timeouts.connect_seconds`, then gets 503 database_unavailable. Each process also keeps one listening for the others\' news, and opens one more while it migrates. The server\'s `max_connections` must cover every process\'s.'),
    timeouts: z.object({
      connect_seconds: z.number().positive().max(60).default(1)
        .describe('Time to open a connection to PostgreSQL, or to wait for a free one in the pool, before answering 503 database_unavailable.'),
      query_seconds: z.number().positive().max(60).default(2)
        .describe('Time one query may take (PostgreSQL: on the client, and a little shorter as statement_timeout and lock_timeout on the server, so that it says when the wait was for a lock another client holds; SQLite: waiting for another process\'s lock) before answering 503 database_unavailable.'),
    }).strict().default({ connect_seconds: 1, query_seconds: 2 }).describe('How long the database may take.'),
  }).strict().default({ data_dir: './data', pool_connections: 10, timeouts: { connect_seconds: 1, query_seconds: 2 } }).describe('Where accounts, sessions, tokens and settings are kept.'),
  auth: z.object({
    basic_cache_seconds: z.number().int().min(0).max(3600).default(30)
      .describe('How long a verified username/password pair is remembered in memory (0 = verify argon2id every time). One in use near the end of that time is verified again in the background (in its last fifth, at most 5 s), so its requests do not wait.'),
    identity_token_seconds: z.number().int().min(10).max(3600).default(60)
      .describe('Lifetime of the X-Gatehouse-Identity JWT sent to services.'),
    identity_key_rotation_seconds: z.number().int().min(3600).max(365 * 86400).default(30 * 86400)
      .describe('How long the key that signs X-Gatehouse-Identity signs before the next one takes over. The next key is published at /api/gateway/v1/jwks/ `identity_jwks_max_age_seconds` + `max_stale_seconds` before it signs, and the replaced key stays published until the last token it signed has expired (`gatehouse keys rotate --identity` rotates at once).'),
    identity_jwks_max_age_seconds: z.number().int().min(0).max(3600).default(300)
      .describe('How long services may cache the JWKS at /api/gateway/v1/jwks/ (its Cache-Control max-age); a new identity key is published at least this long before it signs.'),
    max_stale_seconds: z.number().int().min(2).max(3600).default(30)
      .describe('The longest a process trusts what it read from the database (accounts, sessions, tokens, OIDC token records) without reading it again, and the longest it answers from memory without having read the news of revocations: a process that cannot reach the database serves credentials it already verified for this long, then answers 503 database_unavailable until the database answers again.'),
    password_sources: PasswordSourcesSchema,
    sign_in_starts_per_address: z.number().int().min(0).default(300)
      .describe('Sign-ins (a realm authorization that may show the login page, a device authorization, a pushed authorization request, a visit to the logout or device code page, a single sign-on start) one client address, an IPv6 client by its /64, may start in 10 minutes, in each process; beyond it 429 sign_ins_throttled. Each start writes a record that waits for its end, so this bounds what requests without credentials can add to the database. Raise it for many people behind one address (an office NAT). 0 = no limit.'),
    password_checks_waiting: z.number().int().min(0).max(1_000_000).default(256)
      .describe('Password checks (argon2id, one per core at once, each core\'s hashing thread holding the next) that may wait beyond those, in each process; a check beyond them is refused at once with 503 password_checks_busy and Retry-After: 1, on every path that checks a password, and is no failed login. Bounds the requests and memory a flood of logins holds while it waits; at about 20 checks a second per core, the default is a wait of some seconds on 2 cores. 0: none wait.'),
    sign_in_starts_total: z.number().int().min(0).default(10_000)
      .describe('Sign-ins all client addresses together may start in 10 minutes, in each process; beyond it every start is refused with 429 sign_ins_throttled until the 10 minutes end. The bound a flood from many addresses cannot pass. 0 = no limit.'),
  }).strict().default({ basic_cache_seconds: 30, identity_token_seconds: 60, identity_key_rotation_seconds: 30 * 86400, identity_jwks_max_age_seconds: 300, max_stale_seconds: 30, password_sources: ['local', 'ldap'], password_checks_waiting: 256, sign_in_starts_per_address: 300, sign_in_starts_total: 10_000 })
    .describe('How credentials are verified and remembered.'),
  gateway: z.object({
    accepts: z.array(AuthMethodSchema).min(1).default(['basic', 'session', 'token', 'oidc'])
      .describe('Credential types the gateway\'s own API (/api/gateway/) accepts: as a service\'s; with token and without oidc, of the OIDC access tokens only those of the OAuth2 applications.'),
    public_paths: z.array(publicPath).default(GATEWAY_PUBLIC_PATHS)
      .describe('Gateway API paths open without authentication (the platform\'s defaults). Leaving one out closes it; a path that is not one of them cannot be opened.'),
    oidc: GatewayOidcSchema.default({ audiences: ['gateway'] })
      .describe('Which OIDC access tokens the gateway API accepts (see docs/oidc.md).'),
    access: AccessRulesSchema.optional()
      .describe('Who may use the gateway API (beyond its public paths) and the web interface, in the same rules as a service\'s `access` (docs/access.md), judged after the built-in checks. Absent: every signed-in caller.'),
    changes_per_user: z.number().int().min(0).default(600)
      .describe('Changes (POST, PUT, PATCH, DELETE on the gateway API, the web interface\'s among them) one account that is not a superuser may make in 10 minutes, in each process; beyond it 429 changes_throttled with Retry-After, and nothing changes. Each change is an audit entry that is always kept, so this bounds how fast one account can push older entries out of `audit.max_entries`. 0 = no limit.'),
  }).strict().default({ accepts: ['basic', 'session', 'token', 'oidc'], public_paths: GATEWAY_PUBLIC_PATHS, oidc: { audiences: ['gateway'] }, changes_per_user: 600 })
    .describe('The gateway\'s own API (/api/gateway/) and web interface.'),
  services: z.array(ServiceSchema).default([]).describe('The services behind the gateway.'),
  forward_auth: ForwardAuthSchema.optional().describe('What a proxy that asks Gatehouse for each request\'s decision must show (docs/forward-auth.md).'),
  ldap: LdapSchema.optional().describe('Accounts from an LDAP directory (docs/ldap.md). Off when absent.'),
  realms: z.array(RealmSchema).default([]).describe('OpenID Connect realms (Keycloak-compatible), see docs/oidc.md.'),
  sso: SsoProvidersSchema,
  metrics: MetricsSchema.default(metricsDefaults).describe('Prometheus metrics at /metrics (docs/metrics.md).'),
  audit: AuditSchema.default(auditDefaults).describe('The audit trail (docs/audit.md).'),
}).strict().superRefine((config, ctx) => {
  checkRealmReferences(config, ctx)
  checkTls(config.server, ctx)
  checkMetricsPort(config.server, config.metrics, ctx)
  config.gateway.public_paths.forEach((path, i) => {
    // Listing a private route would be ignored in silence (src/gateway/places.ts); say so instead.
    const names = path.endsWith('*') ? (open: string) => open.startsWith(path.slice(0, -1)) : (open: string) => open === path
    if (!GATEWAY_PUBLIC_PATHS.some(names)) {
      ctx.addIssue({ code: 'custom', path: ['gateway', 'public_paths', i], message: `names none of the gateway API's public paths (${GATEWAY_PUBLIC_PATHS.join(', ')}): configuration can close them, not open others` })
    }
  })
  if (config.server.timeouts.headers_seconds > config.server.timeouts.request_seconds) {
    ctx.addIssue({ code: 'custom', path: ['server', 'timeouts', 'headers_seconds'], message: 'must be at most server.timeouts.request_seconds' })
  }
  if (config.server.api_body_buffers_mb * 1024 * 1024 < config.server.api_body_limit_bytes) {
    // A body the API takes must fit in the memory for its bodies, or it would be refused as busy every time.
    ctx.addIssue({ code: 'custom', path: ['server', 'api_body_buffers_mb'], message: 'must hold at least one body of server.api_body_limit_bytes' })
  }
  const names = new Set<string>()
  const prefixes = new Set<string>()
  // What the realms serve themselves: a service's routes there would split a realm's paths between the two by path
  // and method (its discovery document from the service, its token endpoint from the realm). Other paths under
  // /realms/ are free for services.
  const realmPaths = config.realms.length ? [...config.realms.map((realm) => `/realms/${realm.name}/`), '/o/token/', '/o/revoke_token/', '/o/authorize/'] : []
  config.services.forEach((service, i) => {
    if (names.has(service.name)) ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service name "${service.name}"` })
    if (prefixes.has(service.prefix)) ctx.addIssue({ code: 'custom', path: ['services', i, 'prefix'], message: `duplicate prefix "${service.prefix}"` })
    checkServiceTls(service, i, ctx)
    if (service.name === 'gateway') ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: '"gateway" is the gateway\'s own API' })
    if (service.prefix.startsWith('/api/gateway/') || '/api/gateway/'.startsWith(service.prefix)) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'prefix'], message: 'must not cover /api/gateway/, the gateway\'s own API' })
    }
    if (service.prefix.startsWith('/ui/')) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'prefix'], message: 'must not be under /ui/, the web interface' })
    }
    const realmPath = '/realms/'.startsWith(service.prefix) ? '/realms/' : realmPaths.find((path) => path.startsWith(service.prefix) || service.prefix.startsWith(path))
    if (realmPath) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'prefix'], message: `must not cover${realmPath === '/realms/' ? '' : ' or be under'} ${realmPath}, which the gateway's realms serve` })
    }
    if (service.pool.per_client > service.pool.connections) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'pool', 'per_client'], message: `must be at most pool.connections (${service.pool.connections})` })
    }
    // Only against a bound that is itself valid: one refused above needs no second problem here.
    if (Number.isInteger(service.pool.websockets) && service.pool.websockets >= 1 && service.pool.websockets_per_client > service.pool.websockets) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'pool', 'websockets_per_client'], message: `must be at most pool.websockets (${service.pool.websockets})` })
    }
    names.add(service.name)
    prefixes.add(service.prefix)
  })
}).superRefine((config, ctx) => checkPathsUnderPrefixes(config, ctx), { when: () => true })

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * A service's access rules and public paths name paths under its prefix. Checked even where the file has other
 * problems (a refinement is otherwise skipped once any is found, and `config check` is to report them all at once), so
 * the values are read as written: each only once it has its shape, and none against a prefix that is itself refused.
 */
function checkPathsUnderPrefixes(config: unknown, ctx: z.RefinementCtx): void {
  const services = isRecord(config) ? config.services : undefined
  if (!Array.isArray(services)) return
  services.forEach((service: unknown, i) => {
    if (!isRecord(service) || !pathPrefix.safeParse(service.prefix).success) return
    const prefix = service.prefix as string
    const outside = (paths: unknown, path: PropertyKey[]) => {
      if (!Array.isArray(paths)) return
      paths.forEach((named: unknown, k) => {
        if (typeof named === 'string' && !named.startsWith(prefix)) ctx.addIssue({ code: 'custom', path: [...path, k], message: `must be under the service prefix ${prefix}` })
      })
    }
    if (Array.isArray(service.access)) {
      service.access.forEach((rule: unknown, j) => {
        for (const kind of ['allow', 'deny']) if (isRecord(rule) && isRecord(rule[kind])) outside(rule[kind].paths, ['services', i, 'access', j, kind, 'paths'])
      })
    }
    outside(service.public_paths, ['services', i, 'public_paths'])
  })
}

export type Config = z.output<typeof ConfigSchema>

/** An IPv4 address in its usual four-part form (not `10.1`, which parsers read differently), an IPv6 one, or a CIDR of either. */
export type ServiceConfig = z.output<typeof ServiceSchema>
export type AuthMethod = z.output<typeof AuthMethodSchema>
export type TlsConfig = z.output<typeof TlsSchema>
export type ServiceTlsConfig = z.output<typeof ServiceTlsSchema>

function checkTls(server: { port: number; public_url?: string | undefined; tls?: TlsConfig | undefined }, ctx: z.RefinementCtx): void {
  if (!server.tls) return
  // Cookies are Secure and CSRF checks compare origins by the public URL: an http one behind Gatehouse's own HTTPS breaks both.
  if (server.public_url?.startsWith('http:')) ctx.addIssue({ code: 'custom', path: ['server', 'public_url'], message: 'must be https:// when server.tls is set' })
  const redirect = server.tls.redirect_http_port
  if (redirect !== undefined && redirect !== 0 && redirect === server.port) {
    ctx.addIssue({ code: 'custom', path: ['server', 'tls', 'redirect_http_port'], message: 'must differ from server.port' })
  }
}

/** TLS settings on a plain-HTTP upstream would be ignored in silence, and a certificate without its key is no client certificate. */
function checkServiceTls(service: ServiceConfig, i: number, ctx: z.RefinementCtx): void {
  if (!service.tls) return
  if (!service.upstream.startsWith('https://')) {
    ctx.addIssue({ code: 'custom', path: ['services', i, 'tls'], message: 'only for an https:// upstream: the gateway reaches this one in plain HTTP' })
  }
  if ((service.tls.cert_file === undefined) !== (service.tls.key_file === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['services', i, 'tls', service.tls.cert_file === undefined ? 'cert_file' : 'key_file'], message: 'cert_file and key_file go together: the client certificate and its key' })
  }
}

/**
 * The metrics listener on a port the gateway's own listeners take (on the same address, or one of them on every
 * address) could never listen: `serve` would stop as if another process held the port, and be restarted for ever.
 */
function checkMetricsPort(server: { host: string; port: number; tls?: TlsConfig | undefined }, metrics: { port?: number | undefined; host: string }, ctx: z.RefinementCtx): void {
  if (!metrics.port) return
  const [ours, theirs] = [listenedAt(server.host), listenedAt(metrics.host)]
  if (!ours.includes('*') && !theirs.includes('*') && !ours.some((address) => theirs.includes(address))) return
  const taken = metrics.port === server.port ? 'server.port' : metrics.port === server.tls?.redirect_http_port ? 'server.tls.redirect_http_port' : undefined
  if (taken) ctx.addIssue({ code: 'custom', path: ['metrics', 'port'], message: `must differ from ${taken}, which listens on the same address` })
}

/** The addresses a host listens at, written one way: `*` for every address, `localhost` as both loopbacks. */
function listenedAt(host: string): string[] {
  const bare = host.replace(/^\[(.*)\]$/, '$1')
  if (bare === '0.0.0.0' || bare === '::') return ['*']
  if (bare.toLowerCase() === 'localhost') return ['127.0.0.1', '[::1]']
  // The URL parser writes an IPv6 address one way; it takes no zone (`fe80::1%eth0`), which is compared as written.
  return [(isIPv6Text(bare) ? URL.parse(`http://[${bare}]/`)?.hostname : undefined) ?? bare.toLowerCase()]
}

function checkRealmReferences(config: { services: ServiceConfig[]; realms: z.output<typeof RealmSchema>[]; gateway: { oidc: { realms?: string[] | undefined } } }, ctx: z.RefinementCtx): void {
  const realms = new Map(config.realms.map((realm) => [realm.name, realm]))
  if (realms.size !== config.realms.length) ctx.addIssue({ code: 'custom', path: ['realms'], message: 'realm names must be unique' })
  config.gateway.oidc.realms?.forEach((name, i) => {
    if (!realms.has(name)) ctx.addIssue({ code: 'custom', path: ['gateway', 'oidc', 'realms', i], message: `no realm "${name}"` })
  })
  config.services.forEach((service, i) => {
    if (!service.accepts.includes('oidc')) return
    const name = service.oidc?.realm ?? (config.realms.length === 1 ? config.realms[0]!.name : undefined)
    const realm = name === undefined ? undefined : realms.get(name)
    if (!realm) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'oidc', 'realm'], message: config.realms.length ? `name a configured realm (${[...realms.keys()].join(', ')})` : 'the service accepts oidc but no realm is configured' })
      return
    }
    const clientId = service.oidc?.client_id
    if (clientId !== undefined && !realm.clients.some((c) => c.client_id === clientId && c.standard_flow)) {
      ctx.addIssue({ code: 'custom', path: ['services', i, 'oidc', 'client_id'], message: `no client "${clientId}" with standard_flow in realm "${realm.name}"` })
    }
  })
}
