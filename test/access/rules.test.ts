import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { roleKey, teamKey, type UserAccess } from '../../src/access/model.ts'
import { ServiceRules, unknownNames } from '../../src/access/rules.ts'
import type { Principal } from '../../src/auth/principal.ts'
import { MANAGED_ROLES } from '../../src/access/permissions.ts'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import type { User } from '../../src/store/users.ts'

const user = (username: string, isSuperuser = false) => ({ id: 1, username, isSuperuser, isSystemAuditor: false }) as User
const signedIn = (principal: Omit<Principal, 'userId'>): Principal => ({ ...principal, userId: principal.user.id })
const MANAGED = new Set(MANAGED_ROLES.map((role) => role.name))
const nobody: UserAccess = { teams: [], organizations: [], roles: [], teamNames: new Set(), teamKeys: new Set(), organizationNames: new Set(), roleNames: new Set(), roleKeys: new Set(), held: [], groups: [] }
const request = (principal: Omit<Principal, 'userId'>, overrides: Partial<{ method: string; path: string; address: string; access: UserAccess }> = {}) =>
  ({ principal: signedIn(principal), access: nobody, method: 'GET', path: '/svc/x', address: '127.0.0.1', ...overrides })

function problemsOf(access: unknown): string[] {
  return configProblems({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', access }] })
}

function configProblems(config: unknown): string[] {
  try {
    validateConfig(config)
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  assert.fail('expected the rules to be refused')
}

describe('access rules', () => {
  it('decides by the first rule that matches, and refuses when none does', () => {
    const rules = new ServiceRules('svc', [{ deny: { users: ['mallory'] } }, { allow: { methods: ['GET'] } }])
    assert.deepEqual(rules.decide(request({ user: user('mallory'), method: 'basic' })), { allowed: false, rule: 1, description: 'deny users=mallory' })
    assert.equal(rules.decide(request({ user: user('alice'), method: 'basic' })).rule, 2)
    const none = rules.decide(request({ user: user('alice'), method: 'basic' }, { method: 'POST' }))
    assert.deepEqual(none, { allowed: false, rule: undefined, description: undefined })
    assert.match(rules.explain(none), /No access rule/)
  })

  it('matches a username alone from any source, and { username, source } only from that source', () => {
    const rules = new ServiceRules('svc', [{ allow: { users: ['alice', { username: 'bob', source: 'local' }] } }])
    const from = (username: string, source: User['source']) => ({ ...user(username), source }) as User
    assert.equal(rules.decide(request({ user: from('alice', 'sso'), method: 'session' })).allowed, true, 'a name alone trusts every source')
    assert.equal(rules.decide(request({ user: from('bob', 'local'), method: 'session' })).allowed, true)
    for (const source of ['ldap', 'sso'] as const) assert.equal(rules.decide(request({ user: from('bob', source), method: 'session' })).allowed, false, source)
    assert.equal(rules.decide(request({ user: from('BOB', 'local'), method: 'session' })).allowed, true, 'names in any letter case, as accounts have them')
    assert.equal(rules.decide(request({ user: from('BOB', 'sso'), method: 'session' })).allowed, false)
    assert.equal(rules.decide(request({ user: from('bob', 'local'), method: 'session' })).description, 'allow users=alice,bob (local)')
    assert.ok(problemsOf([{ allow: { users: [{ username: 'bob', source: 'saml' }] } }]).some((problem) => /source/.test(problem)))
    assert.ok(problemsOf([{ allow: { users: [{ username: 'bob' }] } }]).some((problem) => /source/.test(problem)))
  })

  it('denies a username whatever its letter case in the rule or the account, as accounts are unique regardless of it', () => {
    const rules = new ServiceRules('svc', [{ deny: { users: ['mallory', { username: 'Eve', source: 'local' }] } }, { allow: {} }])
    const from = (username: string, source: User['source']) => ({ ...user(username), source }) as User
    for (const name of ['mallory', 'Mallory', 'MALLORY']) assert.equal(rules.decide(request({ user: from(name, 'sso'), method: 'basic' })).rule, 1, name)
    for (const name of ['eve', 'EVE']) assert.equal(rules.decide(request({ user: from(name, 'local'), method: 'basic' })).rule, 1, name)
    assert.equal(rules.decide(request({ user: from('eve', 'ldap'), method: 'basic' })).rule, 2)
    assert.equal(rules.decide(request({ user: from('malory', 'local'), method: 'basic' })).rule, 2)
  })

  it('matches one username named from several sources from each of them, and from no other', () => {
    const rules = new ServiceRules('svc', [{ allow: { users: [{ username: 'bob', source: 'local' }, 'carol', { username: 'bob', source: 'ldap' }] } }])
    const from = (username: string, source: User['source']) => ({ ...user(username), source }) as User
    for (const source of ['local', 'ldap'] as const) assert.equal(rules.decide(request({ user: from('bob', source), method: 'basic' })).allowed, true, source)
    assert.equal(rules.decide(request({ user: from('bob', 'sso'), method: 'basic' })).allowed, false)
    assert.equal(rules.decide(request({ user: from('carol', 'sso'), method: 'basic' })).allowed, true)
    assert.equal(rules.decide(request({ user: from('local', 'bob' as User['source']), method: 'basic' })).allowed, false, 'name and source are not interchangeable')
  })

  it('matches teams and roles named alone or with where they are, either kind in one rule', () => {
    const rules = new ServiceRules('svc', [
      { allow: { teams: ['Ops', { organization: 'Acme', team: 'Dev' }] } },
      { allow: { roles: [{ role: 'Team Admin', organization: 'Acme', team: 'Ops' }, 'Auditor'] } },
      { allow: { teams: [{ organization: 'Acme', team: 'QA' }] } },
    ])
    const decide = (access: Partial<UserAccess>) => rules.decide(request({ user: user('bob'), method: 'basic' }, { access: { ...nobody, ...access } })).rule
    assert.equal(decide({ teamNames: new Set(['Ops']) }), 1)
    assert.equal(decide({ teamNames: new Set(['Dev']), teamKeys: new Set([teamKey('Acme', 'Dev')]) }), 1)
    assert.equal(decide({ teamNames: new Set(['Dev']), teamKeys: new Set([teamKey('Other', 'Dev')]) }), undefined)
    assert.equal(decide({ roleNames: new Set(['Auditor']) }), 2)
    assert.equal(decide({ roleNames: new Set(['Team Admin']), roleKeys: new Set([roleKey('Team Admin', 'Acme', 'Ops')]) }), 2)
    assert.equal(decide({ roleNames: new Set(['Team Admin']), roleKeys: new Set([roleKey('Team Admin', 'Acme')]) }), undefined)
    assert.equal(decide({ teamNames: new Set(['QA']) }), undefined, 'a team named with its organization only there')
    assert.equal(decide({ teamNames: new Set(['QA']), teamKeys: new Set([teamKey('Acme', 'QA')]) }), 3)
  })

  it('matches client networks on the trusted address, IPv4 on a dual-stack socket included', () => {
    const rules = new ServiceRules('svc', [{ allow: { networks: ['10.0.0.0/8', '2001:db8::/32'] } }])
    const alice = { user: user('alice'), method: 'session' as const }
    assert.equal(rules.decide(request(alice, { address: '10.1.2.3' })).allowed, true)
    assert.equal(rules.decide(request(alice, { address: '::ffff:10.1.2.3' })).allowed, true)
    assert.equal(rules.decide(request(alice, { address: '2001:db8::1' })).allowed, true)
    assert.equal(rules.decide(request(alice, { address: '192.168.1.1' })).allowed, false)
  })

  it('matches an IPv4-mapped network as the IPv4 network it maps, as trusted_proxies and metrics.allow_from read it', () => {
    const rules = new ServiceRules('svc', [{ allow: { networks: ['::ffff:10.0.0.0/104', '::ffff:192.0.2.7'] } }])
    const alice = { user: user('alice'), method: 'session' as const }
    for (const address of ['10.1.2.3', '::ffff:10.1.2.3', '192.0.2.7', '::ffff:192.0.2.7']) assert.equal(rules.decide(request(alice, { address })).allowed, true, address)
    for (const address of ['11.0.0.1', '::ffff:11.0.0.1', '192.0.2.8', '::1', 'not an address']) assert.equal(rules.decide(request(alice, { address })).allowed, false, address)
  })

  it('matches how the caller signed in and the scopes their token carries', () => {
    const rules = new ServiceRules('svc', [{ allow: { auth_methods: ['token', 'oidc'], scopes: ['write', 'api:write'] } }])
    assert.equal(rules.decide(request({ user: user('a'), method: 'basic' })).allowed, false)
    assert.equal(rules.decide(request({ user: user('a'), method: 'token', scope: 'write' })).allowed, true)
    assert.equal(rules.decide(request({ user: user('a'), method: 'token', scope: 'read' })).allowed, false)
    assert.equal(rules.decide(request({ user: user('a'), method: 'oidc', scopes: new Set(['openid', 'api:write']) })).allowed, true)
  })

  it('matches superusers, paths under a prefix, and memberships by name', () => {
    const rules = new ServiceRules('svc', [
      { allow: { superuser: true } },
      { deny: { paths: ['/svc/admin/*'] } },
      { allow: { teams: ['Ops'], organizations: ['Acme'] } },
    ])
    const member: UserAccess = { ...nobody, teamNames: new Set(['Ops']), organizationNames: new Set(['Acme']) }
    assert.equal(rules.decide(request({ user: user('root', true), method: 'basic' }, { path: '/svc/admin/x' })).allowed, true)
    assert.equal(rules.decide(request({ user: user('bob'), method: 'basic' }, { path: '/svc/admin/x', access: member })).rule, 2)
    assert.equal(rules.decide(request({ user: user('bob'), method: 'basic' }, { access: member })).allowed, true)
    assert.equal(rules.decide(request({ user: user('bob'), method: 'basic' }, { access: { ...member, organizationNames: new Set() } })).allowed, false)
  })

  it('reports malformed rules with their path', () => {
    assert.deepEqual(problemsOf([{ allow: { tems: ['x'] } }]), ['services.0.access.0.allow: Unrecognized key: "tems" (did you mean "teams"?)'])
    assert.match(problemsOf([{ allow: {}, deny: {} }])[0]!, /^services\.0\.access\.0: a rule is either/)
    assert.match(problemsOf([{ permit: {} }]).join('\n'), /services\.0\.access\.0: Unrecognized key: "permit"/)
    assert.match(problemsOf([{ allow: { networks: ['10.0.0.0/33'] } }])[0]!, /^services\.0\.access\.0\.allow\.networks\.0: must be an IP address or a CIDR block/)
    assert.match(problemsOf([{ deny: { paths: ['/other/*'] } }])[0]!, /^services\.0\.access\.0\.deny\.paths\.0: must be under the service prefix/)
    assert.deepEqual(problemsOf([{ allow: { methods: ['FETCH', ' GET', 7] } }]), [0, 1, 2].map((i) => `services.0.access.0.allow.methods.${i}: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`))
  })

  it('reports a path outside the prefix beside every other problem of the file, and none against a prefix it refuses', () => {
    const problems = configProblems({
      server: { port: 'eighty' },
      services: [
        { name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', public_paths: ['/elsewhere/open'], access: [{ allow: { paths: ['/other/x'] } }, { deny: { methods: ['FETCH'] } }] },
        { name: 'bad', prefix: 'no-slashes', upstream: 'http://127.0.0.1:1', access: [{ allow: { paths: ['/other/x'] } }] },
      ],
    })
    assert.deepEqual(problems.filter((problem) => problem.includes('must be under the service prefix')).sort(), [
      'services.0.access.0.allow.paths.0: must be under the service prefix /svc/',
      'services.0.public_paths.0: must be under the service prefix /svc/',
    ])
    assert.ok(problems.some((problem) => problem.startsWith('services.0.access.1.deny.methods.0: must be one of')), problems.join('\n'))
    assert.ok(problems.some((problem) => problem.startsWith('server.port')), problems.join('\n'))
    assert.ok(problems.some((problem) => problem.startsWith('services.1.prefix')), problems.join('\n'))
  })

  it('reads a method in any case as the method, and a GET as covering HEAD', () => {
    const config = validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', access: [{ deny: { methods: ['get'] } }, { allow: { methods: ['Head', 'post'] } }] }] })
    const rules = new ServiceRules('svc', config.services[0]!.access!)
    const decide = (method: string) => rules.decide(request({ user: user('alice'), method: 'basic' }, { method }))
    assert.deepEqual(decide('HEAD'), { allowed: false, rule: 1, description: 'deny methods=GET' })
    assert.equal(decide('GET').rule, 1)
    assert.equal(decide('POST').rule, 2)
    assert.equal(decide('OPTIONS').rule, undefined)
    const headOnly = new ServiceRules('svc', [{ allow: { methods: ['HEAD'] } }])
    assert.equal(headOnly.decide(request({ user: user('alice'), method: 'basic' }, { method: 'GET' })).allowed, false)
  })

  it('warns of teams and organizations that do not exist yet', () => {
    const config = validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', access: [{ allow: { teams: ['Ops', 'Ghosts', { organization: 'Acme', team: 'Ops' }, { organization: 'Other', team: 'Ops' }], organizations: ['Acme'] } }] }] })
    assert.deepEqual(unknownNames(config, { roles: MANAGED, teams: new Set(['Ops']), teamKeys: new Set([teamKey('Acme', 'Ops')]), organizations: new Set() }), [
      'services.0.access.0.allow.teams: no team "Ghosts" yet (the rule applies once it exists)',
      'services.0.access.0.allow.teams: no team "Other/Ops" yet (the rule applies once it exists)',
      'services.0.access.0.allow.organizations: no organization "Acme" yet (the rule applies once it exists)',
    ])
  })

  it('matches a role named alone wherever it is held, and one named with its organization or team there only', () => {
    const rules = new ServiceRules('svc', [
      { allow: { roles: [{ role: 'Team Admin', organization: 'Acme', team: 'Ops' }] } },
      { allow: { roles: [{ role: 'Organization Member', organization: 'Acme' }], methods: ['GET'] } },
      { allow: { roles: ['Platform Auditor'], methods: ['HEAD'] } },
    ])
    const decide = (roleKeys: string[], roleNames: string[], method = 'POST') =>
      rules.decide(request({ user: user('bob'), method: 'basic' }, { method, access: { ...nobody, roleKeys: new Set(roleKeys), roleNames: new Set(roleNames) } }))
    assert.deepEqual(decide([roleKey('Team Admin', 'Acme', 'Ops')], ['Team Admin']), { allowed: true, rule: 1, description: 'allow roles=Team Admin on Acme/Ops' })
    assert.equal(decide([roleKey('Team Admin', 'Other', 'Ops')], ['Team Admin']).allowed, false, 'the same team name in another organization')
    assert.equal(decide([roleKey('Team Admin', 'Acme')], ['Team Admin']).allowed, false, 'held on the organization, not the team')
    assert.equal(decide([roleKey('Organization Member', 'Acme')], ['Organization Member'], 'GET').rule, 2)
    assert.equal(decide([], ['Platform Auditor'], 'HEAD').rule, 3)
    assert.equal(rules.decide(request({ user: user('bob'), method: 'basic' })).allowed, false)
  })

  it('refuses a role scope that is malformed or that the managed role can never be held on, with its path', () => {
    assert.deepEqual(problemsOf([{ allow: { roles: [{ role: 'Team Admin', team: 'Ops' }] } }]), ['services.0.access.0.allow.roles.0.organization: Invalid input: expected string, received undefined'])
    assert.deepEqual(problemsOf([{ allow: { roles: [{ role: 'Team Admin', organization: 'Acme', teams: 'Ops' }] } }]), [
      'services.0.access.0.allow.roles.0: Unrecognized key: "teams" (did you mean "team"?)',
      'services.0.access.0.allow.roles.0: "Team Admin" is held on a team: name the team too',
    ])
    assert.match(problemsOf([{ allow: { roles: [{ organization: 'Acme' }] } }]).join('\n'), /^services\.0\.access\.0\.allow\.roles\.0\.role:/)
    assert.match(problemsOf([{ allow: { roles: [''] } }]).join('\n'), /^services\.0\.access\.0\.allow\.roles\.0/)
    assert.deepEqual(problemsOf([{ allow: { roles: [7], teams: [{ team: 'Ops' }] } }]), [
      'services.0.access.0.allow.teams.0.organization: Invalid input: expected string, received undefined',
      'services.0.access.0.allow.roles.0: Invalid input: expected string or object',
    ])
    assert.deepEqual(problemsOf([{ allow: { roles: [{ role: 'Platform Auditor', organization: 'Acme' }] } }]), ['services.0.access.0.allow.roles.0: "Platform Auditor" is held platform-wide, never on an organization or team: name it alone'])
    assert.deepEqual(problemsOf([{ allow: { roles: [{ role: 'Team Member', organization: 'Acme' }] } }]), ['services.0.access.0.allow.roles.0: "Team Member" is held on a team: name the team too'])
    assert.deepEqual(problemsOf([{ deny: { roles: [{ role: 'Organization Admin', organization: 'Acme', team: 'Ops' }] } }]), ['services.0.access.0.deny.roles.0: "Organization Admin" is held on an organization: leave out the team'])
    // A custom role's kind is in the database: any scope is taken.
    assert.equal(validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', access: [{ allow: { roles: [{ role: 'Deployer', organization: 'Acme', team: 'Ops' }] } }] }] }).services[0]!.access!.length, 1)
  })

  it('warns of the role definitions, organizations and teams role rules name that do not exist yet', () => {
    const config = validateConfig({ services: [{ name: 'svc', prefix: '/svc/', upstream: 'http://127.0.0.1:1', access: [{ allow: { roles: ['Team Admin', 'Team Admn', { role: 'Team Admin', organization: 'Acme', team: 'Ops' }, { role: 'Team Admin', organization: 'Acme', team: 'Ghosts' }, { role: 'Organization Admin', organization: 'Other' }, { role: 'Deployer', organization: 'Acme' }] } }] }] })
    assert.deepEqual(unknownNames(config, { roles: MANAGED, teams: new Set(['Ops']), teamKeys: new Set([teamKey('Acme', 'Ops')]), organizations: new Set(['Acme']) }), [
      'services.0.access.0.allow.roles: no role definition "Team Admn" yet (the rule applies once it exists)',
      'services.0.access.0.allow.roles: no team "Acme/Ghosts" yet (the rule applies once it exists)',
      'services.0.access.0.allow.roles: no organization "Other" yet (the rule applies once it exists)',
      'services.0.access.0.allow.roles: no role definition "Deployer" yet (the rule applies once it exists)',
    ])
  })

  it('warns of the organizations and teams membership mappings name that do not exist yet', () => {
    const config = validateConfig({ sso: [{ name: 'corp', label: 'Corp', issuer: 'https://idp.example', client_id: 'x', memberships: [
      { organization: 'Acme', team: 'Ops', groups: ['ops'] },
      { organization: 'Acme', team: 'Ghosts', groups: ['ghosts'] },
      { organization: 'Nowhere', groups: ['all'] },
    ] }] })
    assert.deepEqual(unknownNames(config, { roles: MANAGED, teams: new Set(['Ops', 'Ghosts']), teamKeys: new Set([teamKey('Acme', 'Ops'), teamKey('Other', 'Ghosts')]), organizations: new Set(['Acme', 'Other']) }), [
      'sso.0.memberships.1.team: no team "Acme/Ghosts" yet (the mapping applies once it exists)',
      'sso.0.memberships.2.organization: no organization "Nowhere" yet (the mapping applies once it exists)',
    ])
  })

  it('checks the gateway\'s and realm clients\' rules the same way, with their path', () => {
    const refused = configProblems({ gateway: { access: [{ allow: { tems: ['x'] } }, { allow: { networks: ['office'] } }] } })
    assert.equal(refused[0], 'gateway.access.0.allow: Unrecognized key: "tems" (did you mean "teams"?)')
    assert.match(refused[1]!, /^gateway\.access\.1\.allow\.networks\.0: must be an IP address or a CIDR block/)
    const config = validateConfig({
      gateway: { access: [{ allow: { teams: ['Ghosts'] } }] },
      realms: [{ name: 'r', clients: [{ client_id: 'a', access: [{ deny: { organizations: ['Acme'] } }] }] }],
    })
    assert.deepEqual(unknownNames(config, { roles: MANAGED, teams: new Set(), teamKeys: new Set(), organizations: new Set() }), [
      'gateway.access.0.allow.teams: no team "Ghosts" yet (the rule applies once it exists)',
      'realms.0.clients.0.access.0.deny.organizations: no organization "Acme" yet (the rule applies once it exists)',
    ])
    assert.deepEqual(configProblems({ realms: [{ name: 'r', clients: [{ client_id: 'a', access: [{ allow: { tems: ['x'] } }] }] }] }), ['realms.0.clients.0.access.0.allow: Unrecognized key: "tems" (did you mean "teams"?)'])
  })

  it('names the teams, organizations and roles of realm clients\' role rules, with their path', () => {
    const config = validateConfig({
      realms: [{ name: 'r', clients: [{ client_id: 'a', roles: { operator: [{ deny: { users: ['x'] } }, { allow: { teams: [{ organization: 'Acme', team: 'Ops' }], roles: ['Auditor of Things'] } }] } }] }],
    })
    assert.deepEqual(unknownNames(config, { roles: MANAGED, teams: new Set(), teamKeys: new Set(), organizations: new Set() }), [
      'realms.0.clients.0.roles.operator.1.allow.teams: no team "Acme/Ops" yet (the rule applies once it exists)',
      'realms.0.clients.0.roles.operator.1.allow.roles: no role definition "Auditor of Things" yet (the rule applies once it exists)',
    ])
  })
})
