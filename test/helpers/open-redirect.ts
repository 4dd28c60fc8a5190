/**
 * `next` values that must never take a browser off the gateway after a login: each spelling a browser resolves
 * to another origin, or to a path that, written alone as a Location, would name another host.
 */
export const OFF_SITE_NEXTS = [
  'https://evil.example/',
  '//evil.example/x',
  '///evil.example/',
  '/.//evil.example/',
  '/x/..//evil.example/',
  '/%2e//evil.example/',
  '/%2E%2E//evil.example/',
  './/evil.example/',
  '/\\evil.example/x',
  '\\\\evil.example/',
  '/\\/evil.example/',
  '\\/evil.example/',
  '/\t/evil.example',
  '/\n/evil.example',
  '/\r\n/evil.example',
  '\t//evil.example/',
  ' //evil.example/',
  'https:evil.example',
  'https:/\\evil.example',
  'javascript:alert(1)',
  'data:text/html,<script>alert(1)</script>',
  '/%5C/evil.example/',
  '/%2F/evil.example/',
]

/** The same list with the gateway's own address in the userinfo tricks. */
export function offSiteNexts(gatewayUrl: string): string[] {
  return [...OFF_SITE_NEXTS, `${gatewayUrl}@evil.example/`, `${gatewayUrl}%40evil.example/`, `${gatewayUrl}:@evil.example/`]
}

/** Where a browser goes for a Location received from `pageUrl`. */
export function resolvedOrigin(location: string, pageUrl: string): string {
  return new URL(location, pageUrl).origin
}
