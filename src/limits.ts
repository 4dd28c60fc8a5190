/**
 * Limits and names the command line's help states as the API and the configuration enforce them, in a module without
 * their schemas: the commands' definitions (src/cli/*-command.ts) are loaded by every command, `--help` included.
 */

/** The most characters a token's description may have, from the API and the command line alike. */
export const TOKEN_DESCRIPTION_MAX = 1000

/** Keycloak's "Rotated Secret Expiration" is days at most in practice; 30 days bounds how long a leaked one lives on. */
export const MAX_SECRET_GRACE_SECONDS = 30 * 24 * 3600

/** How a request may be authenticated at a service (`services[].accepts`). */
export const authMethods = ['basic', 'session', 'token', 'oidc'] as const
