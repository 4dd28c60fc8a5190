import { BlockList } from 'node:net'
import { parseCidr, type AccessRule, type RuleMatch, type ScopedRole } from '../config/access.ts'
import type { Config } from '../config/schema.ts'
import type { Principal } from '../auth/principal.ts'
import { publicPathMatcher } from '../gateway/routes.ts'
import { roleKey, teamKey, type UserAccess } from './model.ts'

/** One request as the rules see it: who (signed in), how, and what. */
export interface AccessRequest {
  principal: Principal
  access: UserAccess
  method: string
  path: string
  /** The trusted client address (Fastify's `request.ip`). */
  address: string
}

export interface AccessDecision {
  allowed: boolean
  /** 1-based position of the rule that decided; undefined when none matched (then the request is refused). */
  rule: number | undefined
  /** The deciding rule as written, e.g. `allow teams=Automation`; undefined when none matched. */
  description: string | undefined
}

type Condition = (request: AccessRequest) => boolean

interface CompiledRule {
  allow: boolean
  description: string
  conditions: Condition[]
}

/**
 * One service's access rules, compiled once at start into plain predicates over Sets: evaluating them is a
 * few lookups per rule, in memory. First match wins (as Authelia's access_control and Pomerium's policies
 * read top down); a service with rules refuses whoever matches none.
 */
export class ServiceRules {
  readonly service: string
  /** What the rules guard, in the refusal's words: a `service`, or a realm `client`. */
  readonly #kind: string
  readonly #rules: CompiledRule[]

  constructor(service: string, rules: readonly AccessRule[], kind: 'service' | 'client' = 'service') {
    this.service = service
    this.#kind = kind
    this.#rules = rules.map(compileRule)
  }

  decide(request: AccessRequest): AccessDecision {
    for (let i = 0; i < this.#rules.length; i++) {
      const rule = this.#rules[i]!
      if (rule.conditions.every((condition) => condition(request))) return { allowed: rule.allow, rule: i + 1, description: rule.description }
    }
    return { allowed: false, rule: undefined, description: undefined }
  }

  /** The 403 detail: which rule refused, or that none allowed. Only signed-in callers ever see it. */
  explain(decision: AccessDecision): string {
    return decision.rule === undefined
      ? `No access rule of the ${this.#kind} "${this.service}" allows this request.`
      : `Rule ${decision.rule} of the ${this.#kind} "${this.service}" (${decision.description}) ${decision.allowed ? 'allows' : 'denies'} this request.`
  }
}

/** Every service's rules by service name; services without `access` are absent (every signed-in caller passes). */
export function compileServiceRules(config: Config): ReadonlyMap<string, ServiceRules> {
  return new Map(config.services.filter((s) => s.access).map((s) => [s.name, new ServiceRules(s.name, s.access!)]))
}

/** The gateway's own rules (`gateway.access`): its API and web interface; undefined when none are configured. */
export function compileGatewayRules(config: Config): ServiceRules | undefined {
  return config.gateway.access ? new ServiceRules('gateway', config.gateway.access) : undefined
}

/**
 * Team and organization names the rules (their teams, organizations and roles' scopes) and the membership mappings
 * use that do not exist (yet): worth a warning at start, not an error, since they apply as soon as they are created.
 */
export function unknownNames(config: Config, known: { teams: ReadonlySet<string>; teamKeys: ReadonlySet<string>; organizations: ReadonlySet<string> }): string[] {
  const problems: string[] = []
  const mappingSources = [['ldap', config.ldap?.memberships ?? []] as const, ...config.sso.map((p, i) => [`sso.${i}`, p.memberships] as const)]
  for (const [path, mappings] of mappingSources) {
    mappings.forEach((mapping, i) => {
      if (!known.organizations.has(mapping.organization)) problems.push(`${path}.memberships.${i}.organization: no organization "${mapping.organization}" yet (the mapping applies once it exists)`)
      else if (mapping.team !== undefined && !known.teams.has(mapping.team)) problems.push(`${path}.memberships.${i}.team: no team "${mapping.team}" yet (the mapping applies once it exists)`)
    })
  }
  const ruleSources = [
    ['gateway', config.gateway.access] as const,
    ...config.services.map((service, i) => [`services.${i}`, service.access] as const),
    ...config.realms.flatMap((realm, i) => realm.clients.map((client, j) => [`realms.${i}.clients.${j}`, client.access] as const)),
  ]
  for (const [path, rules] of ruleSources) rules?.forEach((rule, j) => {
    const kind = rule.allow ? 'allow' : 'deny'
    const match = (rule.allow ?? rule.deny)!
    for (const team of match.teams ?? []) {
      const exists = typeof team === 'string' ? known.teams.has(team) : known.teamKeys.has(teamKey(team.organization, team.team))
      if (!exists) problems.push(`${path}.access.${j}.${kind}.teams: no team "${teamName(team)}" yet (the rule applies once it exists)`)
    }
    for (const org of match.organizations ?? []) if (!known.organizations.has(org)) problems.push(`${path}.access.${j}.${kind}.organizations: no organization "${org}" yet (the rule applies once it exists)`)
    for (const role of match.roles ?? []) {
      if (typeof role === 'string') continue
      if (role.team === undefined ? !known.organizations.has(role.organization) : !known.teamKeys.has(teamKey(role.organization, role.team))) {
        const where = role.team === undefined ? `organization "${role.organization}"` : `team "${teamName({ organization: role.organization, team: role.team })}"`
        problems.push(`${path}.access.${j}.${kind}.roles: no ${where} yet (the rule applies once it exists)`)
      }
    }
  })
  return problems
}

function compileRule(rule: AccessRule): CompiledRule {
  const allow = rule.allow !== undefined
  const match = (rule.allow ?? rule.deny)!
  return { allow, description: describe(allow, match), conditions: conditionsOf(match) }
}

function conditionsOf(match: RuleMatch): Condition[] {
  const conditions: Condition[] = []
  if (match.superuser !== undefined) {
    const wanted = match.superuser
    conditions.push((r) => r.principal.user.isSuperuser === wanted)
  }
  if (match.users) {
    const users = new Set(match.users)
    conditions.push((r) => users.has(r.principal.user.username))
  }
  if (match.teams) {
    const byName = match.teams.filter((t) => typeof t === 'string')
    const inOrganization = match.teams.filter((t) => typeof t !== 'string').map((t) => teamKey(t.organization, t.team))
    conditions.push((r) => anyOf(byName, (q) => q.access.teamNames)(r) || anyOf(inOrganization, (q) => q.access.teamKeys)(r))
  }
  if (match.organizations) conditions.push(anyOf(match.organizations, (r) => r.access.organizationNames))
  if (match.roles) {
    const byName = match.roles.filter((role) => typeof role === 'string')
    const heldWhere = match.roles.filter((role) => typeof role !== 'string').map((role) => roleKey(role.role, role.organization, role.team))
    conditions.push((r) => anyOf(byName, (q) => q.access.roleNames)(r) || anyOf(heldWhere, (q) => q.access.roleKeys)(r))
  }
  if (match.methods) {
    const methods = new Set<string>(match.methods)
    conditions.push((r) => methods.has(r.method))
  }
  if (match.paths) {
    const matches = publicPathMatcher(match.paths)
    conditions.push((r) => matches(r.path))
  }
  if (match.auth_methods) {
    const methods = new Set<string>(match.auth_methods)
    conditions.push((r) => methods.has(r.principal.method))
  }
  if (match.scopes) {
    const scopes = match.scopes
    conditions.push((r) => scopes.some((scope) => r.principal.scopes?.has(scope) ?? r.principal.scope === scope))
  }
  if (match.networks) {
    const blocks = new BlockList()
    for (const network of match.networks) {
      const { address, prefix, family } = parseCidr(network)!
      blocks.addSubnet(address, prefix, family)
    }
    conditions.push((r) => inBlocks(blocks, r.address))
  }
  return conditions
}

function anyOf(wanted: readonly string[], held: (request: AccessRequest) => ReadonlySet<string>): Condition {
  return (r) => {
    const set = held(r)
    return set.size > 0 && wanted.some((name) => set.has(name))
  }
}

/** An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`; IPv4 blocks must match it. */
function inBlocks(blocks: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1]
  if (mapped) return blocks.check(mapped, 'ipv4')
  return blocks.check(address, address.includes(':') ? 'ipv6' : 'ipv4')
}

function teamName(team: string | { organization: string; team: string }): string {
  return typeof team === 'string' ? team : `${team.organization}/${team.team}`
}

function roleName(role: string | ScopedRole): string {
  if (typeof role === 'string') return role
  return `${role.role} on ${role.team === undefined ? role.organization : teamName({ organization: role.organization, team: role.team })}`
}

function describe(allow: boolean, match: RuleMatch): string {
  const parts = Object.entries(match).map(([key, value]) => {
    const shown = key === 'teams' ? match.teams!.map(teamName) : key === 'roles' ? match.roles!.map(roleName) : value
    return `${key}=${Array.isArray(shown) ? shown.join(',') : String(shown)}`
  })
  return `${allow ? 'allow' : 'deny'}${parts.length ? ' ' + parts.join(' ') : ''}`
}
