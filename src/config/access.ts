import { z } from 'zod'
import { MANAGED_ROLES } from '../access/permissions.ts'
import { isAddressRange } from '../http/address-ranges.ts'

/**
 * A service's `access` rules (docs/access.md): who may use it, in order, first match wins. Only checked here;
 * src/access/rules.ts compiles them once at start.
 */

export const RULE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

/**
 * A method as a rule names it. Requests' methods are upper case (Node's parser takes no other), so `get` can only
 * mean GET: it is read as GET rather than refused.
 */
const ruleMethod = z.preprocess(
  (value) => (typeof value === 'string' ? value.toUpperCase() : value),
  z.enum(RULE_METHODS, { error: `must be one of ${RULE_METHODS.join(', ')}` }),
)

const names = z.array(z.string().min(1).max(512)).min(1)
/** RFC 6749 section 3.3: scope tokens are printable ASCII without space, quote or backslash. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/, 'must be a scope token (printable characters, no spaces)')
const rulePath = z.string().regex(/^\/[^?#\s*]*\*?$/, 'must be an absolute path, optionally ending in "*" to match everything under it')

/**
 * An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address; an IPv4-mapped one is the IPv4 block it maps
 * (src/http/address-ranges.ts). `server.trusted_proxies` and `metrics.allow_from` take the same.
 */
export const cidr = z.string().refine(isAddressRange, 'must be an IP address or a CIDR block, e.g. 10.0.0.0/8')

/**
 * A role held on one organization, or on one team of it (`team` named): the qualified teams' shape, with the role.
 * The managed roles' kinds are known here, so a scope one of them can never be held on is refused at load; a
 * custom role's kind is in the database, and a scope it is never held on simply matches no one.
 */
const ScopedRoleSchema = z.object({
  role: z.string().min(1).max(512).describe('The role definition\'s name (e.g. Team Admin).'),
  organization: z.string().min(1).max(512).describe('The organization the role is held on, or whose team it is held on.'),
  team: z.string().min(1).max(512).optional().describe('The team of that organization the role is held on; absent: held on the organization itself.'),
}).strict().superRefine((scoped, ctx) => {
  const managed = MANAGED_ROLES.find((role) => role.name === scoped.role)
  if (!managed) return
  const heldOn = scoped.team === undefined ? 'shared.organization' : 'shared.team'
  if (managed.contentType === heldOn) return
  ctx.addIssue({
    code: 'custom',
    message: managed.contentType === null
      ? `"${scoped.role}" is held platform-wide, never on an organization or team: name it alone`
      : managed.contentType === 'shared.team'
        ? `"${scoped.role}" is held on a team: name the team too`
        : `"${scoped.role}" is held on an organization: leave out the team`,
  })
})

/** What a rule matches; every condition it names must hold (a list: any of its values), and a rule naming none matches everyone signed in. */
export const RuleMatchSchema = z.object({
  superuser: z.boolean().optional().describe('true: superusers only; false: everyone but superusers.'),
  users: z.array(z.union([
    z.string().min(1).max(512),
    z.object({
      username: z.string().min(1).max(512).describe('The exact username.'),
      source: z.enum(['local', 'ldap', 'sso']).describe('Where the account comes from: local, ldap or sso.'),
    }).strict(),
  ])).min(1).optional()
    .describe('Users: a username alone (the account of that name, whatever its source), or { username, source }: that name only from that source, which a name an upstream provider picks does not meet.'),
  teams: z.array(z.union([
    z.string().min(1).max(512),
    z.object({
      organization: z.string().min(1).max(512).describe('The name of the organization the team belongs to.'),
      team: z.string().min(1).max(512).describe('The team\'s name within that organization.'),
    }).strict(),
  ])).min(1).optional()
    .describe('Teams: a name alone (a team of that name in any organization, also one an organization admin makes), or { organization, team }: members of any of them.'),
  organizations: names.optional().describe('Organization names: members of any of them.'),
  roles: z.array(z.union([z.string().min(1).max(512), ScopedRoleSchema])).min(1).optional()
    .describe('Roles: a role definition\'s name alone (e.g. Platform Auditor), held on anything, or { role, organization, team }: held on that organization, or on that team of it: holders of any of them.'),
  methods: z.array(ruleMethod).min(1).optional().describe('HTTP methods, any case; GET covers HEAD too.'),
  paths: z.array(rulePath).min(1).optional().describe('Request paths under the service prefix: exact, or a prefix ending in `*`.'),
  auth_methods: z.array(z.enum(['basic', 'session', 'token', 'oidc'])).min(1).optional().describe('How the caller signed in.'),
  scopes: z.array(scopeToken).min(1).optional().describe('Token scopes (a personal token\'s read/write, an OIDC token\'s scopes): any of them.'),
  networks: z.array(cidr).min(1).optional().describe('Client networks (CIDR), matched against the trusted client address (see server.trusted_proxies).'),
}).strict()

export const AccessRuleSchema = z.object({
  allow: RuleMatchSchema.optional().describe('Let the request through when this matches.'),
  deny: RuleMatchSchema.optional().describe('Refuse the request with 403 access_denied when this matches.'),
}).strict().superRefine((rule, ctx) => {
  if ((rule.allow === undefined) === (rule.deny === undefined)) ctx.addIssue({ code: 'custom', message: 'a rule is either { allow: {...} } or { deny: {...} }' })
})

export const AccessRulesSchema = z.array(AccessRuleSchema).min(1)
  .describe('Who may use the service, in order: the first rule that matches decides; a signed-in caller no rule matches gets 403 access_denied. Absent: every signed-in caller.')

export type AccessRule = z.output<typeof AccessRuleSchema>
export type RuleMatch = z.output<typeof RuleMatchSchema>
export type ScopedRole = z.output<typeof ScopedRoleSchema>

/**
 * A directory group or SSO claim value mapped to a membership: in the organization, or in its team when `team` is
 * named, as a member or an admin. Applied at each login (src/access/mappings.ts).
 */
export function membershipMappingsSchema<T extends z.ZodType<string>>(groupValue: T, groupsHelp: string) {
  return z.array(z.object({
    organization: z.string().min(1).max(512).describe('The organization\'s name; it must exist (a mapping to a missing one is skipped until it does; serve warns of it at start).'),
    team: z.string().min(1).max(512).optional().describe('A team of that organization; absent: the membership is in the organization itself.'),
    role: z.enum(['member', 'admin']).default('member').describe('member: Team Member or Organization Member; admin: Team Admin or Organization Admin.'),
    groups: z.array(groupValue).min(1).describe(groupsHelp),
  }).strict()).default([])
    .describe('Teams and organizations from groups, set at every login: a user in none of a mapping\'s groups loses what it gives (other roles are left alone), and their cached credentials are dropped when anything changed.')
}

export type MembershipMapping = { organization: string; team?: string | undefined; role: 'member' | 'admin'; groups: string[] }
