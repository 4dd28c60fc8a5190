import { type AccessRule, type RuleMatch, type ScopedRole } from '../config/access.ts'
import type { Config } from '../config/schema.ts'
import type { Principal } from '../auth/principal.ts'
import { compileAddressRanges } from '../http/address-ranges.ts'
import { publicPathMatcher } from '../gateway/routes.ts'
import { roleKey, teamKey, usernameKey, type KnownNames, type UserAccess } from './model.ts'

/** One request as the rules see it: who (signed in), how, and what. */
export interface AccessRequest {
  principal: Principal
  access: UserAccess
  method: string
  path: string
  /** The trusted client address (Fastify's `request.ip`); undefined for a judgment from nowhere in particular, which no `networks` condition matches. */
  address: string | undefined
}

/** One made per rule when the rules are compiled, and one for none matched: deciding allocates nothing. */
export interface AccessDecision {
  readonly allowed: boolean
  /** 1-based position of the rule that decided; undefined when none matched (then the request is refused). */
  readonly rule: number | undefined
  /** The deciding rule as written, e.g. `allow teams=Automation`; undefined when none matched. */
  readonly description: string | undefined
}

const NONE_MATCHED: AccessDecision = Object.freeze({ allowed: false, rule: undefined, description: undefined })

type Condition = (request: AccessRequest) => boolean

interface CompiledRule {
  readonly conditions: readonly Condition[]
  /** What the rule decides when every condition holds. */
  readonly decision: AccessDecision
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
  /**
   * The parameter whose method a POST is judged as too (src/access/method-override.ts): the service's, where its
   * rules name methods; undefined where they name none, and so judge every method alike.
   */
  readonly methodOverride: string | undefined
  /** Whether JSON bodies are read for it too (`method_override_json`). */
  readonly methodOverrideJson: boolean
  /** The methods the rules name (upper case), each of which a body not read whole is judged as. */
  readonly namedMethods: ReadonlySet<string>

  constructor(service: string, rules: readonly AccessRule[], kind: 'service' | 'client' = 'service', methodOverride: { parameter: string | false; json: boolean } = { parameter: false, json: false }) {
    this.service = service
    this.#kind = kind
    this.#rules = rules.map((rule, i) => compileRule(rule, i + 1))
    this.namedMethods = new Set(rules.flatMap((rule) => (rule.allow ?? rule.deny)!.methods ?? []))
    this.methodOverride = methodOverride.parameter === false || this.namedMethods.size === 0 ? undefined : methodOverride.parameter
    this.methodOverrideJson = methodOverride.json
  }

  decide(request: AccessRequest): AccessDecision {
    for (const rule of this.#rules) if (allHold(rule.conditions, request)) return rule.decision
    return NONE_MATCHED
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
  return new Map(config.services.filter((s) => s.access).map((s) => [s.name, new ServiceRules(s.name, s.access!, 'service', { parameter: s.method_override_parameter, json: s.method_override_json })]))
}

/** The gateway's own rules (`gateway.access`): its API and web interface; undefined when none are configured. */
export function compileGatewayRules(config: Config): ServiceRules | undefined {
  return config.gateway.access ? new ServiceRules('gateway', config.gateway.access) : undefined
}

/**
 * An organization or team the configuration names: in an access rule (its teams, organizations, roles' scopes) or a
 * membership mapping. A team named alone has no `organization`; an organization alone, no `team`.
 */
export interface ConfiguredName {
  /** Where, as `config check` shows paths: `services.2.access.0.allow.teams`, `realms.0.clients.1.roles.operator.0.allow.teams`, `ldap.memberships.1.team`. */
  readonly path: string
  readonly by: 'rule' | 'mapping'
  /** A rule's role definition, alone or held on the organization or team named with it. */
  readonly role?: string | undefined
  readonly organization?: string | undefined
  readonly team?: string | undefined
}

/** Every organization and team the configuration names, in the order it names them. */
export function configuredNames(config: Config): ConfiguredName[] {
  const names: ConfiguredName[] = []
  const mappingSources = [['ldap', config.ldap?.memberships ?? []] as const, ...config.sso.map((p, i) => [`sso.${i}`, p.memberships] as const)]
  for (const [path, mappings] of mappingSources) {
    mappings.forEach((mapping, i) => {
      const field = mapping.team === undefined ? 'organization' : 'team'
      names.push({ path: `${path}.memberships.${i}.${field}`, by: 'mapping', organization: mapping.organization, team: mapping.team })
    })
  }
  for (const [path, rules] of ruleSources(config)) rules?.forEach((rule, j) => {
    const at = `${path}.${j}.${rule.allow ? 'allow' : 'deny'}`
    const match = (rule.allow ?? rule.deny)!
    for (const team of match.teams ?? []) names.push(typeof team === 'string' ? { path: `${at}.teams`, by: 'rule', team } : { path: `${at}.teams`, by: 'rule', ...team })
    for (const organization of match.organizations ?? []) names.push({ path: `${at}.organizations`, by: 'rule', organization })
    for (const role of match.roles ?? []) names.push(typeof role === 'string' ? { path: `${at}.roles`, by: 'rule', role } : { path: `${at}.roles`, by: 'rule', ...role })
  })
  return names
}

/** Every list of access rules in the configuration, with where it is: the gateway's, each service's, each realm client's and its roles'. */
function ruleSources(config: Config): (readonly [string, readonly AccessRule[] | undefined])[] {
  return [
    ['gateway.access', config.gateway.access] as const,
    ...config.services.map((service, i) => [`services.${i}.access`, service.access] as const),
    ...config.realms.flatMap((realm, i) => realm.clients.flatMap((client, j) => [
      [`realms.${i}.clients.${j}.access`, client.access] as const,
      ...Object.entries(client.roles ?? {}).map(([role, rules]) => [`realms.${i}.clients.${j}.roles.${role}`, rules] as const),
    ])),
  ]
}

/** The usernames access rules name (`users`), of any source, as usernameKey writes them: what an account of that name reaches, no role gave it. */
export function usernamesInRules(config: Config): ReadonlySet<string> {
  const names = new Set<string>()
  for (const [, rules] of ruleSources(config)) {
    for (const rule of rules ?? []) for (const user of (rule.allow ?? rule.deny)!.users ?? []) names.add(usernameKey(typeof user === 'string' ? user : user.username))
  }
  return names
}

/**
 * Role definition, team and organization names the configuration uses that do not exist (yet): worth a warning at
 * start, not an error, since the rules and mappings apply as soon as they are created.
 */
export function unknownNames(config: Config, known: KnownNames): string[] {
  const problems: string[] = []
  for (const name of configuredNames(config)) {
    if (name.role !== undefined && !known.roles.has(name.role)) problems.push(`${name.path}: no role definition "${name.role}" yet (the rule applies once it exists)`)
    if (name.organization === undefined && name.team === undefined) continue
    const exists = name.team === undefined ? known.organizations.has(name.organization!)
      : name.organization === undefined ? known.teams.has(name.team)
      : known.teamKeys.has(teamKey(name.organization, name.team))
    if (exists) continue
    const what = name.team === undefined ? `organization "${name.organization}"` : `team "${name.organization === undefined ? name.team : teamName({ organization: name.organization, team: name.team })}"`
    problems.push(`${name.path}: no ${what} yet (the ${name.by} applies once it exists)`)
  }
  return problems
}

function compileRule(rule: AccessRule, position: number): CompiledRule {
  const allowed = rule.allow !== undefined
  const match = (rule.allow ?? rule.deny)!
  return { conditions: conditionsOf(match), decision: Object.freeze({ allowed, rule: position, description: describe(allowed, match) }) }
}

/** Whether every condition holds: a plain loop, where `every` with an arrow made a closure at each rule of each request. */
function allHold(conditions: readonly Condition[], request: AccessRequest): boolean {
  for (const condition of conditions) if (!condition(request)) return false
  return true
}

function conditionsOf(match: RuleMatch): Condition[] {
  const conditions: Condition[] = []
  if (match.superuser !== undefined) {
    const wanted = match.superuser
    conditions.push((r) => r.principal.user.isSuperuser === wanted)
  }
  if (match.users) {
    // In any letter case: a rule's `mallory` that missed the account `Mallory` let a deny pass.
    const byName = new Set(match.users.filter((u) => typeof u === 'string').map(usernameKey))
    // Each username with the sources it is named from: looked up without building a key at every request.
    const sourcesByName = new Map<string, Set<string>>()
    for (const u of match.users) if (typeof u !== 'string') sourcesByName.set(usernameKey(u.username), (sourcesByName.get(usernameKey(u.username)) ?? new Set()).add(u.source))
    conditions.push(({ principal: { user } }) => {
      const name = usernameKey(user.username)
      return byName.has(name) || (sourcesByName.get(name)?.has(user.source) ?? false)
    })
  }
  if (match.teams) {
    const byName = match.teams.filter((t) => typeof t === 'string')
    const inOrganization = match.teams.filter((t) => typeof t !== 'string').map((t) => teamKey(t.organization, t.team))
    conditions.push(eitherOf(anyOf(byName, (access) => access.teamNames), anyOf(inOrganization, (access) => access.teamKeys)))
  }
  if (match.organizations) conditions.push(anyOf(match.organizations, (access) => access.organizationNames))
  if (match.roles) {
    const byName = match.roles.filter((role) => typeof role === 'string')
    const heldWhere = match.roles.filter((role) => typeof role !== 'string').map((role) => roleKey(role.role, role.organization, role.team))
    conditions.push(eitherOf(anyOf(byName, (access) => access.roleNames), anyOf(heldWhere, (access) => access.roleKeys)))
  }
  if (match.methods) {
    const methods = new Set<string>(match.methods)
    // Services answer HEAD with their GET handler: a GET rule that left HEAD out would let HEAD read a denied
    // resource's headers, or refuse the HEAD a client probes with first (nginx's `limit_except GET` covers HEAD too).
    if (methods.has('GET')) methods.add('HEAD')
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
    conditions.push(({ principal }) => {
      for (const scope of scopes) if (principal.scopes?.has(scope) ?? principal.scope === scope) return true
      return false
    })
  }
  if (match.networks) {
    const inNetworks = compileAddressRanges(match.networks)
    conditions.push((r) => r.address !== undefined && inNetworks(r.address))
  }
  return conditions
}

/** What no request matches: a list of names that is empty. */
const NEVER: Condition = () => false

/** Whether the caller holds any of the names wanted. */
function anyOf(wanted: readonly string[], held: (access: UserAccess) => ReadonlySet<string>): Condition {
  if (wanted.length === 0) return NEVER
  return ({ access }) => {
    const set = held(access)
    if (set.size === 0) return false
    for (const name of wanted) if (set.has(name)) return true
    return false
  }
}

/** Whether either condition holds; a rule naming names of one kind only asks one. */
function eitherOf(first: Condition, second: Condition): Condition {
  if (first === NEVER) return second
  if (second === NEVER) return first
  return (r) => first(r) || second(r)
}

function userName(user: string | { username: string; source: string }): string {
  return typeof user === 'string' ? user : `${user.username} (${user.source})`
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
    const shown = key === 'users' ? match.users!.map(userName) : key === 'teams' ? match.teams!.map(teamName) : key === 'roles' ? match.roles!.map(roleName) : value
    return `${key}=${Array.isArray(shown) ? shown.join(',') : String(shown)}`
  })
  return `${allow ? 'allow' : 'deny'}${parts.length ? ' ' + parts.join(' ') : ''}`
}
