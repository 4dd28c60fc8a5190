import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { describe, it } from 'node:test'
import { ConfigError, demoConfigFile, loadConfigFile, validateConfig } from '../../src/config/load.ts'
import { scopedRole } from '../../src/oidc/claims.ts'

function problems(input: unknown): string[] {
  try {
    validateConfig(input)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

const service = { name: 'app', prefix: '/app/', upstream: 'http://127.0.0.1:9', accepts: ['oidc'] }

describe('realms configuration', () => {
  it('gives the demo realm Keycloak\'s defaults and a public client with direct access grants', () => {
    const config = loadConfigFile(demoConfigFile)
    const realm = config.realms.find((r) => r.name === 'platform')!
    assert.equal(realm.access_token_seconds, 300)
    assert.equal(realm.sso_session_idle_seconds, 1800)
    assert.equal(realm.sso_session_max_seconds, 36000)
    assert.equal(realm.grants_per_user_limit, 1000)
    const client = realm.clients.find((c) => c.client_id === 'end-users')!
    assert.equal(client.public_client, true)
    assert.equal(client.direct_access_grants, true)
    assert.equal(client.refresh_token_rotation, false)
    assert.deepEqual(config.services.find((s) => s.name === 'demo-app')!.accepts, ['oidc', 'basic'])
  })

  it('reports every client mistake at once', () => {
    const found = problems({
      realms: [{
        name: 'r',
        sso_session_idle_seconds: 7200,
        sso_session_max_seconds: 3600,
        clients: [
          { client_id: 'a', public_client: false },
          { client_id: 'a', secret: 'sixteen-chars-long!' },
          { client_id: 'b', service_accounts: true },
        ],
      }],
    })
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.secret: a confidential client needs a secret')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.1.client_id: duplicate')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.1.secret: a public client has no secret')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.2.service_accounts')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.sso_session_idle_seconds')), found.join('\n'))
  })

  it('bounds the grants a user holds in a realm: a whole number from 1', () => {
    const realm = (limit: unknown) => ({ realms: [{ name: 'r', grants_per_user_limit: limit, clients: [{ client_id: 'c' }] }] })
    for (const bad of [0, -1, 1.5, '10', null, 100_001]) {
      assert.ok(problems(realm(bad)).some((p) => p.startsWith('realms.0.grants_per_user_limit')), `${JSON.stringify(bad)}: ${problems(realm(bad)).join('; ')}`)
    }
    assert.deepEqual(problems(realm(1)), [])
  })

  it('requires a realm for services that accept oidc, and the one they name', () => {
    assert.match(problems({ services: [service] }).join('\n'), /services\.0\.oidc\.realm: the service accepts oidc but no realm is configured/)
    const realms = [{ name: 'one', clients: [{ client_id: 'c' }] }, { name: 'two', clients: [{ client_id: 'c', standard_flow: false }] }]
    assert.match(problems({ realms, services: [service] }).join('\n'), /services\.0\.oidc\.realm: name a configured realm/)
    assert.deepEqual(problems({ realms, services: [{ ...service, oidc: { realm: 'one' } }] }), [])
    assert.match(problems({ realms, services: [{ ...service, oidc: { realm: 'two', client_id: 'c' } }] }).join('\n'), /no client "c" with standard_flow in realm "two"/)
  })

  it('refuses `account` as the audience of a service or of the gateway API: nearly every token of a realm names it', () => {
    const realms = [{ name: 'one', clients: [{ client_id: 'c' }] }]
    const found = problems({ realms, gateway: { oidc: { audiences: ['gateway', 'account'] } }, services: [{ ...service, oidc: { audiences: ['app', 'account'] } }] })
    assert.ok(found.some((p) => p.startsWith('gateway.oidc.audiences.1: "account" is in the aud of nearly every token')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('services.0.oidc.audiences.1: "account" is in the aud of nearly every token')), found.join('\n'))
    // A service named `account` is fine: its name is not taken as an audience (test/auth/oidc-bearer.test.ts).
    assert.deepEqual(problems({ realms, services: [{ ...service, name: 'account', prefix: '/account/' }] }), [])
  })

  it('reports client authenticator and offline session mistakes, and gateway realms that do not exist', () => {
    const found = problems({
      gateway: { oidc: { realms: ['nowhere'] } },
      realms: [{
        name: 'r',
        offline_session_idle_seconds: 7200,
        offline_session_max_seconds: 3600,
        clients: [
          { client_id: 'a', public_client: false, client_authenticator: 'client-jwt' },
          { client_id: 'b', public_client: false, secret: 'sixteen-chars-long!', jwks_url: 'https://b.example.com/jwks' },
          { client_id: 'c', client_authenticator: 'client-secret-jwt' },
          { client_id: 'd', web_origins: ['https://d.example.com/path'] },
          { client_id: 'e', public_client: false, client_authenticator: 'client-secret-jwt', secret: 'schlüssel-für-café-0123' },
          { client_id: 'f', public_client: false, secret: 'schlüssel-für-café-0123' },
        ],
      }],
    })
    for (const expected of ['gateway.oidc.realms.0: no realm "nowhere"', 'realms.0.clients.0.jwks_url: client-jwt needs exactly one', 'realms.0.clients.1.jwks_url: keys are only used',
      'realms.0.clients.2.client_authenticator: a public client does not authenticate', 'realms.0.clients.3.web_origins.0', 'realms.0.offline_session_idle_seconds',
      'realms.0.clients.4.secret: a client-secret-jwt secret must be printable ASCII']) {
      assert.ok(found.some((p) => p.startsWith(expected)), `${expected}\n${found.join('\n')}`)
    }
    assert.ok(!found.some((p) => p.startsWith('realms.0.clients.5')), 'a client-secret secret may hold any character, as in Keycloak')
  })

  it('takes a client-jwt client\'s public keys only: a key pair pasted whole, or no key, was refused by the provider at every token request', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const client = (key: Record<string, unknown>) => ({ realms: [{ name: 'r', clients: [{ client_id: 'signed', public_client: false, client_authenticator: 'client-jwt', jwks: { keys: [key] } }] }] })
    assert.deepEqual(problems(client({ ...publicKey.export({ format: 'jwk' }), kid: 'k1' })), [])
    assert.deepEqual(problems(client(privateKey.export({ format: 'jwk' }))), ['realms.0.clients.0.jwks.keys.0: holds private key material ("d"): give the client\'s public key only'])
    for (const key of [{ kty: 'nope', x: '1' }, { kty: 'EC', crv: 'P-256', x: 'AAAA' }, { kty: 'oct', k: 'c2VjcmV0' }]) {
      assert.equal(problems(client(key)).length, 1, JSON.stringify(key))
    }
  })

  it('takes a back-channel logout URI over https, or over http to this machine only, and never with a fragment', () => {
    const uris = ['https://app.example.com/backchannel-logout?tenant=1', 'http://127.0.0.1:8400/logout', 'http://localhost/logout', 'http://[::1]/logout',
      'http://app.example.com/logout', 'https://app.example.com/logout#part', 'ftp://app.example.com/logout', '/relative/logout', 'https://user:pw@app.example.com/logout', 'http://127.0.0.1.nip.io/logout']
    const found = problems({ realms: [{ name: 'r', clients: uris.map((uri, i) => ({ client_id: `c${i}`, backchannel_logout_uri: uri })) }] })
    for (let i = 0; i < 4; i++) assert.ok(!found.some((p) => p.startsWith(`realms.0.clients.${i}.`)), `${uris[i]}: ${found.join('\n')}`)
    const problemOf = (i: number) => found.find((p) => p.startsWith(`realms.0.clients.${i}.backchannel_logout_uri`)) ?? ''
    assert.match(problemOf(4), /must be https:\/\/ \(http:\/\/ only to a loopback host/)
    assert.match(problemOf(5), /must not have a fragment/)
    for (const i of [6, 7, 8]) assert.match(problemOf(i), /must be an absolute https URL/, uris[i])
    assert.match(problemOf(9), /must be https:\/\//, 'a name that merely looks local is resolved by DNS')
    const config = validateConfig({ realms: [{ name: 'r', clients: [{ client_id: 'a', backchannel_logout_uri: uris[0] }, { client_id: 'b' }] }] })
    assert.equal(config.realms[0]!.clients[0]!.backchannel_logout_session_required, true, 'as Keycloak\'s new clients')
    assert.equal(config.realms[0]!.clients[1]!.backchannel_logout_uri, undefined)
  })

  it('takes an admin URL (keycloak-connect\'s k_logout) under the rules of a back-channel logout URI', () => {
    const urls = ['https://app.example.com/', 'http://127.0.0.1:3000', 'http://app.example.com/', 'https://app.example.com/#part', 'https://user:pw@app.example.com/', 'app.example.com']
    const found = problems({ realms: [{ name: 'r', clients: urls.map((url, i) => ({ client_id: `c${i}`, admin_url: url })) }] })
    for (let i = 0; i < 2; i++) assert.ok(!found.some((p) => p.startsWith(`realms.0.clients.${i}.`)), `${urls[i]}: ${found.join('\n')}`)
    const problemOf = (i: number) => found.find((p) => p.startsWith(`realms.0.clients.${i}.admin_url`)) ?? ''
    assert.match(problemOf(2), /must be https:\/\/ \(http:\/\/ only to a loopback host/)
    assert.match(problemOf(3), /must not have a fragment/)
    for (const i of [4, 5]) assert.match(problemOf(i), /must be an absolute https URL/, urls[i])
  })

  it('takes client roles named as Keycloak names roles, each with the rules of `access`, and reports mistakes with their path', () => {
    const allow = [{ allow: { teams: [{ organization: 'Platform', team: 'Operators' }] } }]
    const config = validateConfig({ realms: [{ name: 'r', clients: [{ client_id: 'a', roles: { 'operator': allow, 'Report Reader': [{ deny: { users: ['x'] } }, { allow: {} }] } }] }] })
    assert.deepEqual(Object.keys(config.realms[0]!.clients[0]!.roles!), ['operator', 'Report Reader'])
    const badNames = ['', ' padded', 'realm:admin', 'a/b', 'x'.repeat(256), 'tab\there']
    for (const name of badNames) {
      const found = problems({ realms: [{ name: 'r', clients: [{ client_id: 'a', roles: { [name]: allow } }] }] })
      assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.roles')), `${JSON.stringify(name)}: ${found.join('\n')}`)
    }
    assert.match(problems({ realms: [{ name: 'r', clients: [{ client_id: 'a', roles: { 'realm:admin': allow } }] }] }).join('\n'), /must not contain ":"/)
    const found = problems({
      realms: [{
        name: 'r',
        clients: [{
          client_id: 'a',
          roles: {
            typo: [{ allow: { tems: ['Operators'] } }],
            both: [{ allow: {}, deny: {} }],
            scoped: [{ allow: { roles: [{ role: 'Team Member', organization: 'Platform' }] } }],
            empty: [],
          },
        }, { client_id: 'account', roles: { extra: allow } }],
      }],
    })
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.roles.typo.0.allow: Unrecognized key: "tems"')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.roles.both.0: a rule is either')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.roles.scoped.0.allow.roles.0: "Team Member" is held on a team')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.0.roles.empty')), found.join('\n'))
    assert.ok(found.some((p) => p.startsWith('realms.0.clients.1.roles: the account client\'s roles are Keycloak\'s own')), found.join('\n'))
  })

  it('gives clients full scope unless told, and takes scope mappings of realm roles and other clients\' roles without it', () => {
    const allow = [{ allow: {} }]
    const config = validateConfig({ realms: [{ name: 'r', clients: [
      { client_id: 'console', roles: { operator: allow } },
      { client_id: 'narrow', full_scope_allowed: false, scope: ['Team Member', 'console/operator', 'account/view-profile', 'default-roles-r', { realm_role: 'Ops/Admin' }] },
    ] }] })
    assert.equal(config.realms[0]!.clients[0]!.full_scope_allowed, true)
    assert.equal(config.realms[0]!.clients[0]!.scope, undefined)
    assert.equal(config.realms[0]!.clients[1]!.full_scope_allowed, false)
    assert.deepEqual(config.realms[0]!.clients[1]!.scope, ['Team Member', 'console/operator', 'account/view-profile', 'default-roles-r', { realm_role: 'Ops/Admin' }])
  })

  it('reads a scope mapping as the realm role or client role it names, a realm role with a "/" in its object form', () => {
    assert.deepEqual(['Team Member', 'console/operator', { realm_role: 'Ops/Admin' }, { realm_role: 'console/operator' }].map(scopedRole), [
      { role: 'Team Member' },
      { client: 'console', role: 'operator' },
      { role: 'Ops/Admin' },
      { role: 'console/operator' },
    ])
  })

  it('reports scope mappings that could never apply, with their path', () => {
    const found = problems({ realms: [{ name: 'r', clients: [
      { client_id: 'console', roles: { operator: [{ allow: {} }] } },
      { client_id: 'plain', roles: {} },
      { client_id: 'full', scope: ['Team Member'] },
      { client_id: 'narrow', full_scope_allowed: false, scope: ['console/operater', 'nowhere/operator', 'account/admin', 'plain/x', '', ' padded', 'Team Member', { realm_role: 'Ops/Admin' }, { realm_role: '' }] },
    ] }] })
    const expected = [
      'realms.0.clients.2.scope: scope mappings apply only with full_scope_allowed: false',
      'realms.0.clients.3.scope.0: "console/operater": client "console" has no role "operater" (its roles: operator)',
      'realms.0.clients.3.scope.1: "nowhere/operator": the realm has no client "nowhere" with roles',
      'realms.0.clients.3.scope.2: "account/admin": client "account" has no role "admin"',
      'realms.0.clients.3.scope.3: "plain/x": the realm has no client "plain" with roles (a realm role whose name has a "/" is written { realm_role: "plain/x" })',
      'realms.0.clients.3.scope.4: a role needs a name',
      'realms.0.clients.3.scope.5: must not start or end with a space',
      'realms.0.clients.3.scope.8.realm_role: a role needs a name',
    ]
    for (const problem of expected) assert.ok(found.some((p) => p.startsWith(problem)), `${problem}\n${found.join('\n')}`)
    for (const fine of [6, 7]) assert.ok(!found.some((p) => p.startsWith(`realms.0.clients.3.scope.${fine}`)), found.join('\n'))
    const misshapen = problems({ realms: [{ name: 'r', clients: [{ client_id: 'narrow', full_scope_allowed: false, scope: [{ realm: 'Ops/Admin' }, 5] }] }] })
    for (const problem of ['realms.0.clients.0.scope.0: Unrecognized key: "realm"', 'realms.0.clients.0.scope.1: Invalid input: expected string or object']) {
      assert.ok(misshapen.includes(problem), `${problem}\n${misshapen.join('\n')}`)
    }
  })
})
