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
