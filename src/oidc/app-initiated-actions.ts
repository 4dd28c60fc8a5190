import type { KoaContextWithOIDC } from 'oidc-provider'
// @ts-expect-error: oidc-provider declares types for its entry point only; this is the `interactionPolicy` it exports.
import * as interactionPolicy from 'oidc-provider/lib/helpers/interaction_policy/index.js'

/**
 * Keycloak's application-initiated actions: an authorization request with `kc_action` (keycloak-js
 * `login({ action })`) asks the person to do something with their account before going back to the application,
 * which learns how it went from `kc_action_status` (keycloak-js `onActionUpdate`). Gatehouse has two such actions,
 * the password update and the profile update; the realm answers any other as Keycloak answers an action it does not
 * have.
 */
export const KC_ACTION_PARAMETER = 'kc_action'
export const UPDATE_PASSWORD = 'UPDATE_PASSWORD'
export const UPDATE_PROFILE = 'UPDATE_PROFILE'

/** The actions the realm has, each a page after the login step. */
export type AccountAction = typeof UPDATE_PASSWORD | typeof UPDATE_PROFILE

export type KcActionStatus = 'success' | 'cancelled' | 'error'

/** How an action ended, kept in the login's result for the authorization response (`kcActionResponse`). */
export interface KcActionOutcome {
  action: string
  status: KcActionStatus
}

/** The member of an interaction's result that carries the outcome. */
export const KC_ACTION_RESULT = 'kcAction'

/**
 * Keycloak's "Maximum Age of Authentication" of its required actions (Constants.KC_ACTION_MAX_AGE): a browser whose
 * person typed their password longer ago than this, at the realm or at the gateway, is asked for it again before it
 * may perform an action (every required action has it, the profile update too).
 */
export const KC_ACTION_MAX_AUTH_AGE_SECONDS = 300

/** The reason oidc-provider's login prompt gives for an action to perform (`interactionDetails().prompt.reasons`). */
export const KC_ACTION_REASON = 'kc_action'
/** Its description, the `error_description` of its `interaction_required` with `prompt=none`. */
export const KC_ACTION_DESCRIPTION = 'The application asked for an action on the account'

/**
 * The action an authorization request asks for, without the parameter Keycloak lets follow a colon
 * (`AuthorizationEndpoint.performActionOnParameters`); undefined when it asks for none.
 */
export function requestedAction(params: Record<string, unknown> | undefined): string | undefined {
  const value = params?.[KC_ACTION_PARAMETER]
  if (typeof value !== 'string' || value === '') return undefined
  return value.split(':')[0]
}

/** The action an authorization request asks for, when the realm has it (names compared as Keycloak does: exactly). */
export function accountAction(params: Record<string, unknown> | undefined): AccountAction | undefined {
  const action = requestedAction(params)
  return action === UPDATE_PASSWORD || action === UPDATE_PROFILE ? action : undefined
}

/** oidc-provider's routes of the authorization code flow's authorization (the device flow's are others). */
const AUTHORIZATION_ROUTES = new Set(['authorization', 'resume'])

/**
 * oidc-provider's interaction policy with one check more in its login prompt: an authorization asking for an action
 * the realm has is sent to the login step even with a realm session, which finishes it with the action's outcome.
 * With `prompt=none` it is answered `interaction_required`, as Keycloak answers a required action it cannot show.
 * Only the authorization endpoint asks: the device flow has no redirect to bring the outcome back on.
 */
export function interactionPolicyWithActions() {
  const policy = interactionPolicy.base()
  policy.get('login').checks.add(new interactionPolicy.Check(
    KC_ACTION_REASON,
    KC_ACTION_DESCRIPTION,
    'interaction_required',
    (ctx: KoaContextWithOIDC) => AUTHORIZATION_ROUTES.has(ctx.oidc.route) &&
      accountAction(ctx.oidc.params as Record<string, unknown>) !== undefined &&
      (ctx.oidc.result as Record<string, unknown> | undefined)?.[KC_ACTION_RESULT] === undefined,
    // When the realm session's person typed their password, at the realm or at the gateway whose session signed it
    // in: the login step asks for it again past the action's maximum age.
    (ctx: KoaContextWithOIDC) => ({ auth_time: ctx.oidc.session?.authTime() }),
  ))
  return policy
}

/**
 * The members Keycloak adds to a successful authorization response for `kc_action` (OIDCLoginProtocol
 * `authenticated`): the outcome the login step kept, named with its action once the person answered its form; or
 * `kc_action_status=error` alone, for an action the realm does not have or that does not apply to the account, as
 * Keycloak answers an action not configured for the realm or one that ignores the user (it names the action only
 * once its form was processed). Nothing for an error response, nor without `kc_action`.
 */
export function kcActionResponse(ctx: KoaContextWithOIDC, out: Record<string, unknown>): Record<string, unknown> {
  if (out.code === undefined) return out
  const requested = requestedAction(ctx.oidc.params as Record<string, unknown> | undefined)
  if (requested === undefined) return out
  const outcome = (ctx.oidc.result as Record<string, unknown> | undefined)?.[KC_ACTION_RESULT] as KcActionOutcome | undefined
  if (outcome === undefined || outcome.status === 'error') return { ...out, kc_action_status: 'error' }
  return { ...out, kc_action: outcome.action, kc_action_status: outcome.status }
}
