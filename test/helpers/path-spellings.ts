/**
 * Other spellings of a path an access rule denies, `<prefix>v2/hosts/*` (as a rule on a controller's hosts would be
 * written), and what the gateway must make of each, on the built-in proxy and in a forward-auth question alike.
 */
export function deniedPathSpellings(prefix: string): { target: string; code: 'access_denied' | 'unsafe_path' }[] {
  const under = prefix.slice(0, -1)
  return [
    // Spellings every server behind the gateway reads as the denied path: judged as that path.
    ...[
      `${prefix}v2/hosts/`, `${under}//v2/hosts/`, `${prefix}v2//hosts/1/`, `/${prefix}v2/hosts/`, `${prefix}v2/%68osts/`,
      `${prefix}v2/%68%6F%73%74%73/`, `http://gw${under}//v2/hosts/`,
    ].map((target) => ({ target, code: 'access_denied' as const })),
    // Spellings some server might read as it: refused outright.
    ...[
      `${prefix}v2%2Fhosts/`, `${prefix}v2%2fhosts/`, `${prefix}v2/x/%2e%2e/hosts/`, `${prefix}v2/x/..%2Fhosts/`,
      `${prefix}v2/./hosts/`, `${prefix}v2/%2e/hosts/`, `${prefix}v2/hosts;x/`, `${prefix}v2;/hosts/`, `${prefix}v2/hosts%3B/`,
      `${prefix}v2\\hosts/`, `${prefix}v2%5Chosts/`, `${prefix}v2/hosts%00/`,
    ].map((target) => ({ target, code: 'unsafe_path' as const })),
  ]
}

/**
 * Spellings that differ from the denied path by case or a trailing slash: another path, as in Envoy's and nginx's
 * prefix matches, which a service that routes by case and slash (Django, DRF) never serves as the denied one.
 */
export function otherPathsBesideDenied(prefix: string): string[] {
  return [`${prefix}v2/HOSTS/`, `${prefix}v2/Hosts/`, `${prefix}v2/hosts`, `${prefix}v2/%48OSTS/`]
}
