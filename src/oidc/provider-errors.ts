import type { default as Provider, errors as ProviderErrors, KoaContextWithOIDC } from 'oidc-provider'
// @ts-expect-error: oidc-provider declares types for its entry point only; these are the same classes it exports as `errors`.
import * as errorClasses from 'oidc-provider/lib/helpers/errors.js'
// @ts-expect-error: as above; the device page's errors, which it answers with the page again.
import { AlreadyUsedError } from 'oidc-provider/lib/helpers/re_render_errors.js'
// @ts-expect-error: as above; weak_cache.js holds each provider's internal configuration.
import weakCache from 'oidc-provider/lib/helpers/weak_cache.js'
// @ts-expect-error: as above; als.js holds the request a route of oidc-provider's is serving (`Provider.ctx`).
import providerRequests from 'oidc-provider/lib/helpers/als.js'

/**
 * oidc-provider's error classes, without the rest of it: its entry point loads Koa and every endpoint, which wait
 * for a realm's first request (src/oidc/provider.ts). The grant code throws these; oidc-provider answers them.
 */
export const errors: typeof ProviderErrors = errorClasses

/** The device page's "code has already been used", which it answers with the code form and that message. */
export const DeviceCodeAlreadyUsed: new (userCode?: string) => Error = AlreadyUsedError

/** How oidc-provider sends an authorization response or error back to the client, by response mode. */
type ResponseModeHandler = (ctx: KoaContextWithOIDC, redirectUri: string, out: Record<string, unknown>) => unknown

/** The part of a provider's internals Gatehouse adjusts: its response modes and grant handlers, registered when it is built. */
export function providerInternals(provider: Provider): { responseModes: Map<string, ResponseModeHandler>; grantTypeHandlers: Map<string, (ctx: KoaContextWithOIDC) => Promise<void>> } {
  return weakCache(provider)
}

/**
 * Runs `step` as a step of the request `ctx`, as oidc-provider's routes run theirs (its `Provider.ctx` is `ctx`): for
 * what a middleware of Gatehouse's, which runs around the routes, asks of oidc-provider's models for that request.
 */
export function asProviderStep<T>(ctx: KoaContextWithOIDC, step: () => T): T {
  return (providerRequests as { run<R>(store: unknown, fn: () => R): R }).run(ctx, step)
}

/** The request a route of oidc-provider's is serving, or a step runs as a step of (`asProviderStep`); undefined outside one. */
export function providerRequest(): KoaContextWithOIDC | undefined {
  return (providerRequests as { getStore(): KoaContextWithOIDC | undefined }).getStore()
}
