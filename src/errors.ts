import type { FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorPage } from './pages/error-page.ts'
import { UNFRAMED_PAGE_HEADERS } from './pages/html.ts'
import type { RequestContext } from './context.ts'
import type { GatewayRequest } from './http/gateway-request.ts'
import { markCutByGateway, markReplacedAnswer, type RefusedOnArrival } from './http/answer-outcome.ts'
import { closeLingeringAfter, lingering, lingeringClose } from './http/lingering-close.ts'
import { wantsHtml } from './http/negotiation.ts'
import { STATUS_CODES } from './http/node-http.ts'
import { assignedRequestIdOf } from './http/request-id.ts'

/** Every stable error code Gatehouse answers with; each has exactly one class below. */
export type ErrorCode =
  | 'bad_request' | 'invalid' | 'invalid_json' | 'unsafe_path' | 'invalid_host' | 'malformed_escape'
  | 'sso_login_unknown' | 'sso_login_expired' | 'sso_callback_invalid' | 'sso_code_missing' | 'sso_code_rejected'
  | 'invalid_request'
  | 'not_authenticated' | 'invalid_credentials' | 'malformed_credentials' | 'account_disabled' | 'account_locked'
  | 'basic_auth_disabled' | 'credentials_not_accepted' | 'invalid_token' | 'malformed_token' | 'token_checksum_mismatch'
  | 'token_expired' | 'invalid_session' | 'session_expired' | 'directory_username_invalid' | 'password_change_required'
  | 'password_expired' | 'account_expired'
  | 'sso_access_denied'
  | 'permission_denied' | 'insufficient_scope' | 'self_lockout' | 'managed_by_source' | 'external_users_cannot_create_tokens'
  | 'access_denied' | 'managed_role'
  | 'not_token_owner' | 'account_source_conflict' | 'sso_identity_conflict'
  | 'sso_username_invalid' | 'sso_nonce_mismatch' | 'sso_state_mismatch'
  | 'csrf_origin_mismatch' | 'csrf_referer_missing' | 'csrf_referer_malformed' | 'csrf_referer_insecure'
  | 'csrf_referer_mismatch' | 'csrf_cookie_missing' | 'csrf_cookie_malformed' | 'csrf_token_missing' | 'csrf_token_incorrect'
  | 'not_found' | 'no_session' | 'sso_provider_unknown' | 'method_not_allowed'
  | 'request_timeout' | 'conflict' | 'username_taken' | 'sso_login_in_progress' | 'account_changed' | 'payload_too_large' | 'method_override_unread'
  | 'unsupported_media_type' | 'login_throttled' | 'sign_ins_throttled' | 'client_tokens_throttled' | 'changes_throttled' | 'headers_too_large' | 'expectation_failed' | 'http_version_not_supported'
  | 'internal_error' | 'upstream_unavailable' | 'sso_provider_error' | 'sso_response_invalid'
  | 'database_unavailable' | 'transaction_conflict' | 'directory_unavailable' | 'password_checks_busy' | 'body_buffers_full' | 'password_check_failed' | 'password_check_abandoned' | 'sso_provider_unavailable' | 'upstream_busy' | 'upstream_timeout'
  | 'upstream_handshake_invalid'
  | 'invalid_upgrade' | 'websocket_version_unsupported' | 'cors_not_allowed' | 'missing_original_uri' | 'missing_original_method' | 'invalid_original_request' | 'untrusted_proxy'

export interface ErrorOptions {
  /** Per-field messages for validation failures, keyed by the field's name or dotted path. */
  fields?: Record<string, string[]>
  /** Headers the response must carry, e.g. WWW-Authenticate challenges. */
  headers?: Record<string, string | string[]>
  cause?: unknown
}

/**
 * Every error Gatehouse answers with, and the one place that turns them into responses, after node-oidc-provider's
 * helpers/errors.js and jose's error classes: one class per stable `code`, each with its status and default
 * message as static fields, so callers test with `instanceof`, never by comparing codes. `code` is meant for
 * programs; `message` is for people. 5xx details are never shown.
 */
export abstract class GatehouseError extends Error {
  static readonly status: number
  static readonly code: ErrorCode
  static readonly defaultMessage: string
  readonly status: number
  readonly code: ErrorCode
  readonly fields: Record<string, string[]> | undefined
  readonly headers: Record<string, string | string[]>

  constructor(message?: string, options: ErrorOptions = {}) {
    const type = new.target as unknown as { status: number; code: ErrorCode; defaultMessage: string }
    super(message ?? type.defaultMessage, { cause: options.cause })
    this.name = new.target.name
    this.status = type.status
    this.code = type.code
    this.fields = options.fields && withEchoedNames(options.fields)
    this.headers = { ...options.headers }
  }
}

function secondsInWords(seconds: number): string {
  return seconds === 1 ? '1 second' : `${seconds} seconds`
}

// 400

export class BadRequest extends GatehouseError {
  static override readonly status: number = 400
  static override readonly code: ErrorCode = 'bad_request'
  static override readonly defaultMessage: string = 'Bad request.'
}

/** Django REST framework's wording for text carrying a NUL character (its ProhibitNullCharactersValidator). */
export const NUL_MESSAGE = 'Null characters are not allowed.'

/**
 * The most fields one refusal names one by one for the same problem (unknown, or carrying a NUL): a body of a
 * megabyte can hold tens of thousands, and naming each (three times over, in `detail`, the fields and `errors`)
 * would answer anyone, a login without credentials too, with several times what they sent.
 */
const MAX_FIELDS_NAMED = 20

/** The most of a name or value a client sent that a refusal repeats: enough to know it by, and the answer stays short. */
const MAX_ECHOED = 64

/** Text a client sent (a field's name, a value) as a refusal repeats it: cut to MAX_ECHOED characters. */
function echoed(text: string): string {
  return text.length > MAX_ECHOED ? `${text.slice(0, MAX_ECHOED)}…` : text
}

/**
 * Problems by field with each field's name as a refusal repeats it: an unknown field's name is the client's to size,
 * and it is written three times (in `detail`, the body's top level and `errors`).
 */
function withEchoedNames(fields: Record<string, string[]>): Record<string, string[]> {
  const names = Object.keys(fields)
  if (names.every((name) => name.length <= MAX_ECHOED)) return fields
  const bounded = fieldProblems()
  for (const name of names) (bounded[echoed(name)] ??= []).push(...fields[name]!)
  return bounded
}

/** The fields a refusal names in its `detail`, the first MAX_FIELDS_NAMED of them. */
function fieldsInWords(fields: Record<string, string[]>): string {
  const names = Object.keys(fields)
  const unnamed = names.length - MAX_FIELDS_NAMED
  return names.slice(0, MAX_FIELDS_NAMED).map(echoed).join(', ') + (unnamed > 0 ? ` and ${unnamed.toLocaleString('en-US')} more` : '')
}

/**
 * An empty set of problems by field name, with no prototype: a field named `constructor`, `toString` or `__proto__`
 * (anyone may send one) is then a field like any other, not the method every object has.
 */
export function fieldProblems(): Record<string, string[]> {
  return Object.create(null) as Record<string, string[]>
}

/**
 * Adds `message` to each of the fields `names` in `fields` (made by `fieldProblems`), the first MAX_FIELDS_NAMED by name, and counts the rest
 * under `non_field_errors` ("And 1,234 more `others`.").
 */
export function addSameProblem(fields: Record<string, string[]>, names: readonly string[], message: string, others: string): Record<string, string[]> {
  for (const name of names.slice(0, MAX_FIELDS_NAMED)) (fields[name] ??= []).push(message)
  const unnamed = names.length - MAX_FIELDS_NAMED
  if (unnamed > 0) (fields.non_field_errors ??= []).push(`And ${unnamed.toLocaleString('en-US')} more ${others}.`)
  return fields
}

export class ValidationFailed extends GatehouseError {
  static override readonly status: number = 400
  static override readonly code: ErrorCode = 'invalid'
  static override readonly defaultMessage: string = 'Invalid input.'

  /**
   * Fields whose one message the body's top level shows as a bare string, as Django REST framework sends a
   * ValidationError a view raises with a string (`{"instances": "..."}`); under `errors` it is a list as always.
   */
  readonly bare: ReadonlySet<string>

  /** Without `fields` (a schema failure Fastify reports as one message), the body has no `errors`. */
  constructor(fields: Record<string, string[]> | undefined, message?: string, options: { bare?: readonly string[] } = {}) {
    const named = fields && withEchoedNames(fields)
    super(message ?? `Invalid value for ${fieldsInWords(named ?? {})}.`, { fields: named })
    this.bare = new Set(options.bare)
  }
}

/** Django REST framework's PrimaryKeyRelatedField's words for a whole number that names no object. */
export const pkDoesNotExist = (pk: unknown): string => `Invalid pk "${echoed(String(pk))}" - object does not exist.`

/** The organization or team a role is given on is not there, in Django REST framework's words for a missing pk on `object_id`. */
export class AssignedObjectMissing extends ValidationFailed {
  constructor(objectId: number) {
    super({ object_id: [pkDoesNotExist(objectId)] })
  }
}

/** The user or team a role is given to is not there, in the same words, on the field that names them. */
export class AssigneeMissing extends ValidationFailed {
  readonly id: number

  constructor(field: 'user' | 'team', id: number) {
    super({ [field]: [pkDoesNotExist(id)] })
    this.id = id
  }
}

export class InvalidJson extends BadRequest {
  static override readonly code: ErrorCode = 'invalid_json'
  static override readonly defaultMessage: string = 'The request body is not valid JSON.'
}

export class UnsafePath extends BadRequest {
  static override readonly code: ErrorCode = 'unsafe_path'
  static override readonly defaultMessage: string = 'The request target must be a plain path (starting with "/", without dot segments or encoded separators).'
}

export class InvalidHost extends BadRequest {
  static override readonly code: ErrorCode = 'invalid_host'
  static override readonly defaultMessage: string = 'The Host header does not name a valid host.'
}

export class SsoLoginUnknown extends BadRequest {
  static override readonly code: ErrorCode = 'sso_login_unknown'
  static override readonly defaultMessage: string = 'This sign-in is unknown or was used already. Start again.'
}

export class SsoLoginExpired extends BadRequest {
  static override readonly code: ErrorCode = 'sso_login_expired'
  static override readonly defaultMessage: string = 'This sign-in took too long and expired. Start again.'
}

export class SsoCallbackInvalid extends BadRequest {
  static override readonly code: ErrorCode = 'sso_callback_invalid'
}

export class SsoCodeMissing extends BadRequest {
  static override readonly code: ErrorCode = 'sso_code_missing'
  static override readonly defaultMessage: string = 'The sign-in answer has no authorization code.'
}

export class SsoCodeRejected extends BadRequest {
  static override readonly code: ErrorCode = 'sso_code_rejected'
}

/**
 * A provider's back-channel logout request that fails a check (OpenID Connect Back-Channel Logout 1.0, 2.8: a 400,
 * with the OAuth error `invalid_request`): nothing was ended. The message says which check, for the provider's operator.
 */
export class SsoLogoutTokenInvalid extends BadRequest {
  static override readonly code: ErrorCode = 'invalid_request'
  static override readonly defaultMessage: string = 'The logout token is invalid.'
}

/** The router could not decode the path's percent escapes, or the query's are malformed (src/http/request-target.ts). */
export class MalformedEscape extends BadRequest {
  static override readonly code: ErrorCode = 'malformed_escape'
  static override readonly defaultMessage: string = 'The request target has a malformed percent escape.'
}

/** 400 with the field's message, as the platform answers a duplicate username (Django's unique validator). */
export class UsernameTaken extends BadRequest {
  static override readonly code: ErrorCode = 'username_taken'
  static override readonly defaultMessage: string = 'A user with that username already exists.'

  constructor() {
    super(undefined, { fields: { username: [UsernameTaken.defaultMessage] } })
  }
}

/** A WebSocket opening handshake that RFC 6455 §4.2.1 does not allow; it never reaches the service. */
export class InvalidUpgrade extends BadRequest {
  static override readonly code: ErrorCode = 'invalid_upgrade'
  static override readonly defaultMessage: string = 'This WebSocket handshake is not one RFC 6455 allows.'
}

/** A forward-authentication request that does not say which request it asks about (src/gateway/forward-auth.ts). */
export class MissingOriginalUri extends BadRequest {
  static override readonly code: ErrorCode = 'missing_original_uri'
  static override readonly defaultMessage: string = 'The asking proxy must send the original request\'s target.'
}

/** A forward-authentication request that does not say the original method: judged as a GET it would let any write pass. */
export class MissingOriginalMethod extends BadRequest {
  static override readonly code: ErrorCode = 'missing_original_method'
  static override readonly defaultMessage: string = 'The asking proxy must send the original request\'s method.'
}

export class InvalidOriginalRequest extends BadRequest {
  static override readonly code: ErrorCode = 'invalid_original_request'
  static override readonly defaultMessage: string = 'The original request\'s method or target is not valid.'
}

// 401: every refusal of a credential, or its absence. The challenge headers tell the client which kinds the place accepts.

export abstract class Unauthenticated extends GatehouseError {
  static override readonly status: number = 401
}

export class NotAuthenticated extends Unauthenticated {
  static override readonly code: ErrorCode = 'not_authenticated'
  static override readonly defaultMessage: string = 'Authentication credentials were not provided.'

  constructor(message?: string, challenges: string[] = []) {
    super(message, challenges.length ? { headers: { 'www-authenticate': challenges } } : {})
  }
}

/** Adds the challenges of the place that refused (RFC 9110: a 401 carries WWW-Authenticate) when the error has none. */
export function withChallenges(error: unknown, challenges: string[]): unknown {
  if (error instanceof Unauthenticated && !error.headers['www-authenticate'] && challenges.length) {
    error.headers['www-authenticate'] = challenges
  }
  return error
}

/**
 * A 401's challenges as one field, a list (RFC 9110 §11.6.1), as sent to this request (a script's without Basic):
 * nginx before 1.23 passes on only the first WWW-Authenticate field of an `auth_request` answer.
 */
export function challengesInOneField(request: Pick<GatewayRequest, 'headers'>, error: GatehouseError): void {
  const challenges = error.headers['www-authenticate']
  if (!Array.isArray(challenges)) return
  const sent = isScriptRequest(request) ? withoutBasicChallenge(challenges) : challenges
  if (sent.length) error.headers['www-authenticate'] = sent.join(', ')
  else delete error.headers['www-authenticate']
}

/** A wrong password or an unknown username: the only refusal that counts towards a lockout (src/directory/lockout.ts). */
export class InvalidCredentials extends Unauthenticated {
  static override readonly code: ErrorCode = 'invalid_credentials'
  static override readonly defaultMessage: string = 'Invalid username or password.'
}

export class MalformedCredentials extends Unauthenticated {
  static override readonly code: ErrorCode = 'malformed_credentials'
}

/** The account behind a credential that checked out is disabled or gone; decided once, in src/auth/pipeline.ts. */
export class AccountDisabled extends Unauthenticated {
  static override readonly code: ErrorCode = 'account_disabled'
  static override readonly defaultMessage: string = 'User inactive or deleted.'
}

/** Too many failed password checks for this username; checks are refused unseen until the lock ends (src/directory/lockout.ts). */
export class AccountLocked extends Unauthenticated {
  static override readonly code: ErrorCode = 'account_locked'

  constructor(retryAfterSeconds: number) {
    super(`Too many failed logins for this username. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, { headers: { 'retry-after': String(retryAfterSeconds) } })
  }
}

export class BasicAuthDisabled extends Unauthenticated {
  static override readonly code: ErrorCode = 'basic_auth_disabled'
  static override readonly defaultMessage: string = 'Basic authentication is disabled.'
}

export class CredentialsNotAccepted extends Unauthenticated {
  static override readonly code: ErrorCode = 'credentials_not_accepted'
}

export class InvalidToken extends Unauthenticated {
  static override readonly code: ErrorCode = 'invalid_token'
  static override readonly defaultMessage: string = 'Invalid token: it does not exist or was revoked.'
}

export class MalformedToken extends Unauthenticated {
  static override readonly code: ErrorCode = 'malformed_token'
}

export class TokenChecksumMismatch extends Unauthenticated {
  static override readonly code: ErrorCode = 'token_checksum_mismatch'
  static override readonly defaultMessage: string = 'Malformed token: its checksum does not match (mistyped or damaged).'
}

export class TokenExpired extends Unauthenticated {
  static override readonly code: ErrorCode = 'token_expired'
  static override readonly defaultMessage: string = 'Token has expired.'
}

export class InvalidSession extends Unauthenticated {
  static override readonly code: ErrorCode = 'invalid_session'
  static override readonly defaultMessage: string = 'Invalid session.'
}

export class SessionExpired extends Unauthenticated {
  static override readonly code: ErrorCode = 'session_expired'
  static override readonly defaultMessage: string = 'Session expired.'
}

export class DirectoryUsernameInvalid extends Unauthenticated {
  static override readonly code: ErrorCode = 'directory_username_invalid'
  static override readonly defaultMessage: string = 'The directory entry has no username Gatehouse can use (see ldap.attributes.username).'
}

/** The directory took the password but allows nothing with it until it is changed (an administrator set it). */
export class PasswordChangeRequired extends Unauthenticated {
  static override readonly code: ErrorCode = 'password_change_required'
  static override readonly defaultMessage: string = 'The directory requires this password to be changed before it is used; change it with your directory\'s tools, then sign in again.'
}

/** The directory says the password was right but has expired (Active Directory's bind refusal `data 532`). */
export class PasswordExpired extends Unauthenticated {
  static override readonly code: ErrorCode = 'password_expired'
  static override readonly defaultMessage: string = 'The directory says this password has expired; change it with your directory\'s tools, then sign in again.'
}

/** The directory says the password was right but the account has expired (Active Directory's bind refusal `data 701`). */
export class AccountExpired extends Unauthenticated {
  static override readonly code: ErrorCode = 'account_expired'
  static override readonly defaultMessage: string = 'The directory account has expired.'
}

export class SsoAccessDenied extends Unauthenticated {
  static override readonly code: ErrorCode = 'sso_access_denied'
}

// 403

export abstract class Forbidden extends GatehouseError {
  static override readonly status: number = 403
}

export class PermissionDenied extends Forbidden {
  static override readonly code: ErrorCode = 'permission_denied'
  static override readonly defaultMessage: string = 'You do not have permission to perform this action.'
}

/** A service's access rules refuse a signed-in caller (src/access/rules.ts); the message names the rule, or says none allowed. */
export class AccessDenied extends Forbidden {
  static override readonly code: ErrorCode = 'access_denied'
  static override readonly defaultMessage: string = 'No access rule of this service allows this request.'
}

/**
 * The platform's managed role definitions are fixed (src/access/permissions.ts): a change or delete is 400, as
 * django-ansible-base's RoleDefinitionViewSet answers (a ValidationError), with its words.
 */
export class ManagedRole extends GatehouseError {
  static override readonly status: number = 400
  static override readonly code: ErrorCode = 'managed_role'
  static override readonly defaultMessage: string = 'Role is managed by the system: managed role definitions cannot be changed or deleted.'
}

/** A CORS preflight for an origin, method or header the service's `cors` does not allow. */
export class CorsRefused extends Forbidden {
  static override readonly code: ErrorCode = 'cors_not_allowed'
  static override readonly defaultMessage: string = 'This service does not allow that from other origins.'
}

/** Forward authentication asked by an address that is not in `server.trusted_proxies`. */
export class UntrustedProxy extends Forbidden {
  static override readonly code: ErrorCode = 'untrusted_proxy'
  static override readonly defaultMessage: string = 'Forward authentication answers only the proxies in server.trusted_proxies.'
}

export class InsufficientScope extends Forbidden {
  static override readonly code: ErrorCode = 'insufficient_scope'
  static override readonly defaultMessage: string = 'This token is read-only: it allows GET, HEAD and OPTIONS only.'
}

export class SelfLockout extends Forbidden {
  static override readonly code: ErrorCode = 'self_lockout'
}

export class ManagedBySource extends Forbidden {
  static override readonly code: ErrorCode = 'managed_by_source'
}

export class ExternalUsersCannotCreateTokens extends Forbidden {
  static override readonly code: ErrorCode = 'external_users_cannot_create_tokens'
  static override readonly defaultMessage: string = 'External users may not create OAuth2 tokens: the setting allow_external_users_to_create_oauth2_tokens is off.'
}

export class NotTokenOwner extends Forbidden {
  static override readonly code: ErrorCode = 'not_token_owner'
  static override readonly defaultMessage: string = 'A token is created by its owner.'
}

/** A username that belongs to an account of another source (local, LDAP, single sign-on), which this one cannot take over. */
export class AccountSourceConflict extends Forbidden {
  static override readonly code: ErrorCode = 'account_source_conflict'
  static override readonly defaultMessage: string = 'This username belongs to an account from another source.'
}

export class SsoIdentityConflict extends Forbidden {
  static override readonly code: ErrorCode = 'sso_identity_conflict'
  static override readonly defaultMessage: string = 'This username belongs to the account of another single sign-on identity.'
}

export class SsoUsernameInvalid extends Forbidden {
  static override readonly code: ErrorCode = 'sso_username_invalid'
}

export class SsoNonceMismatch extends Forbidden {
  static override readonly code: ErrorCode = 'sso_nonce_mismatch'
  static override readonly defaultMessage: string = 'The ID token was not issued for this sign-in (nonce mismatch). Start again.'
}

export class SsoStateMismatch extends Forbidden {
  static override readonly code: ErrorCode = 'sso_state_mismatch'
  static override readonly defaultMessage: string = 'This sign-in answer does not belong to the sign-in this browser started (state mismatch). Start again.'
}

/** A session-authenticated unsafe request failed the CSRF check; the class says which part (token, cookie, Referer, Origin). */
export abstract class CsrfFailed extends Forbidden {
  constructor(message?: string) {
    super(`CSRF Failed: ${message ?? (new.target as unknown as { defaultMessage: string }).defaultMessage}`)
  }
}

export class CsrfOriginMismatch extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_origin_mismatch'
}

export class CsrfRefererMissing extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_referer_missing'
  static override readonly defaultMessage: string = 'Referer checking failed - no Referer.'
}

export class CsrfRefererMalformed extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_referer_malformed'
  static override readonly defaultMessage: string = 'Referer checking failed - Referer is malformed.'
}

export class CsrfRefererInsecure extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_referer_insecure'
  static override readonly defaultMessage: string = 'Referer checking failed - Referer is insecure while host is secure.'
}

export class CsrfRefererMismatch extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_referer_mismatch'
}

export class CsrfCookieMissing extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_cookie_missing'
  static override readonly defaultMessage: string = 'CSRF cookie not set.'
}

export class CsrfCookieMalformed extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_cookie_malformed'
  static override readonly defaultMessage: string = 'CSRF cookie has an invalid format.'
}

export class CsrfTokenMissing extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_token_missing'
  static override readonly defaultMessage: string = 'CSRF token missing.'
}

export class CsrfTokenIncorrect extends CsrfFailed {
  static override readonly code: ErrorCode = 'csrf_token_incorrect'
  static override readonly defaultMessage: string = 'CSRF token incorrect.'
}

// 404, 405, 408, 409, 413, 415, 429, 431

export class NotFound extends GatehouseError {
  static override readonly status: number = 404
  static override readonly code: ErrorCode = 'not_found'
  static override readonly defaultMessage: string = 'Not found.'
}

export class NoSession extends NotFound {
  static override readonly code: ErrorCode = 'no_session'
  static override readonly defaultMessage: string = 'This request has no session (none was sent, or it has ended).'
}

export class SsoProviderUnknown extends NotFound {
  static override readonly code: ErrorCode = 'sso_provider_unknown'
}

/**
 * 405: the path is there, the method is not. `Allow` names the methods it has (RFC 9110 §15.5.6), with Django REST
 * framework's words.
 */
export class MethodNotAllowed extends GatehouseError {
  static override readonly status: number = 405
  static override readonly code: ErrorCode = 'method_not_allowed'
  static override readonly defaultMessage: string = 'Method not allowed.'

  constructor(method: string, allowed: readonly string[]) {
    super(`Method "${method}" not allowed.`, { headers: { allow: allowed.join(', ') } })
  }
}

export class RequestTimeout extends GatehouseError {
  static override readonly status: number = 408
  static override readonly code: ErrorCode = 'request_timeout'
  static override readonly defaultMessage: string = 'The request took too long to arrive.'
}

export class Conflict extends GatehouseError {
  static override readonly status: number = 409
  static override readonly code: ErrorCode = 'conflict'
  static override readonly defaultMessage: string = 'The request conflicts with the current state.'
}


export class SsoLoginInProgress extends Conflict {
  static override readonly code: ErrorCode = 'sso_login_in_progress'
  static override readonly defaultMessage: string = 'Another sign-in of the same person is under way; try again.'
}

/** An account changed between the reading a decision was made on and the write that carried it out. */
export class AccountChanged extends Conflict {
  static override readonly code: ErrorCode = 'account_changed'
  static override readonly defaultMessage: string = 'The account changed while this request was being judged; read it again and send the request again.'
}

export class PayloadTooLarge extends GatehouseError {
  static override readonly status: number = 413
  static override readonly code: ErrorCode = 'payload_too_large'
  static override readonly defaultMessage: string = 'The request body is too large.'
}

/**
 * A POST form body to a service whose access rules name methods, too large for the gateway to read for the method
 * it may name (src/access/method-override.ts), while the rules refuse one such method.
 */
export class MethodOverrideUnread extends GatehouseError {
  static override readonly status: number = 413
  static override readonly code: ErrorCode = 'method_override_unread'
  static override readonly defaultMessage: string = 'The request body is too large for the gateway to tell which method it names.'
}

export class UnsupportedMediaType extends GatehouseError {
  static override readonly status: number = 415
  static override readonly code: ErrorCode = 'unsupported_media_type'
  static override readonly defaultMessage: string = 'The request body has a media type this endpoint does not take.'
}

/**
 * 429: too many failed password checks from this client address, for any usernames; its checks are refused unseen
 * until its counting window ends (src/directory/lockout.ts).
 */
export class LoginThrottled extends GatehouseError {
  static override readonly status: number = 429
  static override readonly code: ErrorCode = 'login_throttled'

  constructor(retryAfterSeconds: number) {
    super(`Too many failed logins from your address. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, { headers: { 'retry-after': String(retryAfterSeconds) } })
  }
}

/**
 * 429: this client address (or, in a flood from many, every client) started more sign-ins than one process takes in
 * a while: each start is a record that waits for its end (src/directory/sign-in-starts.ts).
 */
export class SignInsThrottled extends GatehouseError {
  static override readonly status: number = 429
  static override readonly code: ErrorCode = 'sign_ins_throttled'

  constructor(retryAfterSeconds: number) {
    super(`Too many sign-ins were started from your address. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, { headers: { 'retry-after': String(retryAfterSeconds) } })
  }
}

/**
 * 429: this client was issued more service-account tokens (the `client_credentials` grant) within the realm's access
 * token lifetime than one process issues it (the realm's `client_credentials_tokens_limit`): each is a row until it expires.
 */
export class ClientTokensThrottled extends GatehouseError {
  static override readonly status: number = 429
  static override readonly code: ErrorCode = 'client_tokens_throttled'

  readonly retryAfterSeconds: number

  constructor(retryAfterSeconds: number) {
    super(`This client was issued too many tokens; reuse one until it expires, or try again in ${secondsInWords(retryAfterSeconds)}.`, { headers: { 'retry-after': String(retryAfterSeconds) } })
    this.retryAfterSeconds = retryAfterSeconds
  }

  /** The status oidc-provider answers with for an error it did not raise itself. */
  get statusCode(): number {
    return this.status
  }
}

/**
 * 429: this account, not a superuser, made more changes through the gateway API than one process takes in a while:
 * each is an audit entry that is always kept (src/api/change-allowance.ts).
 */
export class ChangesThrottled extends GatehouseError {
  static override readonly status: number = 429
  static override readonly code: ErrorCode = 'changes_throttled'

  constructor(retryAfterSeconds: number) {
    super(`Too many changes from your account lately. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, { headers: { 'retry-after': String(retryAfterSeconds) } })
  }
}

export class ExpectationFailed extends GatehouseError {
  static override readonly status: number = 417
  static override readonly code: ErrorCode = 'expectation_failed'
  static override readonly defaultMessage: string = 'The only expectation understood is Expect: 100-continue.'
}

/** A request line naming an HTTP version other than 1.0 or 1.1, which Node's parser takes (2.0, 0.9) and serves as 1.1. */
export class HttpVersionNotSupported extends GatehouseError {
  static override readonly status: number = 505
  static override readonly code: ErrorCode = 'http_version_not_supported'
  static override readonly defaultMessage: string = 'Gatehouse speaks HTTP/1.0 and HTTP/1.1 here.'
}

export class HeadersTooLarge extends GatehouseError {
  static override readonly status: number = 431
  static override readonly code: ErrorCode = 'headers_too_large'
  static override readonly defaultMessage: string = 'The request headers (cookies included) are too large.'
}

// 5xx

export class InternalError extends GatehouseError {
  static override readonly status: number = 500
  static override readonly code: ErrorCode = 'internal_error'
  static override readonly defaultMessage: string = 'Internal server error.'
}

/** A WebSocket version other than 13: RFC 6455 §4.4 answers 426 with the version the server speaks. */
export class WebSocketVersionUnsupported extends GatehouseError {
  static override readonly status: number = 426
  static override readonly code: ErrorCode = 'websocket_version_unsupported'
  static override readonly defaultMessage: string = 'Only WebSocket version 13 (RFC 6455) is supported.'

  constructor() {
    super(undefined, { headers: { 'sec-websocket-version': '13' } })
  }
}

export class UpstreamUnavailable extends GatehouseError {
  static override readonly status: number = 502
  static override readonly code: ErrorCode = 'upstream_unavailable'

  constructor(service: string, cause?: unknown) {
    super(`The service "${service}" is not reachable.`, { cause })
  }
}

/** 502: a service answered a WebSocket handshake with a 101 that is not the answer to it (src/gateway/websocket.ts). */
export class UpstreamHandshakeInvalid extends GatehouseError {
  static override readonly status: number = 502
  static override readonly code: ErrorCode = 'upstream_handshake_invalid'

  constructor(service: string, problem: string) {
    super(`The service "${service}" answered the WebSocket handshake wrongly: ${problem}.`)
  }
}

export class SsoProviderError extends GatehouseError {
  static override readonly status: number = 502
  static override readonly code: ErrorCode = 'sso_provider_error'
}

export class SsoResponseInvalid extends GatehouseError {
  static override readonly status: number = 502
  static override readonly code: ErrorCode = 'sso_response_invalid'
}

/**
 * 503: every upstream connection of the service that this client may use is taken, and none came free within the
 * service's `pool.wait_seconds` (src/gateway/upstream-pool.ts).
 */
export class UpstreamBusy extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'upstream_busy'

  constructor(service: string, message = `The service "${service}" has no free connection for this client; try again shortly.`) {
    super(message, { headers: { 'retry-after': '1' } })
  }
}

export class UpstreamTimeout extends GatehouseError {
  static override readonly status: number = 504
  static override readonly code: ErrorCode = 'upstream_timeout'

  constructor(service: string, cause?: unknown) {
    super(`The service "${service}" did not answer in time.`, { cause })
  }
}

/**
 * 503: every core is checking a password and `auth.password_checks_waiting` more wait their turn (src/directory/passwords.ts),
 * or the most checks that may wait for one username's or address's checks in flight already do (src/directory/lockout.ts);
 * this check is refused at once rather than wait behind them. It is no failed login: the password was not looked at.
 */
export class PasswordChecksBusy extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'password_checks_busy'
  static override readonly defaultMessage: string = 'Too many sign-ins are being checked right now; try again in a moment.'
  static readonly retryAfterSeconds = 1

  constructor(options: { cause?: unknown } = {}) {
    super(undefined, { headers: { 'retry-after': String(PasswordChecksBusy.retryAfterSeconds) }, cause: options.cause })
  }

  /** The status oidc-provider answers with for an error it did not raise itself. */
  get statusCode(): number {
    return this.status
  }
}

/**
 * 503: the gateway API's request bodies being read take all of `server.api_body_buffers_mb` (src/api/body-parsers.ts);
 * this one is refused before it is read, rather than held beyond that bound.
 */
export class BodyBuffersFull extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'body_buffers_full'
  static override readonly defaultMessage: string = 'Too many request bodies are being read right now; try again in a moment.'
  static readonly retryAfterSeconds = 1

  constructor() {
    super(undefined, { headers: { 'retry-after': String(BodyBuffersFull.retryAfterSeconds), connection: 'close' } })
  }
}

/**
 * 503: the thread hashing this check did not answer within its bound, or ended before it answered
 * (src/directory/hashing-threads.ts); the thread was replaced. Refused as a busy queue's check is, on every door: the
 * password was not judged, so it is no failed login and never a success.
 */
export class PasswordCheckFailed extends PasswordChecksBusy {
  static override readonly code: ErrorCode = 'password_check_failed'
  static override readonly defaultMessage: string = 'The password could not be checked right now; try again in a moment.'
}

/**
 * 408: the client went away while its password check waited for a core; the check was dropped without running. The
 * answer reaches nobody, and the refusal is no failed login.
 */
export class PasswordCheckAbandoned extends GatehouseError {
  static override readonly status: number = 408
  static override readonly code: ErrorCode = 'password_check_abandoned'
  static override readonly defaultMessage: string = 'The client went away while its password check waited.'
}

/** 503: a password source (the LDAP directory) could not be asked in time; other sources keep working. */
export class DirectoryUnavailable extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'directory_unavailable'
  static override readonly defaultMessage: string = 'The directory could not be reached; try again later.'
  static readonly retryAfterSeconds = 5

  constructor(message?: string, cause?: unknown) {
    super(message, { cause, headers: { 'retry-after': String(DirectoryUnavailable.retryAfterSeconds) } })
  }

  /** The status oidc-provider answers with for an error it did not raise itself. */
  get statusCode(): number {
    return this.status
  }
}

export class SsoProviderUnavailable extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'sso_provider_unavailable'
}

/**
 * 503: the database did not answer in time, or could not be reached. Raised by the store for every query that
 * fails that way (src/store/database.ts), and by the request path when this process has not been able to read the
 * news of revocations for longer than `auth.max_stale_seconds`.
 */
export class DatabaseUnavailable extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'database_unavailable'
  static override readonly defaultMessage: string = 'The database is not available; try again shortly.'
  static readonly retryAfterSeconds = 5

  constructor(message?: string, cause?: unknown) {
    super(message, { cause, headers: { 'retry-after': String(DatabaseUnavailable.retryAfterSeconds) } })
  }

  /** The status oidc-provider answers with for an error it did not raise itself. */
  get statusCode(): number {
    return this.status
  }
}

/**
 * 503: a lock the request had to take stayed held by another transaction on PostgreSQL for the query timeout: a row
 * or a table (a `SELECT ... FOR UPDATE` left open in psql, a long report), or an advisory lock of Gatehouse's own
 * (src/store/database.ts, HeldLock). The database answered, so it is no outage, and the same code as one: for the
 * client it is the same "try again shortly".
 */
export class DatabaseLockHeld extends DatabaseUnavailable {
  static override readonly defaultMessage: string = 'What this request must change is held by another client of the database; try again shortly.'
}

/**
 * 503: PostgreSQL ended a transaction as a deadlock (40P01) or a serialization failure (40001) on every attempt the
 * store made (src/store/database.ts). The database answered, so it is no outage; the same request a moment later
 * most likely succeeds, as nothing of it was written.
 */
export class TransactionConflict extends GatehouseError {
  static override readonly status: number = 503
  static override readonly code: ErrorCode = 'transaction_conflict'
  static override readonly defaultMessage: string = 'The change collided with another one made at the same time; try again.'
  static readonly retryAfterSeconds = 1

  constructor(cause?: unknown) {
    super(undefined, { cause, headers: { 'retry-after': String(TransactionConflict.retryAfterSeconds) } })
  }

  /** The status oidc-provider answers with for an error it did not raise itself (a realm's record written in a transaction). */
  get statusCode(): number {
    return this.status
  }
}

/** Fastify's own client errors, by their code, so they get stable Gatehouse codes too. */
const fastifyErrors: Record<string, (message: string) => GatehouseError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: (message) => new PayloadTooLarge(message),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (message) => new UnsupportedMediaType(message),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new InvalidJson(),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new InvalidJson(),
  FST_ERR_VALIDATION: (message) => new ValidationFailed(undefined, message),
  // The router could not decode the path's percent escapes (src/http/request-target.ts refuses the query's). Its own
  // message repeats the whole path, as long as the headers allow; the query's answer says the same without it.
  FST_ERR_BAD_URL: () => new MalformedEscape(),
  // No id, name or realm is that long, so no such thing exists; Fastify's own message would repeat the whole path.
  FST_ERR_MAX_PARAM_LENGTH: () => new NotFound(PART_TOO_LONG),
}
const PART_TOO_LONG = 'Not found: a part of the path is longer than any id or name.'
/** The router's `maxParamLength`, Fastify's default: no id, name or realm has a longer path segment. */
const LONGEST_PATH_PART = 100

/**
 * The 404 of a path no service or API serves, naming it, unless a part of it is longer than any id or name: a path
 * the router took for a service's (services are matched by a catch-all route) must not be repeated back whole.
 */
export function noServiceAt(path: string): NotFound {
  return path.split('/').some((part) => part.length > LONGEST_PATH_PART) ? new NotFound(PART_TOO_LONG) : new NotFound(`No service or API at ${path}.`)
}

/** Turns anything thrown into a GatehouseError; unknown errors become an opaque 500. */
export function normalizeError(error: unknown): GatehouseError {
  if (error instanceof GatehouseError) return error
  const e = error as { statusCode?: number; code?: string; message?: string }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const known = e.code ? fastifyErrors[e.code] : undefined
    if (known) return known(String(e.message))
    if (e instanceof SyntaxError) return new InvalidJson()
    const message = String(e.message ?? 'Bad request.')
    return e.statusCode === 404 ? new NotFound(message) : e.statusCode === 413 ? new PayloadTooLarge(message) : e.statusCode === 415 ? new UnsupportedMediaType(message) : new BadRequest(message)
  }
  return new InternalError(undefined, { cause: error })
}

/**
 * `{code, detail, request_id}`, and for invalid input the problems by field twice: under `errors`, and at the top level
 * as Django REST framework writes them (`{"username": ["..."]}`, or a bare string where it sends one:
 * ValidationFailed's `bare`), so scripts written against the platform read them. `request_id` is the request's id
 * (its log line's `reqId`, its `X-Request-Id`), as Kong's error bodies carry theirs: what a user pastes of a refusal
 * is its body, seldom its headers. None where the request has no id (the metrics listener's).
 */
export function errorBody(error: GatehouseError, requestId?: string): Record<string, unknown> {
  const body: Record<string, unknown> = requestId === undefined ? { code: error.code, detail: error.message } : { code: error.code, detail: error.message, request_id: requestId }
  if (error.fields) {
    for (const [field, messages] of Object.entries(error.fields)) {
      if (RESERVED_BODY_KEYS.has(field)) continue
      // Defined, not assigned: a field named `__proto__` is a key like any other, not the body's prototype.
      Object.defineProperty(body, field, { value: error instanceof ValidationFailed && error.bare.has(field) && messages.length === 1 ? messages[0] : messages, enumerable: true, writable: true, configurable: true })
    }
    body.errors = error.fields
  }
  return body
}
const RESERVED_BODY_KEYS = new Set(['code', 'detail', 'request_id', 'errors'])

/**
 * The single error responder: JSON for API clients, a small HTML page for browsers. Either says `nosniff`, as every
 * answer of the platform's (Django's SecurityMiddleware) and Keycloak's REST answers do: an error that repeats a path
 * is never read as a script or a stylesheet by a page that loads it.
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, thrown: unknown): FastifyReply {
  const error = recordedError(request, thrown, request.log)
  reply.code(error.status)
  for (const [name, value] of errorHeaders(request, error)) reply.header(name, value)
  for (const [name, value] of negotiatedHeaders(reply.getHeader('cache-control'), reply.getHeader('vary'))) reply.header(name, value)
  reply.header('x-content-type-options', 'nosniff')
  const id = assignedRequestIdOf(request.raw)
  if (wantsHtml(request)) {
    return reply.headers(UNFRAMED_PAGE_HEADERS).type('text/html; charset=utf-8').send(errorPage(error, pathOf(request.url), id))
  }
  return reply.type('application/json; charset=utf-8').send(errorBody(error, id))
}

/** The same answer as `sendError`, on a bare node response: the proxy's lean path (src/gateway/lean-proxy.ts) has no reply. */
export function writeError(request: Pick<GatewayRequest, 'id' | 'url' | 'headers' | 'gatehouse'>, response: ServerResponse, thrown: unknown, log: ErrorLog): void {
  const error = recordedError(request, thrown, log)
  const html = wantsHtml(request)
  const body = html ? errorPage(error, pathOf(request.url), request.id) : JSON.stringify(errorBody(error, request.id))
  response.statusCode = error.status
  for (const [name, value] of errorHeaders(request, error)) response.setHeader(name, value)
  for (const [name, value] of negotiatedHeaders(response.getHeader('cache-control'), response.getHeader('vary'))) response.setHeader(name, value)
  response.setHeader('x-content-type-options', 'nosniff')
  if (html) for (const [name, value] of Object.entries(UNFRAMED_PAGE_HEADERS)) response.setHeader(name, value)
  response.setHeader('content-type', html ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8')
  response.setHeader('content-length', Buffer.byteLength(body))
  response.end(body)
}

/**
 * An error is a page or JSON by the request's Accept, and answers only this request: a shared cache (a CDN in front,
 * which may keep a 404 or a 405 it was given no lifetime for, RFC 9111 §4.2.2) must neither hand a browser's page to
 * an API client nor keep it at all. A lifetime a route set already is kept; an earlier Vary is extended.
 */
function negotiatedHeaders(cacheControl: unknown, vary: unknown): [string, string][] {
  const varies = typeof vary === 'string' && vary !== '' ? (/\baccept\b(?!-)/i.test(vary) ? vary : `${vary}, Accept`) : 'Accept'
  return cacheControl === undefined ? [['cache-control', 'no-store'], ['vary', varies]] : [['vary', varies]]
}

/** The path of a request target (request-target.ts's `splitTarget`, which imports this module). */
function pathOf(target: string): string {
  return target.split('?', 1)[0]!
}

interface ErrorLog {
  error(fields: object, message: string): void
}

/**
 * The error as answered, its code noted for the request's log line; Gatehouse's own faults logged. Exported for an
 * endpoint that answers errors in a shape of its own (the realms' token endpoint, src/oidc/routes.ts).
 */
export function recordedError(request: { readonly gatehouse?: RequestContext | undefined }, thrown: unknown, log: ErrorLog): GatehouseError {
  const error = normalizeError(thrown)
  if (request.gatehouse) request.gatehouse.code = error.code
  // Upstream failures (502/504) are logged once where they happen; only Gatehouse's own faults are errors here.
  if (error instanceof InternalError) log.error({ err: error.cause ?? thrown, code: error.code }, 'request failed')
  // The answer says only that the directory could not be used; why (no server answered, the service account was
  // refused, ...) is the operator's to read here. No reason holds a password: ldapts names a failed bind's message
  // type, never its content.
  if (error instanceof DirectoryUnavailable) log.error({ code: error.code, reason: error.cause instanceof Error ? error.cause.message : error.message }, 'the directory could not be used')
  return error
}

function errorHeaders(request: Pick<GatewayRequest, 'headers'>, error: GatehouseError): [string, string | string[]][] {
  const headers: [string, string | string[]][] = []
  for (const [name, value] of Object.entries(error.headers)) {
    const sent = name === 'www-authenticate' && isScriptRequest(request) ? withoutBasicChallenge(value) : value
    if (sent.length) headers.push([name, sent])
  }
  return headers
}

/**
 * A browser answers a Basic challenge to a script's request with its own password dialog. A script that says
 * it handles 401 itself (`X-Requested-With: XMLHttpRequest`, as Django and Spring Security read it), such as the
 * web interface when its session has ended, gets the other challenges only.
 */
function isScriptRequest(request: Pick<GatewayRequest, 'headers'>): boolean {
  return request.headers['x-requested-with'] === 'XMLHttpRequest'
}

function withoutBasicChallenge(value: string | string[]): string[] {
  return (Array.isArray(value) ? value : [value]).filter((challenge) => !/^basic\b/i.test(challenge))
}

/**
 * Requests Node's HTTP parser refuses before any route sees them (headers or cookies too large, malformed
 * request lines, slow clients) get the same answer as every other error: JSON, or the error page for a browser
 * navigating, as far as the bytes read say so (`rawPacket`, the chunk the parser was given: for a browser whose
 * cookies grew too large, the request line and its Accept come in the same read). On the gateway's listener, an
 * answer to a head no request came of is counted and logged through `refused`.
 */
export function answerClientError(error: Error & { code?: string; rawPacket?: unknown }, socket: Socket, refused?: RefusedOnArrival, strictTransportSecurity?: string): void {
  // Before the TLS connection's own state: Node has closed it already, and the answer goes under it.
  if (error.code === 'ERR_SSL_HTTP_REQUEST') return answerPlainHttp(socket, refused)
  // A connection closing after its last answer: its parser, in error, refuses every read that is still dropped.
  if (error.code === 'ECONNRESET' || socket.destroyed || lingering(socket)) return
  // A TLS handshake that failed or did not end in time (Node's HTTPS server passes its errors on here): no HTTP can
  // be written on it, and no request was made to log or count; closed at once, at the headers' time limit.
  if (error.code?.startsWith('ERR_TLS_') || error.code?.startsWith('ERR_SSL_')) return void socket.destroy()
  // The response still being written on this connection (Node's own default handler looks at the same field).
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  if (inFlight?.req.complete) {
    // The error is in a request pipelined behind the one being answered. It cannot be answered in order, and an
    // answer written now would take the place of the earlier one's (RFC 9112 §9.3.2): that one is sent whole, then
    // the connection closed. One that timed out behind it only closes the connection.
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // The request in flight was sound: the one behind it timed out (and has no line of its own).
      markCutByGateway(inFlight)
      socket.destroy()
    } else {
      closeLingeringAfter(inFlight)
    }
    return
  }
  const answeredEarlier = inFlight ? undefined : readingRequest(socket)
  if (answeredEarlier && !answeredEarlier.complete) {
    // The error is in the rest of the body of a request already answered (a 401 to a POST, say), which Node reads
    // and drops to keep the connection: that request has had its one answer, and another would be taken for the
    // answer to the client's next request. The connection is cut, as the answer to a malformed body is.
    socket.destroy()
    return
  }
  if (inFlight?.headersSent) {
    // The request being answered failed (its body timed out, broke off or is malformed) after its response began:
    // that response cannot be finished or replaced, so the connection is cut.
    // A client that closed its side mid-body (the parser's end of input) left: that is no cut of the gateway's.
    if (error.code !== 'HPE_INVALID_EOF_STATE') markCutByGateway(inFlight, error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? RequestTimeout.code : BadRequest.code)
    socket.destroy()
    return
  }
  const refusal = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new RequestTimeout()
    : error.code === 'HPE_HEADER_OVERFLOW' ? new HeadersTooLarge()
      : new BadRequest('The request is not valid HTTP.')
  // A request whose head was read (its body broke off, was malformed or too slow) was given its id: the client is told
  // it, as with every other answer of the gateway's listener, and its log line, written when its response closes,
  // names this answer in place of the one it was going to get.
  // A head that could not be read, or did not arrive in time, is a request of its own that nothing else logs: it gets a
  // new id and its line here. A connection that sent nothing before its time ran out began no request (Node times out
  // a connection's first request from when it opens): it is answered, but it is no request to log.
  const unread = !inFlight && refused && !(error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.bytesRead === 0) ? { id: randomUUID(), refused } : undefined
  const id = inFlight ? assignedRequestIdOf(inFlight.req) : unread?.id
  const navigation = browserNavigation(error.rawPacket)
  const body = navigation ? errorPage(refusal, navigation.path, id) : JSON.stringify(errorBody(refusal, id))
  const headers = navigation
    ? [...Object.entries(UNFRAMED_PAGE_HEADERS).map(([name, value]) => `${name}: ${value}`), 'Content-Type: text/html; charset=utf-8']
    : ['Content-Type: application/json; charset=utf-8', 'X-Content-Type-Options: nosniff']
  if (id !== undefined) headers.unshift(`X-Request-Id: ${id}`)
  // Written on the socket, past the listener that gives every other HTTPS answer the header (src/listener/listener.ts).
  if (strictTransportSecurity !== undefined) headers.push(`Strict-Transport-Security: ${strictTransportSecurity}`)
  if (inFlight) markReplacedAnswer(inFlight, refusal)
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\n${headers.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    // The gateway's own time: none, from the parser's giving up to the answer.
    unread?.refused({ id: unread.id, request: undefined, status: refusal.status, code: refusal.code, elapsedMs: 0 })
  }
  // A head refused while the client may still be sending its body (headers too large, Content-Length twice) is closed
  // lingering, as a refusal on arrival is: destroyed at once, with the body still arriving, the connection was reset
  // under the answer, which the client mostly never read. A request already being answered, and a client too slow,
  // are cut.
  if (inFlight || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) socket.destroy()
  else lingeringClose(socket)
}

/**
 * A request in plain HTTP sent to the HTTPS listener (`http://` where `https://` was meant), which OpenSSL recognizes
 * in place of a handshake: answered in plain HTTP, as nginx does, so the client learns what went wrong instead of
 * seeing the connection close. The answer is written on the TCP connection under the TLS one (Node's `_parent`, kept
 * by every version since TLS moved into its own wrap; without it, the connection is closed as before). The request
 * itself was read by OpenSSL and is gone: the answer is JSON whoever asked, and a request of its own to log.
 */
function answerPlainHttp(socket: Socket, refused: RefusedOnArrival | undefined): void {
  const tcp = (socket as Socket & { _parent?: Socket | null })._parent
  if (!tcp?.writable) {
    tcp?.destroy()
    return void socket.destroy()
  }
  const refusal = new BadRequest('This port takes HTTPS only: the request was sent in plain HTTP. Send it to the same address with https://.')
  const id = refused ? randomUUID() : undefined
  const body = JSON.stringify(errorBody(refusal, id))
  const headers = ['Content-Type: application/json; charset=utf-8', 'X-Content-Type-Options: nosniff', ...(id === undefined ? [] : [`X-Request-Id: ${id}`])]
  tcp.end(`HTTP/1.1 400 ${STATUS_CODES[400]}\r\n${headers.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => tcp.destroy())
  if (refused && id !== undefined) refused({ id, request: undefined, status: 400, code: refusal.code, elapsedMs: 0 })
}

/** The request whose bytes Node's parser was reading on this connection: the last one whose head it read. */
function readingRequest(socket: Socket): IncomingMessage | undefined {
  return (socket as Socket & { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming ?? undefined
}

const REQUEST_LINE = /^[A-Z]{1,16} (\/[^ ?#]{0,2048})[^ ]* HTTP\/1\.[01]\r\n/
const ACCEPT_LINE = /\r\naccept[ \t]*:([^\r\n]*)/i

/** The path of a request a browser is navigating, from the bytes the parser refused it in; undefined for any other. */
function browserNavigation(raw: unknown): { path: string } | undefined {
  if (!Buffer.isBuffer(raw)) return undefined
  const text = raw.toString('latin1', 0, Math.min(raw.length, 65_536))
  const path = REQUEST_LINE.exec(text)?.[1]
  const head = text.split('\r\n\r\n', 1)[0]!
  const accept = ACCEPT_LINE.exec(head)?.[1]?.trim()
  return path !== undefined && accept !== undefined && wantsHtml({ headers: { accept } }) ? { path } : undefined
}
