import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { configFileAsWritten, ConfigError, demoConfigFile, loadConfigFile, settingsFromEnvironment, validateConfig } from '../../src/config/load.ts'
import { tempDir } from '../helpers/gateway.ts'

function problemsOf(input: unknown): string[] {
  try {
    validateConfig(input)
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  assert.fail('expected the configuration to be refused')
}

/** A configuration file with these lines, in a directory of its own. */
function configFile(...lines: string[]): string {
  const file = join(tempDir(), 'gatehouse.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

/** The lines of a file `configFile` wrote. */
function readFileLines(file: string): string[] {
  return readFileSync(file, 'utf8').trimEnd().split('\n')
}

function fileProblemsOf(file: string, env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfigFile(file, env)
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  assert.fail('expected the configuration file to be refused')
}

/** A confidential realm client, for a secret to be substituted into. */
const REALM_WITH_SECRET = ['realms:', '  - name: platform', '    clients:', '      - client_id: reports', '        public_client: false']

describe('configuration', () => {
  it('fills every default into an empty file', () => {
    const config = validateConfig({})
    assert.equal(config.server.port, 8080)
    assert.equal(config.server.host, '127.0.0.1')
    assert.equal(config.storage.data_dir, './data')
    assert.deepEqual(config.gateway.public_paths, ['/api/', '/api/gateway/', '/api/gateway/v1/', '/api/gateway/v1/login/', '/api/gateway/v1/ui_auth/', '/api/gateway/v1/ping/'])
    assert.deepEqual(config.services, [])
  })

  it('loads the demo configuration with the documented services', () => {
    const config = loadConfigFile(demoConfigFile)
    assert.deepEqual(config.services.map((s) => [s.name, s.prefix]).slice(0, 4), [
      ['controller', '/api/controller/'], ['galaxy', '/api/galaxy/'], ['eda', '/api/eda/'], ['demo-app', '/demo-app/'],
    ])
    assert.deepEqual(config.services[0]!.public_paths, ['/api/controller/', '/api/controller/v2/', '/api/controller/v2/ping/'])
  })

  it('freezes the result', () => {
    const config = validateConfig({ services: [{ name: 'a', prefix: '/a/', upstream: 'http://127.0.0.1:1' }] })
    assert.ok(Object.isFrozen(config))
    assert.ok(Object.isFrozen(config.services[0]))
    assert.throws(() => ((config.server as { port: number }).port = 1))
  })

  it('refuses a gateway public path that names none of the gateway API\'s public paths, which configuration cannot open', () => {
    assert.deepEqual(problemsOf({ gateway: { public_paths: ['/api/gateway/v1/ping/', '/api/gateway/v1/users/', '/api/gateway/v1/users/*'] } }).map((p) => p.split(':')[0]),
      ['gateway.public_paths.1', 'gateway.public_paths.2'])
    assert.deepEqual(validateConfig({ gateway: { public_paths: ['/api/gateway/v1/*'] } }).gateway.public_paths, ['/api/gateway/v1/*'])
  })

  it('reports every problem at once, each with its path', () => {
    const problems = problemsOf({
      server: { port: 'eighty', colour: 'blue' },
      services: [
        { name: 'Bad Name', prefix: 'no-slash', upstream: 'ftp://x', accepts: ['kerberos'] },
        { name: 'dup', prefix: '/d/', upstream: 'http://127.0.0.1:1', unauthenticated: 'maybe' },
        { name: 'dup', prefix: '/d/', upstream: 'http://127.0.0.1:1', public_paths: ['/elsewhere/'] },
        { name: 'gw', prefix: '/api/gateway/', upstream: 'http://127.0.0.1:1' },
      ],
    })
    const paths = problems.map((p) => p.split(':')[0])
    for (const expected of ['server.port', 'server', 'services.0.name', 'services.0.prefix', 'services.0.upstream', 'services.0.accepts.0', 'services.1.unauthenticated']) {
      assert.ok(paths.includes(expected), `${expected} in ${JSON.stringify(problems)}`)
    }
    const more = problemsOf({ services: [
      { name: 'dup', prefix: '/d/', upstream: 'http://127.0.0.1:1' },
      { name: 'dup', prefix: '/d/', upstream: 'http://127.0.0.1:1', public_paths: ['/elsewhere/'] },
      { name: 'gw', prefix: '/api/gateway/', upstream: 'http://127.0.0.1:1' },
      { name: 'root', prefix: '/api/', upstream: 'http://127.0.0.1:1' },
    ] }).map((p) => p.split(':')[0])
    for (const expected of ['services.1.name', 'services.1.prefix', 'services.1.public_paths.0', 'services.2.prefix', 'services.3.prefix']) {
      assert.ok(more.includes(expected), `${expected} in ${JSON.stringify(more)}`)
    }
  })

  it('refuses a URL its pattern matched that the URL parser does not take, naming the key, with the other problems', () => {
    const service = (upstream: string, origins: string[] = ['https://app.example.com']) => ({ name: 'a', prefix: '/a/', upstream, cors: { allowed_origins: origins } })
    for (const upstream of ['http://127.0.0.1:99999/', 'http://127.0.0.1:abc/', 'http://[1]/']) {
      assert.deepEqual(problemsOf({ services: [service(upstream)] }).map((p) => p.split(':')[0]), ['services.0.upstream'], upstream)
    }
    // A transform past the check used to throw inside the parse, and the file's other problems went unsaid.
    const origins = problemsOf({ services: [{ ...service('http://127.0.0.1:1/', ['https://x:99999', 'https://[1]', 'https://ok.example']), strip_prefix: 'yes' }] })
    assert.deepEqual(origins.map((p) => p.split(':')[0]).sort(), ['services.0.cors.allowed_origins.0', 'services.0.cors.allowed_origins.1', 'services.0.strip_prefix'])
    const ldap = (servers: string[]) => ({ ldap: { servers, bind_dn: 'cn=gatehouse,dc=example,dc=com', bind_password: 'pw', user_search: { base: 'dc=example,dc=com' } } })
    assert.deepEqual(problemsOf(ldap(['ldap://127.0.0.1:99999', 'ldap://[1]', 'ldaps://ldap.example.com:99999', 'ldaps://ldap.example.com:636'])).map((p) => p.split(':')[0]),
      ['ldap.servers.0', 'ldap.servers.1', 'ldap.servers.2'])
    assert.equal(validateConfig({ services: [service('http://127.0.0.1:65535/base', ['https://[::1]:8443'])] }).services[0]!.cors!.allowed_origins[0], 'https://[::1]:8443')
  })

  it('refuses a group DN of one part, which a DN written unquoted in a YAML list in brackets falls apart into', () => {
    const file = configFile(
      'ldap:',
      '  servers: [ldaps://ldap.example.com]',
      '  bind_dn: cn=gatehouse,ou=services,dc=example,dc=com',
      '  bind_password: pw',
      '  user_search: { base: "ou=people,dc=example,dc=com" }',
      '  group_search: { base: "ou=groups,dc=example,dc=com" }',
      '  superuser_groups: [cn=gatehouse-admins,ou=groups,dc=example,dc=com]',
      '  named_groups: { developers: ["cn=developers,ou=groups,dc=example,dc=com"] }',
      '  memberships:',
      '    - { organization: Platform, groups: [cn=platform,ou=groups,dc=example,dc=com] }',
    )
    const problems = fileProblemsOf(file, {})
    assert.deepEqual(problems.map((p) => p.split(':')[0]), [
      'ldap.superuser_groups.0', 'ldap.superuser_groups.1', 'ldap.superuser_groups.2', 'ldap.superuser_groups.3',
      'ldap.memberships.0.groups.0', 'ldap.memberships.0.groups.1', 'ldap.memberships.0.groups.2', 'ldap.memberships.0.groups.3',
    ])
    assert.match(problems[0]!, /in a YAML list in brackets, commas separate the items, so quote each DN/)
    // Quoted, or with its commas escaped within an RDN, a DN is whole.
    const quoted = loadConfigFile(configFile(...readFileLines(file).map((line) => line.replace(/\[(cn=[^\]"]*)\]/, '["$1"]')), '  auditor_groups: ["cn=ops\\\\, admins,ou=groups,dc=example,dc=com"]'), {})
    assert.deepEqual(quoted.ldap!.superuser_groups, ['cn=gatehouse-admins,ou=groups,dc=example,dc=com'])
    assert.deepEqual(quoted.ldap!.memberships[0]!.groups, ['cn=platform,ou=groups,dc=example,dc=com'])
    assert.deepEqual(quoted.ldap!.auditor_groups, ['cn=ops\\, admins,ou=groups,dc=example,dc=com'])
    const escapedOnly = { servers: ['ldaps://ldap.example.com'], bind_dn: 'cn=gatehouse,dc=example,dc=com', bind_password: 'pw', user_search: { base: 'dc=example,dc=com' }, group_search: { base: 'dc=example,dc=com' }, auditor_groups: ['cn=ops\\, admins', 'cn=ops\\2C admins'] }
    assert.deepEqual(problemsOf({ ldap: escapedOnly }).map((p) => p.split(':')[0]), ['ldap.auditor_groups.0', 'ldap.auditor_groups.1'], 'an escaped comma separates no RDNs')
  })

  it('names a zoned IPv6 listening address beside metrics.port, which the URL parser does not take', () => {
    assert.equal(validateConfig({ server: { host: 'fe80::1%eth0' }, metrics: { port: 9100 } }).server.host, 'fe80::1%eth0')
    assert.deepEqual(problemsOf({ server: { host: 'FE80::1%eth0', port: 9100 }, metrics: { host: 'fe80::1%eth0', port: 9100 } }).map((p) => p.split(':')[0]), ['metrics.port'])
  })

  it('reports a check that throws as a problem of the file, not as the exception alone', () => {
    const file = configFile('server:', '  port: 8080')
    const input = { get server(): never { throw new TypeError('Invalid URL') } }
    assert.throws(() => validateConfig(input, file), (error: unknown) => error instanceof ConfigError && error.message.startsWith(`${file}: could not be checked (Invalid URL)`))
  })

  it('reports YAML syntax errors and unreadable files instead of crashing', () => {
    const dir = tempDir()
    const broken = join(dir, 'broken.yaml')
    writeFileSync(broken, 'server:\n  port: [1,\n')
    assert.throws(() => loadConfigFile(broken), (error: unknown) => error instanceof ConfigError && /YAML/.test(error.problems[0]!))
    const duplicated = join(dir, 'dup.yaml')
    writeFileSync(duplicated, 'server:\n  port: 1\n  port: 2\n')
    assert.throws(() => loadConfigFile(duplicated), ConfigError)
    assert.throws(() => loadConfigFile(join(dir, 'missing.yaml')), (error: unknown) => error instanceof ConfigError && /cannot read/.test(error.problems[0]!))
  })

  it('merges shared settings with <<, explicit keys and earlier merged mappings winning, and leaves top-level x- keys out', () => {
    const file = configFile(
      'x-defaults: &defaults',
      '  accepts: [basic, token]',
      '  upstream: http://127.0.0.1:9001',
      '  strip_prefix: true',
      'x-other: &other',
      '  upstream: http://127.0.0.1:9002',
      '  public_paths: [/b/ping/]',
      'services:',
      '  - { <<: *defaults, name: a, prefix: /a/, accepts: [session] }',
      '  - { <<: [*other, *defaults], name: b, prefix: /b/ }',
    )
    const config = loadConfigFile(file, {})
    assert.deepEqual(config.services.map(({ name, accepts, upstream, strip_prefix, public_paths }) => ({ name, accepts, upstream, strip_prefix, public_paths })), [
      { name: 'a', accepts: ['session'], upstream: 'http://127.0.0.1:9001', strip_prefix: true, public_paths: [] },
      { name: 'b', accepts: ['basic', 'token'], upstream: 'http://127.0.0.1:9002', strip_prefix: true, public_paths: ['/b/ping/'] },
    ])
    assert.equal(Object.hasOwn(config, 'x-defaults'), false)
  })

  it('still refuses unknown keys that are not top-level x- keys, and x- keys inside a setting', () => {
    const file = configFile('y-defaults: {}', 'services:', '  - { name: a, prefix: /a/, upstream: "http://127.0.0.1:9001", x-note: shared }')
    assert.deepEqual(fileProblemsOf(file, {}).sort(), ['(top level): Unrecognized key: "y-defaults"', 'services.0: Unrecognized key: "x-note"'])
  })

  it('names the line and column of a YAML syntax error', () => {
    const dir = tempDir()
    const misindented = join(dir, 'misindented.yaml')
    writeFileSync(misindented, 'server:\n  port: 8080\n sevices: []\n')
    assert.throws(() => loadConfigFile(misindented), (error: unknown) => error instanceof ConfigError && /^YAML, line 3, column \d+: /.test(error.problems[0]!))
    const duplicated = join(dir, 'dup.yaml')
    writeFileSync(duplicated, 'server:\n  port: 1\n  port: 2\n')
    assert.throws(() => loadConfigFile(duplicated), (error: unknown) => error instanceof ConfigError && /^YAML, line 3, column 3: /.test(error.problems[0]!))
  })

  it('refuses a tag YAML does not define, which the parser would take as the text after it (a secret written !env NAME)', () => {
    for (const tag of ['!env', '!secret', '!include']) {
      const file = configFile(...REALM_WITH_SECRET, `        secret: ${tag} REPORTS_CLIENT_SECRET`)
      assert.throws(() => loadConfigFile(file, { REPORTS_CLIENT_SECRET: 'sixteen-or-more-characters' }), (error: unknown) => error instanceof ConfigError
        && error.problems.length === 1 && error.problems[0] === `YAML, line 6, column 17: the tag ${tag} is not one Gatehouse reads (it would take the text after it as the value); a value from the environment is written "\${NAME}"`)
    }
    // YAML's own tags are read as YAML reads them.
    assert.equal(loadConfigFile(configFile('server:', '  public_url: !!str https://gw.example.test'), {}).server.public_url, 'https://gw.example.test')
  })

  it('takes a service\'s unauthenticated: 401 written unquoted, which YAML reads as a number, and no other number', () => {
    const file = (value: string) => configFile('services:', '  - { name: svc, prefix: /svc/, upstream: "http://127.0.0.1:1", unauthenticated: ' + value + ' }')
    assert.equal(loadConfigFile(file('401'), {}).services[0]!.unauthenticated, '401')
    assert.equal(loadConfigFile(file('"401"'), {}).services[0]!.unauthenticated, '401')
    assert.throws(() => loadConfigFile(file('403'), {}), (error: unknown) => error instanceof ConfigError && /^services\.0\.unauthenticated: /.test(error.problems[0]!))
  })

  it('refuses a second document in the file, saying where it begins', () => {
    const file = configFile('server:', '  port: 8080', '---', 'services: []')
    assert.throws(() => loadConfigFile(file, {}), (error: unknown) => error instanceof ConfigError
      && error.problems[0] === 'YAML, line 3, column 1: a second document begins here (a line "---" after settings); a configuration file holds one')
  })

  it('suggests the key a misspelt one was probably meant to be, at any depth', () => {
    const service = { name: 'a', prefix: '/a/', upstream: 'http://a.internal' }
    assert.deepEqual(problemsOf({ sevices: [] }), ['(top level): Unrecognized key: "sevices" (did you mean "services"?)'])
    assert.deepEqual(problemsOf({ services: [service, { ...service, name: 'b', prefix: '/b/', timeouts: { conect_seconds: 1 } }] }),
      ['services.1.timeouts: Unrecognized key: "conect_seconds" (did you mean "connect_seconds"?)'])
    assert.deepEqual(problemsOf({ server: { trusted_proxies: [], frobnicate: 1 } }), ['server: Unrecognized key: "frobnicate"'])
  })

  it('names at most a few unknown keys, and only those that read as keys, so a wrong file named by mistake is not echoed', () => {
    // `config check /etc/shadow`: each line ending in a colon parses as a key holding a password hash.
    const shadow = Object.fromEntries(['root:$y$j9T$abcdefghijklmnop$0123456789:19000:0:99999:7::', 'daemon:*:19000:0:99999:7::', 'bin:*:19000:0:99999:7::'].map((line) => [line, null]))
    const [problem, ...more] = problemsOf(shadow)
    assert.equal(more.length, 0)
    assert.doesNotMatch(problem!, /\$y\$|root|daemon/)
    assert.match(problem!, /^\(top level\): 3 unrecognized keys/)
    const many = Object.fromEntries(['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf'].map((key) => [key, 1]))
    assert.deepEqual(problemsOf(many), ['(top level): Unrecognized keys: "alpha", "bravo", "charlie", "delta", "echo" and 2 more'])
  })

  it('fills the TLS, shutdown and readiness defaults', () => {
    const config = validateConfig({ server: { tls: { cert_file: 'tls.crt', key_file: 'tls.key' } } })
    assert.deepEqual(config.server.tls, { cert_file: 'tls.crt', key_file: 'tls.key', watch: true, hsts_max_age_seconds: 31536000, hsts_include_subdomains: false })
    assert.equal(config.server.shutdown_grace_seconds, 25)
    assert.equal(config.server.readiness_timeout_ms, 800)
    assert.equal(validateConfig({}).server.tls, undefined)
  })

  it('refuses TLS settings that cannot work together', () => {
    const tls = { cert_file: 'tls.crt', key_file: 'tls.key' }
    assert.deepEqual(problemsOf({ server: { public_url: 'http://gateway.example.com', tls } }), ['server.public_url: must be https:// when server.tls is set'])
    assert.deepEqual(problemsOf({ server: { port: 8443, tls: { ...tls, redirect_http_port: 8443 } } }), ['server.tls.redirect_http_port: must differ from server.port'])
    assert.deepEqual(problemsOf({ server: { tls: { cert_file: 'tls.crt' }, shutdown_grace_seconds: -1, readiness_timeout_ms: 5 } }).map((p) => p.split(':')[0]),
      ['server.tls.key_file', 'server.shutdown_grace_seconds', 'server.readiness_timeout_ms'])
  })

  it('refuses a metrics port that one of the gateway\'s own listeners takes on the same address', () => {
    assert.deepEqual(problemsOf({ server: { port: 9100 }, metrics: { port: 9100 } }), ['metrics.port: must differ from server.port, which listens on the same address'])
    assert.deepEqual(problemsOf({ server: { port: 8443, tls: { cert_file: 'tls.crt', key_file: 'tls.key', redirect_http_port: 8080 } }, metrics: { port: 8080 } }),
      ['metrics.port: must differ from server.tls.redirect_http_port, which listens on the same address'])
    assert.deepEqual(problemsOf({ server: { host: '0.0.0.0', port: 9100 }, metrics: { port: 9100 } }), ['metrics.port: must differ from server.port, which listens on the same address'])
    // The same address written another way.
    for (const [ours, theirs] of [['127.0.0.1', 'localhost'], ['::1', '0:0::1'], ['[::1]', 'LOCALHOST']]) {
      assert.deepEqual(problemsOf({ server: { host: ours, port: 9100 }, metrics: { host: theirs, port: 9100 } }), ['metrics.port: must differ from server.port, which listens on the same address'], `${ours} ${theirs}`)
    }
    // Another address, or a port picked when listening, is no clash.
    assert.equal(validateConfig({ server: { host: '10.0.0.5', port: 9100 }, metrics: { port: 9100 } }).metrics.port, 9100)
    assert.equal(validateConfig({ server: { port: 0 }, metrics: { port: 0 } }).metrics.port, 0)
  })

  it('refuses a trusted origin that is no http(s) origin, whose opaque origin no request\'s Origin matches', () => {
    for (const origin of ['app.example.com:8443', 'ftp://files.example.com', 'javascript:alert(1)']) {
      assert.deepEqual(problemsOf({ server: { trusted_origins: [origin] } }), ['server.trusted_origins.0: must be an origin: http(s)://host[:port]'], origin)
    }
    const origins = ['https://app.example.com', 'http://127.0.0.1:3000', 'https://[::1]:8443', 'https://gw.example.com/']
    assert.deepEqual(validateConfig({ server: { trusted_origins: origins } }).server.trusted_origins, origins)
  })

  it('refuses a trusted origin with a path, query, fragment or user, which would trust the whole site it names', () => {
    for (const origin of ['http://evil.example/path', 'https://app.example.com/ui/', 'https://app.example.com?x', 'https://app.example.com#', 'https://user@app.example.com']) {
      assert.deepEqual(problemsOf({ server: { trusted_origins: [origin] } }), ['server.trusted_origins.0: must be an origin: http(s)://host[:port], nothing after it (no path, query, fragment or user)'], origin)
    }
  })

  it('takes a wildcard trusted origin only as Django matches one, https://*.domain[:port], and refuses what would never match', () => {
    const message = 'server.trusted_origins.0: a wildcard must be the whole first label of the host: http(s)://*.domain[:port], the domain a name of two labels or more (not an address, nor a public suffix such as com, co.uk or github.io, which every site under it would pass)'
    const publicSuffixes = ['https://*.com', 'https://*.internal:8443', 'https://*.co.uk', 'https://*.CO.UK', 'https://*.github.io', 'http://*.s3.amazonaws.com', 'https://*.xn--p1ai', 'https://*.gov.uk']
    for (const origin of ['https://a.*.example.com', 'https://*example.com', 'https://*', 'https://*.*.example.com', 'https://*.example.com/app', 'https://*.example.com@evil.example', ...publicSuffixes]) {
      assert.deepEqual(problemsOf({ server: { trusted_origins: [origin] } }), [message], origin)
    }
    const origins = ['https://*.example.com', 'http://*.dev.example.com:8080/', 'http://*.localhost:3000', 'https://*.example.co.uk', 'https://*.team.github.io', 'https://*.corp.internal']
    assert.deepEqual(validateConfig({ server: { trusted_origins: origins } }).server.trusted_origins, origins)
  })

  it('refuses a public path with a "*" before its end, which matched only the path spelt with it', () => {
    const service = (publicPaths: string[]) => ({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', public_paths: publicPaths }] })
    for (const path of ['/svc/*.css', '/svc/*/static/', '/svc/**']) {
      assert.deepEqual(problemsOf(service([path])), ['services.0.public_paths.0: must be an absolute path, optionally ending in "*" to match everything under it (a "*" nowhere else)'], path)
    }
    assert.equal(problemsOf({ gateway: { public_paths: ['/api/gateway/v1/*/x'] } })[0], 'gateway.public_paths.0: must be an absolute path, optionally ending in "*" to match everything under it (a "*" nowhere else)')
    assert.deepEqual(validateConfig(service(['/svc/static/*', '/svc/health'])).services[0]!.public_paths, ['/svc/static/*', '/svc/health'])
  })

  it('refuses a service prefix with a "." or ".." segment, which no request reaches (the gateway refuses their paths)', () => {
    const service = (prefix: string) => ({ name: 'svc', prefix, upstream: 'http://127.0.0.1:1' })
    for (const prefix of ['/a/../', '/./', '/a/./b/', '/../']) {
      assert.deepEqual(problemsOf({ services: [service(prefix)] }), ['services.0.prefix: must start and end with "/" and contain only plain path segments (not "." or "..")'], prefix)
    }
    for (const prefix of ['/.well-known/', '/a/.../', '/v1.2/', '/..a/']) assert.equal(validateConfig({ services: [service(prefix)] }).services[0]!.prefix, prefix)
  })

  it('refuses a service prefix that covers the realms or shares a path with a realm or the OAuth2 endpoints, and takes one elsewhere under /realms/', () => {
    const service = (prefix: string) => ({ name: 'svc', prefix, upstream: 'http://127.0.0.1:1' })
    const realms = [{ name: 'platform', clients: [{ client_id: 'cli', public_client: true, direct_access_grants: true }] }]
    assert.deepEqual(problemsOf({ services: [service('/realms/')] }), ['services.0.prefix: must not cover /realms/, which the gateway\'s realms serve'])
    for (const [prefix, path] of [['/realms/platform/', '/realms/platform/'], ['/realms/platform/protocol/', '/realms/platform/'], ['/o/', '/o/token/'], ['/o/token/x/', '/o/token/']]) {
      assert.deepEqual(problemsOf({ realms, services: [service(prefix)] }), [`services.0.prefix: must not cover or be under ${path}, which the gateway's realms serve`], prefix)
    }
    assert.equal(validateConfig({ realms, services: [service('/realms/nested/')] }).services[0]!.prefix, '/realms/nested/')
    assert.equal(validateConfig({ realms, services: [service('/o/applications/')] }).services[0]!.prefix, '/o/applications/')
    assert.equal(validateConfig({ services: [service('/o/')] }).services[0]!.prefix, '/o/', 'without realms, no OAuth2 endpoints')
  })

  it('refuses a public URL with a user, a password, a query or a fragment, which the issuer and every written path would carry', () => {
    for (const url of ['https://ops:hunter2-9f1c@gateway.example.com', 'https://ops@gateway.example.com', 'https://gateway.example.com/edge?x=1', 'https://gateway.example.com/#top']) {
      const problems = problemsOf({ server: { public_url: url } })
      assert.deepEqual(problems, ['server.public_url: must be scheme://host[:port][/path], without a user, password, query or fragment'], url)
      assert.doesNotMatch(problems.join('\n'), /hunter2/)
    }
    assert.equal(validateConfig({ server: { public_url: 'https://gateway.example.com:8443/edge/' } }).server.public_url, 'https://gateway.example.com:8443/edge/')
  })

  it('refuses an SSO issuer with a user, a password, a query or a fragment, which no issuer has', () => {
    const provider = { name: 'corp', label: 'Corp', client_id: 'gatehouse' }
    for (const issuer of ['https://ops:hunter2-9f1c@idp.example.com', 'https://idp.example.com/realms/corp?x=1', 'https://idp.example.com/#top']) {
      const problems = problemsOf({ sso: [{ ...provider, issuer }] })
      assert.deepEqual(problems, ['sso.0.issuer: must be scheme://host[:port][/path], without a user, password, query or fragment'], issuer)
    }
    assert.equal(validateConfig({ sso: [{ ...provider, issuer: 'https://idp.example.com/realms/corp' }] }).sso[0]!.issuer, 'https://idp.example.com/realms/corp')
  })

  it('fills the edge defaults: no trusted proxies, client timeouts, a connection cap and shared upstream pools', () => {
    const config = validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:9000' }] })
    assert.deepEqual(config.server.trusted_proxies, [])
    assert.deepEqual(config.server.timeouts, { headers_seconds: 10, request_seconds: 300, send_seconds: 60 })
    assert.equal(config.server.max_connections, 10_000)
    assert.deepEqual(config.services[0]!.pool, { connections: 128, per_client: 16, wait_seconds: 5, body_buffer_kb: 64, websockets: 1024, websockets_per_client: 64, websockets_per_user: 64 })
    assert.deepEqual(validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:9000', pool: { connections: 32 } }] }).services[0]!.pool,
      { connections: 32, per_client: 16, wait_seconds: 5, body_buffer_kb: 64, websockets: 1024, websockets_per_client: 64, websockets_per_user: 64 })
  })

  it('refuses metrics.allow_from entries that are no address or CIDR at load, as it refuses trusted_proxies entries', () => {
    assert.deepEqual(problemsOf({ metrics: { allow_from: ['10.0.0.0/8', '127.0.0.1', '::ffff:10.0.0.0/104', '10.0.0.0/40', '::/200', '10.1/8'] } }).map((p) => p.split(':')[0]),
      ['metrics.allow_from.3', 'metrics.allow_from.4', 'metrics.allow_from.5'])
  })

  it('refuses trust_proxy with a message naming trusted_proxies, and entries that are no address or CIDR', () => {
    const [problem] = problemsOf({ server: { trust_proxy: true } })
    assert.match(problem!, /^server\.trust_proxy: replaced by server\.trusted_proxies/)
    assert.deepEqual(problemsOf({ server: { trusted_proxies: ['10.0.0.0/8', '::1', '2001:db8::/32', '10.0.0.0/33', 'proxy.example', '10.1'] } }).map((p) => p.split(':')[0]),
      ['server.trusted_proxies.3', 'server.trusted_proxies.4', 'server.trusted_proxies.5'])
    assert.deepEqual(problemsOf({ server: { timeouts: { headers_seconds: 20, request_seconds: 10 } } }), ['server.timeouts.headers_seconds: must be at most server.timeouts.request_seconds'])
    // Memory for the API's bodies that could not hold one body the API takes would refuse that body every time.
    assert.deepEqual(problemsOf({ server: { api_body_limit_bytes: 3 * 1024 * 1024, api_body_buffers_mb: 2 } }), ['server.api_body_buffers_mb: must hold at least one body of server.api_body_limit_bytes'])
    assert.equal(validateConfig({ server: { api_body_limit_bytes: 2 * 1024 * 1024, api_body_buffers_mb: 2 } }).server.api_body_buffers_mb, 2)
    assert.deepEqual(problemsOf({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:9000', pool: { connections: 4, per_client: 8 } }] }),
      ['services.0.pool.per_client: must be at most pool.connections (4)'])
  })

  it('refuses bounds on a service\'s WebSockets that are not positive whole numbers, and a client\'s share above the whole', () => {
    const pool = (bounds: Record<string, unknown>) => ({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:9000', pool: bounds }] })
    for (const name of ['websockets', 'websockets_per_client', 'websockets_per_user']) {
      for (const value of [0, -1, 1.5, '8']) {
        const problems = problemsOf(pool({ [name]: value }))
        assert.equal(problems.length, 1, `${name}: ${value}`)
        assert.match(problems[0]!, new RegExp(`^services\\.0\\.pool\\.${name}: `), `${name}: ${value}`)
      }
    }
    assert.match(problemsOf(pool({ websockets: 0 }))[0]!, />=\s*1/)
    assert.deepEqual(problemsOf(pool({ websockets: 4, websockets_per_client: 8 })), ['services.0.pool.websockets_per_client: must be at most pool.websockets (4)'])
    // A total below the default share, the share not set: the share follows it down.
    assert.equal(validateConfig(pool({ websockets: 32 })).services[0]!.pool.websockets_per_client, 32)
    assert.equal(validateConfig(pool({ websockets: 100 })).services[0]!.pool.websockets_per_client, 64)
    // A user's share is one client's unless set: from many addresses, one account takes no more than from one.
    assert.equal(validateConfig(pool({ websockets: 32 })).services[0]!.pool.websockets_per_user, 32)
    assert.equal(validateConfig(pool({ websockets: 100, websockets_per_client: 8 })).services[0]!.pool.websockets_per_user, 8)
    assert.equal(validateConfig(pool({ websockets: 100, websockets_per_user: 90 })).services[0]!.pool.websockets_per_user, 90)
    assert.deepEqual(validateConfig(pool({ websockets: 4, websockets_per_client: 4, websockets_per_user: 2 })).services[0]!.pool,
      { connections: 128, per_client: 16, wait_seconds: 5, body_buffer_kb: 64, websockets: 4, websockets_per_client: 4, websockets_per_user: 2 })
  })

  it('refuses removed request headers that are no field name, or a star anywhere but at the end', () => {
    const service = { name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:9000', remove_request_headers: ['X-Role', 'X-Corp-*', 'X Role', '*-User', ''] }
    assert.deepEqual(problemsOf({ server: { remove_request_headers: ['Remote_User', 'X:Y'] }, services: [service] }).map((p) => p.split(':')[0]),
      ['server.remove_request_headers.1', 'services.0.remove_request_headers.2', 'services.0.remove_request_headers.3', 'services.0.remove_request_headers.4'])
    assert.deepEqual(validateConfig({}).server.remove_request_headers, [])
  })

  describe('environment variables in string values', () => {
    it('substitutes ${NAME} and ${NAME:-default} at any depth, in values and list items, and never in keys', () => {
      const file = configFile(
        'server:', '  public_url: https://${GATEWAY_HOST}', '  trusted_origins: ["https://${GATEWAY_HOST}:${ALT_PORT:-8443}", "https://static.${DOMAIN:-example.com}"]',
        'services:', '  - { name: "${SERVICE}", prefix: /svc/, upstream: "http://${UPSTREAM_HOST:-127.0.0.1}:9000/base" }',
        ...REALM_WITH_SECRET, '        secret: ${REPORTS_SECRET}',
      )
      const env = { GATEWAY_HOST: 'gw.example.org', SERVICE: 'from-env', UPSTREAM_HOST: 'svc.internal', REPORTS_SECRET: 'sixteen-or-more-characters', DOMAIN: '' }
      const config = loadConfigFile(file, env)
      assert.equal(config.server.public_url, 'https://gw.example.org')
      assert.deepEqual(config.server.trusted_origins, ['https://gw.example.org:8443', 'https://static.example.com'])
      assert.deepEqual([config.services[0]!.name, config.services[0]!.upstream], ['from-env', 'http://svc.internal:9000/base'])
      assert.equal(config.realms[0]!.clients[0]!.secret, 'sixteen-or-more-characters')
      assert.deepEqual(fileProblemsOf(configFile('storage:', '  ${NOT_A_KEY}: ./elsewhere'), { NOT_A_KEY: 'data_dir' }), ['storage: Unrecognized key: "${NOT_A_KEY}"'])
    })

    it('takes a value as it is, after parsing: YAML in it changes nothing, and a ${ in it is not substituted again', () => {
      const secret = 'a: [b, "c" # d\n  e: ${OTHER} $${F}'
      const config = loadConfigFile(configFile(...REALM_WITH_SECRET, '        secret: ${REPORTS_SECRET}'), { REPORTS_SECRET: secret, OTHER: 'substituted' })
      assert.equal(config.realms[0]!.clients[0]!.secret, secret)
    })

    it('writes $${ for a literal ${, leaves every other $ as it is, and takes an empty default', () => {
      const config = loadConfigFile(configFile(...REALM_WITH_SECRET, '        secret: "pa$$word-$HOME-$${NOT_SUBSTITUTED}-${EMPTY:-}$"'), { NOT_SUBSTITUTED: 'x', HOME: '/root' })
      assert.equal(config.realms[0]!.clients[0]!.secret, 'pa$$word-$HOME-${NOT_SUBSTITUTED}-$')
    })

    it('reports every variable that is not set or empty, naming it and the setting, never a value, with the other settings\' problems', () => {
      const file = configFile(
        'server:', '  public_url: https://${GATEWAY_HOST}', '  port: -1',
        ...REALM_WITH_SECRET, '        secret: ${REPORTS_SECRET}', '        redirect_uris: ["https://${APP_HOST}/*", "https://${GATEWAY_HOST}/*", "${APP_URL}"]',
      )
      const problems = fileProblemsOf(file, { GATEWAY_HOST: 'gw-host-value', REPORTS_SECRET: '' })
      // Whatever the schema would say of the references themselves (a secret too short, no URL) waits for their values.
      assert.deepEqual(problems, [
        'realms.0.clients.0.secret: the environment variable REPORTS_SECRET is not set or empty (${REPORTS_SECRET:-default} would give a default)',
        'realms.0.clients.0.redirect_uris.0: the environment variable APP_HOST is not set or empty (${APP_HOST:-default} would give a default)',
        'realms.0.clients.0.redirect_uris.2: the environment variable APP_URL is not set or empty (${APP_URL:-default} would give a default)',
        'server.port: Too small: expected number to be >=0',
      ])
      assert.doesNotMatch(problems.join('\n'), /gw-host-value/)
    })

    it('takes only the environment\'s own variables, not what every object inherits', () => {
      const file = configFile(...REALM_WITH_SECRET, '        secret: ${constructor}', '        redirect_uris: ["https://${__proto__:-app.example}/*"]')
      assert.deepEqual(fileProblemsOf(file, {}), ['realms.0.clients.0.secret: the environment variable constructor is not set or empty (${constructor:-default} would give a default)'])
      const config = loadConfigFile(file, { constructor: 'sixteen-or-more-characters' })
      assert.deepEqual([config.realms[0]!.clients[0]!.secret, config.realms[0]!.clients[0]!.redirect_uris], ['sixteen-or-more-characters', ['https://app.example/*']])
    })

    it('refuses a ${ that starts no substitution, once a setting however many it holds, without repeating the text around it', () => {
      const file = configFile(...REALM_WITH_SECRET, '        secret: "s3cr3t-${1ST}-${NAME:?no}-${UNCLOSED"', '        redirect_uris: ["https://app/${' + '${'.repeat(20_000) + '"]')
      const problems = fileProblemsOf(file, { NAME: 'x' })
      assert.equal(problems.length, 2, problems.join('\n'))
      assert.match(problems[1]!, /^realms\.0\.clients\.0\.redirect_uris\.0: "\$\{" starts no substitution/)
      for (const problem of problems) {
        assert.match(problem, /^realms\.0\.clients\.0\.(secret|redirect_uris\.0): "\$\{" starts no substitution: write \$\{NAME\} or \$\{NAME:-default\}/)
        assert.doesNotMatch(problem, /s3cr3t|1ST|UNCLOSED|:\?no/)
      }
    })

    it('refuses a reference nested in a default, which would otherwise give its text as the value, set or not, without repeating it', () => {
      const file = configFile(...REALM_WITH_SECRET, '        secret: "${REPORTS_SECRET:-${FALLBACK_SECRET}}"', '        redirect_uris: ["https://${APP_HOST:-$${LITERAL}}/*"]')
      const problems = fileProblemsOf(file, { FALLBACK_SECRET: 'sixteen-or-more-characters' })
      assert.deepEqual(problems, [
        'realms.0.clients.0.secret: the default of ${REPORTS_SECRET:-...} holds "${": references do not nest; write a default without one',
        'realms.0.clients.0.redirect_uris.0: the default of ${APP_HOST:-...} holds "${": references do not nest; write a default without one',
      ])
      assert.doesNotMatch(problems.join('\n'), /FALLBACK|LITERAL|sixteen/)
      // Whether or not the variable is set: the file is wrong either way.
      assert.deepEqual(fileProblemsOf(file, { REPORTS_SECRET: 'sixteen-or-more-characters', APP_HOST: 'app.example' }), problems)
    })

    it('gives text, which a number or a true/false setting refuses with its path, saying why', () => {
      const file = configFile('server:', '  port: ${PORT}', '  host: 9090', 'metrics:', '  enabled: "${METRICS:-true}"')
      assert.deepEqual(fileProblemsOf(file, { PORT: '9090' }), [
        'server.host: Invalid input: expected string, received number',
        'server.port: Invalid input: expected number, received string (${NAME} gives text: write numbers and true or false in the file)',
        'metrics.enabled: Invalid input: expected boolean, received string (${NAME} gives text: write numbers and true or false in the file)',
      ])
    })

    it('knows which settings the environment gives whole, and which the file gives a part of', () => {
      const file = configFile(
        'ldap:', '  bind_password: ${LDAP_PASSWORD}',
        'sso:', '  - { client_secret: "${SSO_SECRET:-written-default}" }', '  - { client_secret: "prefix-${SSO_SECRET}" }', '  - { client_secret: "${A}${B}" }', '  - { client_secret: "$${C}" }',
      )
      assert.deepEqual([...settingsFromEnvironment(file)].sort(), ['ldap.bind_password', 'sso.2.client_secret'])
    })

    it('reads a file changed since it was last loaded as it is now, not as it was', () => {
      const file = configFile('server:', '  port: 9090', 'storage:', '  database: ${DATABASE_URL}')
      assert.equal(loadConfigFile(file, { DATABASE_URL: 'postgres://u:p@db/gatehouse' }).server.port, 9090)
      assert.deepEqual([...settingsFromEnvironment(file)], ['storage.database'])
      writeFileSync(file, 'server:\n  port: 9091\nstorage:\n  database: postgres://u:written@db/gatehouse\n')
      assert.deepEqual([...settingsFromEnvironment(file)], [])
      assert.deepEqual(configFileAsWritten(file), { server: { port: 9091 }, storage: { database: 'postgres://u:written@db/gatehouse' } })
      assert.equal(loadConfigFile(file, {}).server.port, 9091)
      writeFileSync(file, 'server: [\n')
      assert.equal(configFileAsWritten(file), undefined)
      assert.deepEqual([...settingsFromEnvironment(file)], [])
    })
  })
})
