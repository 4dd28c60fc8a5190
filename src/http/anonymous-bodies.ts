/**
 * How long a gateway-read body of anonymous clients (a realm's form, the public login's) may take to arrive once
 * reading it begins, at most: a few fields, which any client sends at once. One that trickles in holds its part of
 * `server.api_body_buffers_mb` and its connection for nothing (src/oidc/routes.ts `readRealmBody`,
 * src/api/body-parsers.ts).
 */
export const ANONYMOUS_BODY_SECONDS = 10

/** ANONYMOUS_BODY_SECONDS, or `server.timeouts.request_seconds` when that is shorter. */
export function anonymousBodyMs(requestSeconds: number): number {
  return Math.min(ANONYMOUS_BODY_SECONDS, requestSeconds) * 1000
}
