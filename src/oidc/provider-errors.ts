import type { errors as ProviderErrors } from 'oidc-provider'
// @ts-expect-error: oidc-provider declares types for its entry point only; these are the same classes it exports as `errors`.
import * as errorClasses from 'oidc-provider/lib/helpers/errors.js'

/**
 * oidc-provider's error classes, without the rest of it: its entry point loads Koa and every endpoint, which wait
 * for a realm's first request (src/oidc/provider.ts). The grant code throws these; oidc-provider answers them.
 */
export const errors: typeof ProviderErrors = errorClasses
