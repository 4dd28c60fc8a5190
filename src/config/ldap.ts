import { createRequire } from 'node:module'
import { z } from 'zod'
import { membershipMappingsSchema } from './access.ts'

const require = createRequire(import.meta.url)

/**
 * ldapts, loaded with the first `ldap` section (its filters are checked here) instead of at every start. Synchronous,
 * as validation is; src/directory/ldap.ts takes it from here too, so a process holds one copy.
 */
export function ldapts(): typeof import('ldapts') {
  return require('ldapts')
}

/**
 * The `ldap` section: where accounts from a directory come from (docs/ldap.md). Only checked here; the
 * connection is made on the first login (src/directory/ldap.ts).
 */

/** Checked as the URL parser reads it too: a port past 65535 or a host it refuses (`ldap://[1]`) matched the pattern. */
const ldapUrl = z.string().refine((value) => /^ldaps?:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?\/?$/.test(value) && URL.canParse(value), 'must be ldap://host[:port] or ldaps://host[:port], with a port up to 65535')
const dn = z.string().min(3).max(1024).regex(/^[^=,]+=/, 'must be a distinguished name, e.g. cn=admins,ou=groups,dc=example,dc=com')
/**
 * A group's DN: more than one RDN. In a YAML list written in brackets, `[cn=admins,ou=groups,dc=example,dc=com]`, the
 * commas separate items, so the list held four one-RDN names no group has, and the mapping silently matched nobody
 * (with superuser_groups, clearing every superuser's flag at their next login). No group sits at a directory's root:
 * a group DN of one RDN is that mistake, and refused. An escaped comma (`\,`, `\2C`) is part of its RDN.
 */
const groupDn = dn.refine((value) => /^(?:[^\\,]|\\.)*,/s.test(value), 'must be a whole group DN, of more than one part (cn=admins,ou=groups,dc=example,dc=com): in a YAML list in brackets, commas separate the items, so quote each DN or write one per line after -')
const attribute = z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'must be an LDAP attribute name')
const scope = z.enum(['one', 'sub']).default('sub').describe('`sub`: the base and everything below it; `one`: only its direct children.')

/**
 * A filter template is checked by parsing it, its escaped UTF-8 read as characters (withUtf8Unescaped, as a lookup
 * sends it), with harmless values in its placeholders.
 */
function filterTemplate(placeholders: string[], example: string) {
  return z.string().max(2048).superRefine((template, ctx) => {
    if (!placeholders.some((p) => template.includes(`{${p}}`))) {
      ctx.addIssue({ code: 'custom', message: `must contain ${placeholders.map((p) => `{${p}}`).join(' or ')}, e.g. ${example}` })
      return
    }
    const readable = withUtf8Unescaped(template)
    if (readable === undefined) {
      ctx.addIssue({ code: 'custom', message: 'escapes bytes that are not UTF-8 text (\\XX of 80 to FF); write a value\'s characters as they are, or as the \\XX escapes of their UTF-8 bytes' })
      return
    }
    try {
      ldapts().FilterParser.parseString(readable.replaceAll('{username}', 'x').replaceAll('{dn}', 'cn=x'))
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `is not a valid LDAP filter (RFC 4515): ${(error as Error).message.split('. Full string')[0]}` })
    }
  })
}

/** A run of `\\XX` escapes of bytes 80 to FF: the UTF-8 of characters beyond ASCII, in a filter's value (RFC 4515). */
const NON_ASCII_ESCAPES = /(?:\\[89a-fA-F][0-9a-fA-F])+/g
/** Reads UTF-8 that must be whole and valid, a leading byte order mark included as a character; shared with src/directory/ldap.ts. */
export const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * The filter with its escaped UTF-8 (`(sn=Lu\\c4\\8di\\c4\\87)`, RFC 4515's own example) written as the characters it
 * spells (`(sn=Lučić)`), which are never a filter's special characters; undefined when an escaped run is not UTF-8.
 * ldapts reads each `\\XX` as the character of that code and sends it in UTF-8, so `\\c4\\8d` would reach the
 * directory as four bytes, `Ä` and a control character, and the filter match nobody. ASCII escapes (`\\2a`, `\\28`) are
 * left as they are.
 */
export function withUtf8Unescaped(filter: string): string | undefined {
  let valid = true
  const readable = filter.replace(NON_ASCII_ESCAPES, (run) => {
    try {
      return UTF8.decode(Buffer.from(run.replaceAll('\\', ''), 'hex'))
    } catch {
      valid = false
      return run
    }
  })
  return valid ? readable : undefined
}

export const LdapSchema = z.object({
  servers: z.array(ldapUrl).min(1)
    .describe('Directory servers, tried in order when one cannot be reached: `ldaps://host:636` (TLS from the start) or `ldap://host:389` (with `start_tls`).'),
  start_tls: z.boolean().default(false)
    .describe('Upgrade `ldap://` connections with StartTLS (RFC 4513) before anything is sent. Fails closed when the server refuses.'),
  tls: z.object({
    ca_file: z.string().min(1).optional().describe('PEM file of the CA (or self-signed certificate) that signed the directory\'s certificate. Default: the system\'s CAs.'),
    reject_unauthorized: z.boolean().default(true).describe('Refuse a certificate that does not verify. Switch off only to diagnose; passwords then go to whoever answers.'),
  }).strict().default({ reject_unauthorized: true }).describe('How the directory\'s certificate is verified (ldaps:// and StartTLS).'),
  bind_dn: dn.describe('The service account for the search bind: Gatehouse binds as it to look users and groups up.'),
  bind_password: z.string().min(1).optional().describe('The service account\'s password. Keep it out of the file: `bind_password: ${NAME}` (an environment variable, as any string value may take), or `bind_password_env`.'),
  bind_password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional()
    .describe('Name of the environment variable holding the service account\'s password.'),
  user_search: z.object({
    base: dn.describe('Where users are searched, e.g. ou=people,dc=example,dc=com.'),
    filter: filterTemplate(['username'], '(uid={username})').default('(uid={username})')
      .describe('Filter finding one user; `{username}` is replaced by the typed username, escaped (RFC 4515). It must also find the entry by the username its account gets (`attributes.username`): the account check searches so.'),
    scope,
  }).strict().describe('How to find a user\'s entry.'),
  attributes: z.object({
    username: attribute.default('uid').describe('Attribute holding the username the account gets in Gatehouse.'),
    email: attribute.default('mail').describe('Attribute holding the email address.'),
    first_name: attribute.default('givenName').describe('Attribute holding the first name.'),
    last_name: attribute.default('sn').describe('Attribute holding the last name.'),
    uuid: attribute.default('entryUUID')
      .describe('Attribute holding the entry\'s stable identifier (`entryUUID`, RFC 4530; Active Directory: `objectGUID`, spelled so). An account stays with the entry it was made for: a later entry given the same username does not reach it. An entry without the attribute is not checked.'),
  }).strict().default({ username: 'uid', email: 'mail', first_name: 'givenName', last_name: 'sn', uuid: 'entryUUID' })
    .describe('Which attributes of the user\'s entry fill the account.'),
  group_search: z.object({
    base: dn.describe('Where groups are searched, e.g. ou=groups,dc=example,dc=com.'),
    filter: filterTemplate(['dn', 'username'], '(member={dn})').default('(|(&(objectClass=groupOfNames)(member={dn}))(&(objectClass=groupOfUniqueNames)(uniqueMember={dn})))')
      .describe('Filter finding the groups a user is in; `{dn}` is the user\'s DN and `{username}` the account\'s username, both escaped.'),
    scope,
  }).strict().optional().describe('How to find a user\'s groups. Without it, users belong to no group.'),
  superuser_groups: z.array(groupDn).default([])
    .describe('Group DNs whose members are superusers. When set, every login sets or clears is_superuser from membership; when empty, is_superuser is left as an administrator set it.'),
  auditor_groups: z.array(groupDn).default([])
    .describe('Group DNs whose members are system auditors; set or cleared on every login like superuser_groups.'),
  named_groups: z.record(z.string().regex(/^[\w.@+-]{1,150}$/, 'group names are 1-150 letters, digits and @ . + - _'), z.array(groupDn).min(1)).default({})
    .describe('Gatehouse group name -> directory group DNs. A user in any of the DNs is in the group; the account\'s groups are replaced on every login and passed to services in the identity token.'),
  memberships: membershipMappingsSchema(groupDn, 'Directory group DNs whose members get the membership.'),
  account_check: z.object({
    interval_seconds: z.number().min(0).max(86_400).default(300)
      .describe('Time between two checks of the active directory accounts that hold a session, token or realm grant: one whose entry is gone or no longer matches the user filter is disabled. One process among all on the database runs each check. 0: no periodic check (a realm refresh still checks its user).'),
    page_size: z.number().int().min(1).max(1000).default(100).describe('Accounts read and checked at a time.'),
  }).strict().default({ interval_seconds: 300, page_size: 100 })
    .describe('Disables accounts whose directory entry is gone, so their sessions, tokens and refresh tokens stop working. A directory that does not answer disables nobody.'),
  max_connections: z.number().int().min(1).max(1000).default(20)
    .describe('Directory conversations (one connection each) open at once, on each process. Logins beyond wait their turn within timeouts.lookup_seconds, so a slow or hanging directory is not flooded with connections.'),
  timeouts: z.object({
    connect_seconds: z.number().positive().max(60).default(3).describe('Time one server has to take the connection, TLS (StartTLS included) and, but on the last server, the service bind, before the next is tried.'),
    lookup_seconds: z.number().positive().max(120).default(5).describe('Time a whole directory login may take, all servers included, before it fails with 503 directory_unavailable.'),
  }).strict().default({ connect_seconds: 3, lookup_seconds: 5 }).describe('How long the directory may take.'),
}).strict().superRefine((ldap, ctx) => {
  if ((ldap.bind_password === undefined) === (ldap.bind_password_env === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['bind_password'], message: 'set exactly one of bind_password and bind_password_env' })
  }
  const mapped = ldap.superuser_groups.length + ldap.auditor_groups.length + Object.keys(ldap.named_groups).length + ldap.memberships.length
  if (mapped && !ldap.group_search) ctx.addIssue({ code: 'custom', path: ['group_search'], message: 'is needed to map groups' })
  if (ldap.start_tls && ldap.servers.some((url) => url.startsWith('ldaps:'))) {
    ctx.addIssue({ code: 'custom', path: ['start_tls'], message: 'is for ldap:// servers; ldaps:// servers use TLS from the start' })
  }
})

export type LdapConfig = z.output<typeof LdapSchema>

/**
 * What an operator must be told, wherever the directory is used, when passwords could reach someone else: the
 * certificate is not verified (whoever answers on the server's address receives the service account's and every
 * user's password), or an `ldap://` server on another host is used without StartTLS (the binds cross the network in
 * clear). A loopback address is left alone: nobody else reads that traffic.
 */
export function directoryWarnings(ldap: LdapConfig | undefined): string[] {
  if (!ldap) return []
  const warnings: string[] = []
  if (!ldap.tls.reject_unauthorized) {
    warnings.push('WARNING: ldap.tls.reject_unauthorized is false: the directory\'s certificate is not verified, so whoever answers at its address receives the service account\'s and users\' passwords. Use it only to diagnose; set ldap.tls.ca_file instead.')
  }
  if (!ldap.start_tls) {
    for (const server of ldap.servers.filter((url) => url.startsWith('ldap:') && !isLoopback(url))) {
      warnings.push(`WARNING: ${server} is used without ldap.start_tls: the service account's and users' passwords cross the network unencrypted. Set ldap.start_tls: true, or use an ldaps:// server.`)
    }
  }
  return warnings
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

export const passwordSourceNames = ['local', 'ldap'] as const
export const PasswordSourcesSchema = z.array(z.enum(passwordSourceNames)).min(1)
  .refine((list) => new Set(list).size === list.length, 'must not repeat a source')
  .refine((list) => list.includes('local'), 'must include local: local accounts (the first administrator among them) always have a way in')
  .default(['local', 'ldap'])
  .describe('The order in which password sources are asked. An account only ever checks its password with the source it came from, so a directory entry never takes over a local account; the order decides which source is asked first. `ldap` is used when the `ldap` section is set (after local when not listed).')
