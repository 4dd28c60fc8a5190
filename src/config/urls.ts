import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/**
 * URLs that begin others: the gateway's public URL (the realms' issuers, every path written for a client) and an SSO
 * provider's issuer (its discovery document's address, and the `iss` its tokens must carry). A user or password in
 * one would be shown at start and, for the public URL, published in every discovery document; a query or fragment
 * would end the URLs written after it. An issuer has neither (OpenID Connect Discovery 1.0, section 3).
 */
export const BARE_URL_MESSAGE = 'must be scheme://host[:port][/path], without a user, password, query or fragment'

/** Whether `value` has no user, password, query or fragment; an unparsable value is the URL check's to report. */
export function isBareUrl(value: string): boolean {
  if (!URL.canParse(value)) return true
  const url = new URL(value)
  return !url.username && !url.password && !value.includes('?') && !value.includes('#')
}

/**
 * A trusted origin naming every subdomain of a domain, written as Django's CSRF_TRUSTED_ORIGINS takes it (the
 * platform's gateway reads `https://*.example.com` so): the scheme and port must be the same, the host the domain or
 * any name under it. Django's `is_same_domain` takes the domain itself too (`*.example.com` is `.example.com` to it).
 */
export interface SubdomainOrigin {
  readonly protocol: string
  readonly domain: string
  /** '' for the scheme's default port, as a URL writes it (and a browser's Origin leaves it out). */
  readonly port: string
}

export const SUBDOMAIN_ORIGIN_MESSAGE = 'a wildcard must be the whole first label of the host: http(s)://*.domain[:port], the domain a name of two labels or more (not an address, nor a public suffix such as com, co.uk or github.io, which every site under it would pass)'

/**
 * An origin as browsers send it, with at most a `/` after it: a path (`https://app.example.com/ui`) was taken as its
 * origin alone, trusting the whole site where one application on it was meant.
 */
export const ORIGIN_MESSAGE = 'must be an origin: http(s)://host[:port], nothing after it (no path, query, fragment or user)'
const BARE_ORIGIN = /^https?:\/\/[^/?#@\\]+\/?$/i

/** Whether `value` is an origin with nothing after it; an unparsable or non-http(s) value is the URL check's to report. */
export function isBareOrigin(value: string): boolean {
  return !URL.canParse(value) || !/^https?:/i.test(value) || BARE_ORIGIN.test(value)
}

/** `scheme://*.authority`, nothing after it but a `/`. */
const SUBDOMAIN_ORIGIN = /^(https?):\/\/\*\.([^/?#@\\*]+)\/?$/i
const IP_ADDRESS = /^(?:\d+\.\d+\.\d+\.\d+|\[.*\])$/

/** The subdomain origin `value` writes, or undefined when it is no such origin (one with a `*` anywhere else, say). */
export function subdomainOrigin(value: string): SubdomainOrigin | undefined {
  const match = SUBDOMAIN_ORIGIN.exec(value)
  if (!match) return undefined
  const url = URL.parse(`${match[1]}://${match[2]}`)
  if (!url || !url.hostname || IP_ADDRESS.test(url.hostname)) return undefined
  // `*.localhost` is one machine's names.
  if (url.hostname !== 'localhost' && isPublicSuffix(url.hostname)) return undefined
  return { protocol: url.protocol, domain: url.hostname, port: url.port }
}

/**
 * Whether names under `hostname` are registered by anyone (the Public Suffix List's ICANN and private sections:
 * `com`, `co.uk`, `github.io`), so a wildcard over it would trust every site under it. One label is one by the list's
 * default rule (`*.internal` as `*.com`). tldts, with its copy of the list, is loaded only for a wildcard origin.
 */
function isPublicSuffix(hostname: string): boolean {
  const { getPublicSuffix } = require('tldts') as typeof import('tldts')
  return getPublicSuffix(hostname, { allowPrivateDomains: true }) === hostname
}

/** Whether `value` is meant as a subdomain origin: the only place a `*` may be in a trusted origin. */
export function isWildcardOrigin(value: string): boolean {
  return value.includes('*')
}

/** Whether the origin (a parsed URL: its scheme, host and port) is one of the pattern's. */
export function matchesSubdomainOrigin(pattern: SubdomainOrigin, origin: URL): boolean {
  return origin.protocol === pattern.protocol && origin.port === pattern.port
    && (origin.hostname === pattern.domain || origin.hostname.endsWith(`.${pattern.domain}`))
}
