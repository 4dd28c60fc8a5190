import type { FastifyReply, FastifyRequest } from 'fastify'
import { isUtf8 } from 'node:buffer'
import { hash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { decodeJwt } from 'jose'
import type { App } from '../app.ts'
import { SESSION_COOKIE } from '../auth/session.ts'
import { AccountDisabled, AccountExpired, BodyBuffersFull, AccountLocked, DirectoryUnavailable, GatehouseError, LoginThrottled, MalformedEscape, PasswordChangeRequired, PasswordChecksBusy, PasswordExpired, PayloadTooLarge, recordedError, RequestTimeout, SignInsThrottled, ValidationFailed } from '../errors.ts'
import { issuedBefore, type User } from '../store/users.ts'
import { renderLoginPage, type SsoButton } from '../pages/login-page.ts'
import { ssoStartPath } from '../directory/sso.ts'
import { SESSION_STATE_COOKIE, simplePage, type GatewaySignIn } from './keycloak-format.ts'
import epochTime, { providerNow } from './provider-clock.ts'
import { GATEWAY_HAS_ANOTHER_PERSON, gatewaySessionAnswers, KC_IDP_HINT, LOGIN_FORM, type LoginAcr, loginResult, SINGLE_SIGN_ON } from './provider.ts'
import { GATEWAY_CALLBACK, KEYCLOAK_ROUTES, LOGIN_ACTIONS, LOGIN_RESTARTED_COOKIE, REALM_INTERACTION_COOKIE, REALM_SESSION_COOKIE } from './provider-paths.ts'
import { resolveLoginName } from './login-name.ts'
import type { Realm } from './realm.ts'
import { readRealmBody, REALM_BODY_LIMIT } from './routes.ts'
import { UNFRAMED_PAGE_HEADERS } from '../pages/html.ts'
import { startSession } from '../auth/session-start.ts'
import { sameOriginTarget } from '../gateway/redirect-target.ts'
import { clientGone } from '../http/client-gone.ts'
import { wellFormedEscapes } from '../http/request-target.ts'
import { type AccountAction, accountAction, KC_ACTION_MAX_AUTH_AGE_SECONDS, KC_ACTION_REASON, KC_ACTION_RESULT, type KcActionOutcome, UPDATE_PASSWORD, UPDATE_PROFILE } from './app-initiated-actions.ts'
import { CANCEL_FIELD, CONFIRM_PASSWORD_FIELD, FORM_SECRET_FIELD, NEW_PASSWORD_FIELD, renderUpdatePasswordPage } from '../pages/update-password-page.ts'
import { EMAIL_FIELD, FIRST_NAME_FIELD, LAST_NAME_FIELD, PROFILE_FIELD_LENGTHS, type ProfileValues, renderUpdateProfilePage } from '../pages/update-profile-page.ts'
import { verifyPassword } from '../directory/passwords.ts'
import { auditedUser, passwordMark, serializeUser } from '../api/users.ts'
import { emailAddress } from '../api/profile-fields.ts'
import { emailTakenByAnother } from '../api/me.ts'

/** The form field carrying the authorization request a login page was shown for, to start it again (`restartLogin`). */
const RESTART_FIELD = 'restart'
const RESTARTED_MESSAGE = 'Your login attempt timed out. Login will start from the beginning.'

/**
 * The login step of the authorization code flow, on Gatehouse's one login page. oidc-provider sends the browser
 * here with an interaction cookie (SameSite=Lax, scoped to this path); the form posts back here, the password is
 * checked like every other Gatehouse login, and oidc-provider continues the authorization. A cross-site form
 * post carries no interaction cookie, so it cannot log someone in (login CSRF).
 * A browser signs in once: one already signed in to the gateway (its session cookie) is not asked again here,
 * unless the client asked for a fresh login (`prompt=login`, `max_age`) or for another user; and a login here
 * opens a gateway session as well, as the gateway's own login page does.
 */
export async function loginStep(app: App, realm: Realm, uid: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { instance: provider } = await realm.provider()
  let details: Awaited<ReturnType<typeof provider.interactionDetails>>
  try {
    details = await provider.interactionDetails(request.raw, reply.raw)
  } catch {
    return restartLogin(app, realm, request, reply)
  }
  if (details.uid === uid && details.prompt.name === 'consent' && request.method === 'GET') return consentWithoutPage(app, realm, uid, provider, request, reply)
  if (details.uid !== uid || details.prompt.name !== 'login') return restartLogin(app, realm, request, reply)
  const clientId = String(details.params.client_id ?? '')
  // An OAuth2 application by its name (applications.ts `applicationMetadata`): its id is 40 hex digits.
  const shownAs = (await provider.Client.find(clientId))?.clientName ?? clientId
  const action = `${realm.path}${LOGIN_ACTIONS}${uid}`
  const page = { action, subtitle: `Log in to ${shownAs} (realm ${realm.name})`, fields: restartField(details.params), sso: ssoButtons(app, action) }
  const login: LoginUnderWay = { uid, clientId, shownAs, interaction: details, action: page.action }
  const pending = pendingUpdate(details)
  if (pending) return actionStep(app, realm, login, provider, request, reply, pending)
  const reasons = details.prompt.reasons
  // As the login prompt asks for it: for the authorization endpoint only. A device authorization takes `kc_action`
  // too (oidc-provider's extra parameters are every endpoint's), but has no redirect to bring the outcome back on,
  // and a new password would end the very grant the device waits for.
  const kcAction = reasons.includes(KC_ACTION_REASON) ? accountAction(details.params) : undefined

  if (request.method !== 'POST') {
    if (kcAction) {
      const signedIn = await signedInForAction(app, realm, details, request)
      if (signedIn && (signedInWithin(signedIn.signedInAt, KC_ACTION_MAX_AUTH_AGE_SECONDS) || signedIn.user.source !== 'local')) {
        return beginAction(app, realm, login, provider, request, reply, signedIn.user, signedIn.gatewaySession, SINGLE_SIGN_ON, kcAction, signedIn.signedInAt)
      }
      if (signedIn) return html(reply, 200, renderLoginPage({ ...page, username: signedIn.user.username, error: REAUTHENTICATE_MESSAGE }))
    }
    const sentToProvider = providerSignIn(details)
    const signedIn = reasons.every((reason) => FRESH_SIGN_IN_ANSWERS.has(reason)) ? await gatewaySessionUser(app, realm, request) : undefined
    // The sign-in this login sent the browser to make, come back: this login's own, fresh whatever `prompt=login` or
    // `max_age` asked, once the provider had the person log in (a sign-in its own session answered silently, begun
    // another way meanwhile, is none).
    if (signedIn && sentToProvider && signedInSince(signedIn, sentToProvider.at) && (signedIn.freshSignIn === true || !asksFreshLogin(details)) &&
      gatewaySessionAnswers(signedIn, hintedSubject(details.params), undefined)) {
      return finishLogin(app, realm, login, provider, request, reply, signedIn.user, signedIn.gatewaySession, LOGIN_FORM, undefined, signedIn.signedInAt)
    }
    if (signedIn && reasons.some((reason) => GATEWAY_SIGNS_IN.has(reason)) && reasons.every((reason) => GATEWAY_SESSION_ANSWERS.has(reason)) &&
      gatewaySessionAnswers(signedIn, hintedSubject(details.params), details.params.max_age)) {
      return finishLogin(app, realm, login, provider, request, reply, signedIn.user, signedIn.gatewaySession, SINGLE_SIGN_ON, undefined, signedIn.signedInAt)
    }
    const chosen = upstreamProvider(app, (request.query as Record<string, unknown>)[PROVIDER_QUERY]) ?? (sentToProvider ? undefined : hintedProvider(app, details))
    if (chosen) return sendToProvider(app, login, reply, chosen, asksFreshLogin(details))
    const restarted = request.cookies[LOGIN_RESTARTED_COOKIE] !== undefined
    if (restarted) reply.clearCookie(LOGIN_RESTARTED_COOKIE, restartedCookieOptions(app, realm, request))
    // Keycloak fills in the username the client suggests (keycloak-js `login({ loginHint })`).
    const loginHint = typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 150) : undefined
    return html(reply, 200, renderLoginPage({ ...page, username: loginHint, error: restarted ? RESTARTED_MESSAGE : undefined }))
  }

  const form = await readForm(app, request, reply)
  const username = form.get('username') ?? ''
  const password = form.get('password') ?? ''
  let user: User
  let gatewaySession: string
  try {
    const login = await resolveLoginName(app, realm.config, username)
    user = await app.accounts.checkPassword(login.username, password, request.ip, { method: 'oidc', realm: realm.name, recordsLogin: true }, login.account, clientGone(reply.raw))
    // Refuses the password just verified if it was changed meanwhile (Accounts.recordLogin): the form again, as
    // Keycloak shows it for any invalid credentials, rather than an error page.
    gatewaySession = await openGatewaySession(app, request, reply, user)
  } catch (error) {
    // The page again, its password not looked at, saying to try again shortly.
    if (error instanceof PasswordChecksBusy) {
      reply.header('retry-after', String(PasswordChecksBusy.retryAfterSeconds))
      return html(reply, error.status, renderLoginPage({ ...page, username: username.slice(0, 150), error: error.message }))
    }
    // So is a directory that does not answer: the form, to try again once it does (its reason logged as everywhere).
    if (error instanceof DirectoryUnavailable) {
      recordedError(request, error, request.log)
      reply.header('retry-after', String(DirectoryUnavailable.retryAfterSeconds))
      return html(reply, error.status, renderLoginPage({ ...page, username: username.slice(0, 150), error: error.message }))
    }
    if (!(error instanceof GatehouseError) || error.status >= 500) throw error
    // What the directory says of a right password (it expired, must be changed first) is the person's to know.
    const explained = error instanceof AccountLocked || error instanceof LoginThrottled || error instanceof PasswordChangeRequired ||
      error instanceof PasswordExpired || error instanceof AccountExpired
    const message = error instanceof AccountDisabled ? 'Your account is disabled.' : explained ? error.message : 'Invalid username or password.'
    // Only a wrong username or password is a fault of the fields; the rest is the account's.
    const refused = !(error instanceof AccountDisabled) && !explained
    return html(reply, 200, renderLoginPage({ ...page, username: username.slice(0, 150), error: message, refused }))
  }
  if (kcAction) return beginAction(app, realm, login, provider, request, reply, user, gatewaySession, LOGIN_FORM, kcAction)
  return finishLogin(app, realm, login, provider, request, reply, user, gatewaySession, LOGIN_FORM)
}

type Provider = Awaited<ReturnType<Realm['provider']>>['instance']
type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>

/** The login this request is a step of. */
interface LoginUnderWay {
  uid: string
  clientId: string
  /** What its pages call the client. */
  shownAs: string
  interaction: Interaction
  /** The path of its page, where its forms post. */
  action: string
}

/**
 * Who is signed in already when an authorization asks for an action, and when they typed their password (epoch ms),
 * which Keycloak compares with the action's maximum age (OIDCLoginProtocol `isReAuthRequiredForKcAction`, the user
 * session's AUTH_TIME): the realm session's user and login time, or, without one or with one of another person, the
 * gateway session's user and sign-in time, as `prompt=none` and `max_age` compare them (provider.ts
 * `gatewaySessionAnswers`). A realm session the gateway session signed in took that session's sign-in time as its login
 * time, and an action answered without the password keeps it (`beginAction`), so either is the time of the password. Undefined when the login must be
 * asked for anyway (none of them, or the client asked for a fresh one).
 */
async function signedInForAction(app: App, realm: Realm, interaction: Interaction, request: FastifyRequest): Promise<GatewaySignIn | undefined> {
  const others = interaction.prompt.reasons.filter((reason) => reason !== KC_ACTION_REASON)
  const gateway = others.length === 0 || (others.length === 1 && GATEWAY_SIGNS_IN.has(others[0]!)) ? await gatewaySessionUser(app, realm, request) : undefined
  if (others.length === 0) {
    const user = await app.accounts.get(Number(interaction.session?.accountId))
    const { auth_time: authTime } = interaction.prompt.details
    if (!user?.isActive) return undefined
    return { user, gatewaySession: gateway?.user.id === user.id ? gateway.gatewaySession : undefined, signedInAt: typeof authTime === 'number' ? authTime * 1000 : undefined }
  }
  return gateway
}

/** Whether a sign-in (epoch ms, in the database's clock) was within the last `seconds`; one of unknown time was not. */
function signedInWithin(signedInAt: number | undefined, seconds: number): boolean {
  return signedInAt !== undefined && providerNow() - signedInAt <= seconds * 1000
}

/** Keycloak's message (`reauthenticate`) on the login page before an action that needs a recent login. */
const REAUTHENTICATE_MESSAGE = 'Please re-authenticate to continue.'
/** Why a form without the page's secret is refused, by the action whose page it is. */
const FORM_EXPIRED_MESSAGE: Record<AccountAction, string> = {
  [UPDATE_PASSWORD]: 'This form did not come from this page or has expired. Enter your new password again.',
  [UPDATE_PROFILE]: 'This form did not come from this page or has expired. Send it again.',
}

/**
 * An action the person was shown the form of, kept in the login's record until they answer it: which action, who
 * signed in and how, the gateway session their login opened or was made with, and the form's anti-forgery secret.
 * oidc-provider resumes nothing with it (a result without `login`): the login step alone reads it.
 */
interface PendingUpdate {
  action: AccountAction
  accountId: string
  acr: LoginAcr
  gatewaySession?: string | undefined
  /**
   * When the person typed their password (epoch ms), when it was before this login: the login it finishes keeps it,
   * unless it sets a new password.
   */
  signedInAt?: number | undefined
  formSecret: string
  /**
   * When the form was shown (ms), in this process's view of the database's clock, which not-befores are taken in: never
   * ahead of it, so a password set elsewhere after the form was shown ends the form on a host whose clock runs ahead.
   */
  shownAt: number
}
const PENDING_UPDATE = 'gatehousePendingPasswordUpdate'

function pendingUpdate(interaction: Interaction): PendingUpdate | undefined {
  const pending = (interaction.result as Record<string, unknown> | undefined)?.[PENDING_UPDATE] as PendingUpdate | undefined
  if (typeof pending?.accountId !== 'string' || typeof pending.formSecret !== 'string' || typeof pending.shownAt !== 'number') return undefined
  // A form shown by an earlier version, which had the password update only.
  return { ...pending, action: pending.action === UPDATE_PROFILE ? UPDATE_PROFILE : UPDATE_PASSWORD }
}

/**
 * The person asked for by `kc_action` is signed in: the action's page ("Update password", "Update Account
 * Information"), for a local account. The password, names and address of a directory or single sign-on account are
 * its source's to change, so, as Keycloak answers an action that does not apply to the user, the authorization goes on
 * at once with `kc_action_status=error`.
 */
async function beginAction(app: App, realm: Realm, login: LoginUnderWay, provider: Provider, request: FastifyRequest, reply: FastifyReply, user: User, gatewaySession: string | undefined, acr: LoginAcr, action: AccountAction, signedInAt?: number): Promise<FastifyReply> {
  // Someone the client's access rules refuse gets the refusal (finishLogin), not a form first.
  if (user.source !== 'local' || app.clientAccess(realm.name, login.clientId, user, request.ip)) {
    return finishLogin(app, realm, login, provider, request, reply, user, gatewaySession, acr, { action, status: 'error' }, signedInAt)
  }
  const pending: PendingUpdate = { action, accountId: String(user.id), acr, gatewaySession, signedInAt, formSecret: randomBytes(32).toString('base64url'), shownAt: app.bus.clock.now() }
  await saveResult(login.interaction, { [PENDING_UPDATE]: pending })
  return html(reply, 200, actionPage(realm, login, pending, user))
}

/** Keeps a result in the login's record, for the rest of the login's lifetime. */
async function saveResult(interaction: Interaction, result: Record<string, unknown>): Promise<void> {
  interaction.result = result
  await interaction.save(Math.max(1, interaction.exp - epochTime()))
}

/**
 * The page of the pending action, with why its last answer was refused, and for the profile the values it sent.
 * `invalid`: the fields whose values were refused (none when the form's moment was: it expired, the server was busy).
 */
function actionPage(realm: Realm, login: LoginUnderWay, pending: PendingUpdate, user: User, errors: readonly string[] = [], sent?: ProfileValues, invalid: readonly string[] = []): string {
  const page = { action: login.action, formSecret: pending.formSecret, username: user.username }
  if (pending.action === UPDATE_PROFILE) {
    const values = sent ?? { firstName: user.firstName, lastName: user.lastName, email: user.email }
    return renderUpdateProfilePage({ ...page, subtitle: `${login.shownAs} (realm ${realm.name}) asks you to update your account information.`, values, errors, invalid })
  }
  return renderUpdatePasswordPage({ ...page, subtitle: `${login.shownAs} (realm ${realm.name}) asks you to choose a new password.`, error: errors.join(' ') || undefined, refused: invalid.length > 0 })
}

/**
 * The answer to an action's page (or the page again, on a `GET`). Cancel goes back to the application with
 * `cancelled` and changes nothing; a form without the page's secret gets the page again, and changes nothing. As
 * Keycloak's, the forms do not ask for the current password: the person typed it in this login, or signed in at the
 * realm within the action's maximum age.
 */
async function actionStep(app: App, realm: Realm, login: LoginUnderWay, provider: Provider, request: FastifyRequest, reply: FastifyReply, pending: PendingUpdate): Promise<FastifyReply> {
  if (request.method !== 'POST') return judgeAction(app, realm, login, provider, request, reply, pending, await app.accounts.get(Number(pending.accountId)), undefined)
  // One answer of a form at a time, on every process: answers sent at once would each be compared with the same
  // current password (as many guesses at it) and each set theirs. The account is read once the lease is held, from the
  // database: an answer that came first and set a password has ended the form for the next. The form is read before:
  // a client sending it slowly would otherwise hold the lease past its term, and the next answer be judged beside it.
  const form = await readForm(app, request, reply)
  const lease = `${ACTION_FORM_LEASE}${login.uid}`
  const holder = randomUUID()
  if (!(await takeAnswerLease(app, lease, holder))) {
    return html(reply, 409, simplePage(pending.action === UPDATE_PROFILE ? 'Update Account Information' : 'Update password', '<p>This form was sent again while its first sending was being answered. Go back to the application and start again.</p>'))
  }
  try {
    // Nor may an answer that came first and went back to the application (Cancel) leave the form to another.
    const interaction = await provider.interactionDetails(request.raw, reply.raw).catch(() => undefined)
    if (!interaction || pendingUpdate(interaction)?.formSecret !== pending.formSecret) return expired(reply)
    return await judgeAction(app, realm, { ...login, interaction }, provider, request, reply, pending, await app.store.users.findById(Number(pending.accountId)), form)
  } finally {
    await app.store.leases.release(lease, holder)
  }
}

/**
 * How long the "Update password" form answers after it was shown: Keycloak's "Login action timeout"
 * (accessCodeLifespanUserAction, 300 s by default), the time it gives a required action's form.
 */
const ACTION_FORM_MS = 300_000

/**
 * Takes the lease of a form's answer, waiting its turn behind an answer under way: a second click on Submit, or an
 * answer sent again at once after a refused one, whose lease is let go only just after its page was sent. A waiting
 * answer asks the database every LEASE_RETRY_MS: so that a client sending one form over and over cannot make this
 * process hold, and ask for, as many as it likes, a form has at most ANSWERS_WAITING_PER_FORM waiting here and the
 * process ANSWERS_WAITING in all; one more is refused at once, as one that waited too long is.
 */
async function takeAnswerLease(app: App, lease: string, holder: string): Promise<boolean> {
  const take = () => app.store.leases.take(lease, holder, ACTION_FORM_LEASE_MS)
  if (await take()) return true
  const waitingForForm = answersWaiting.get(lease) ?? 0
  if (waitingForForm >= ANSWERS_WAITING_PER_FORM || answersWaitingInAll >= ANSWERS_WAITING) return false
  answersWaiting.set(lease, waitingForForm + 1)
  answersWaitingInAll++
  try {
    for (const deadline = performance.now() + ACTION_FORM_WAIT_MS; performance.now() < deadline;) {
      await sleep(LEASE_RETRY_MS)
      if (await take()) return true
    }
    return false
  } finally {
    answersWaitingInAll--
    const left = answersWaiting.get(lease)! - 1
    if (left) answersWaiting.set(lease, left)
    else answersWaiting.delete(lease)
  }
}

/** The answers waiting for each form's lease in this process, by the lease's name, and how many in all. */
const answersWaiting = new Map<string, number>()
let answersWaitingInAll = 0
/** More than a person's clicks on Submit and a resend. */
const ANSWERS_WAITING_PER_FORM = 8
const ANSWERS_WAITING = 64

/** How long an answer waits for the one before it: a few password hashes, each waiting at most its turn. */
const ACTION_FORM_WAIT_MS = 10_000
const LEASE_RETRY_MS = 25

/**
 * The name of the lease an answer of an action's form holds (`actionStep`), with the login's id after it: the name
 * it had when the password update was the only action, which processes of that version still take.
 */
const ACTION_FORM_LEASE = 'update-password:'
/** Longer than an answer takes (two password hashes, each waiting at most its turn), in case its process dies holding the lease. */
const ACTION_FORM_LEASE_MS = 60_000

/**
 * An answer to an action's page, or the page again (a `GET`, a reload): refused alike for either action when the login
 * it belongs to is over, then judged by its action.
 */
async function judgeAction(app: App, realm: Realm, login: LoginUnderWay, provider: Provider, request: FastifyRequest, reply: FastifyReply, pending: PendingUpdate, user: User | undefined, form: URLSearchParams | undefined): Promise<FastifyReply> {
  if (!user?.isActive) return html(reply, AccountDisabled.status, simplePage('Login failed', '<p>Your account is disabled.</p>'))
  // The account's sessions were ended since the login (its password was changed elsewhere, it was disabled and
  // enabled again): so is this login, which must not set a password after an administrator's.
  if (issuedBefore(user, pending.shownAt)) return expired(reply)
  // Nor may it once the sessions it was made in ended without that (an administrator ended the account's sessions,
  // the person signed out in another tab): answered, it would sign the browser in again.
  if (!(await sessionsLive(app, provider, login.interaction, pending))) return expired(reply)
  // Nor once the form has been open longer than Keycloak's "Login action timeout" gives its required actions: the
  // password typed within the action's maximum age would otherwise let whoever finds the browser set one for the
  // login's half hour.
  if (app.bus.clock.now() - pending.shownAt > ACTION_FORM_MS) return expired(reply)
  if (!form) return html(reply, 200, actionPage(realm, login, pending, user))
  if (!sameSecret(form.get(FORM_SECRET_FIELD) ?? '', pending.formSecret)) return html(reply, 403, actionPage(realm, login, pending, user, [FORM_EXPIRED_MESSAGE[pending.action]]))
  if (form.has(CANCEL_FIELD)) return finishLogin(app, realm, login, provider, request, reply, user, pending.gatewaySession, pending.acr, { action: pending.action, status: 'cancelled' }, pending.signedInAt)
  const answer = { app, realm, login, provider, request, reply, pending, user, form }
  return pending.action === UPDATE_PROFILE ? updateProfile(answer) : updatePassword(answer)
}

/** An answer to an action's page that is for the login it was shown in, within its time, and not a Cancel. */
interface ActionAnswer {
  app: App
  realm: Realm
  login: LoginUnderWay
  provider: Provider
  request: FastifyRequest
  reply: FastifyReply
  pending: PendingUpdate
  user: User
  form: URLSearchParams
}

/**
 * The answer to the "Update password" page. The new password is set as everywhere else (`Accounts.update`: the
 * password policy, and every session and grant of the account ends), then the browser gets a fresh gateway session,
 * as at `me/password/`, and the authorization goes on with `kc_action_status=success`; an empty,
 * mismatched or refused password gets the page again with the reason, and changes nothing.
 */
async function updatePassword({ app, realm, login, provider, request, reply, pending, user, form }: ActionAnswer): Promise<FastifyReply> {
  const again = (status: number, error: string) => html(reply, status, actionPage(realm, login, pending, user, [error], undefined, status === 400 ? [NEW_PASSWORD_FIELD, CONFIRM_PASSWORD_FIELD] : []))
  const newPassword = form.get(NEW_PASSWORD_FIELD) ?? ''
  // Keycloak's words (messages_en: missingPasswordMessage, notMatchPasswordMessage).
  if (newPassword === '') return again(400, 'Please specify password.')
  if (newPassword !== form.get(CONFIRM_PASSWORD_FIELD)) return again(400, 'Passwords don\'t match.')
  // Before the comparison with the current password, which the form does not ask for: a guess at it that the policy
  // refuses (a current password older than the policy may be one) is told only that, never whether it was right.
  const problems = await app.accounts.newPasswordProblems(newPassword, user.username)
  if (problems.length) return again(400, problems.join(' '))
  let updated: User
  try {
    // As at me/password/: the same password again would change nothing, and end nothing. Any other is set: whoever holds
    // the browser gets one guess at the current password per form, and a wrong one replaces it.
    if (user.passwordHash !== null && await verifyPassword(user.passwordHash, newPassword, clientGone(reply.raw))) {
      return again(400, 'Choose a password different from the current one.')
    }
    updated = await app.accounts.update(user.id, { password: newPassword })
  } catch (error) {
    if (error instanceof PasswordChecksBusy) {
      reply.header('retry-after', String(PasswordChecksBusy.retryAfterSeconds))
      return again(error.status, error.message)
    }
    if (error instanceof ValidationFailed && error.fields?.password) return again(400, error.fields.password.join(' '))
    throw error
  }
  app.audit.change({ userId: user.id, username: user.username, address: request.ip, method: 'oidc' }, 'update', auditedUser(updated), passwordMark('', 'old'), passwordMark(newPassword, 'new'))
  const gatewaySession = await openGatewaySession(app, request, reply, updated)
  // Signed in afresh, with the new password: a login time from before it would be one the password change ended.
  return finishLogin(app, realm, login, provider, request, reply, updated, gatewaySession, pending.acr, { action: UPDATE_PASSWORD, status: 'success' })
}

/**
 * The answer to the "Update Account Information" page, judged as Keycloak's UpdateProfile action with its default user
 * profile judges it: first name, last name and email are required, the names may not hold the characters Keycloak's
 * profile refuses in them (`PERSON_NAME_PROHIBITED`), the email must be one and not another account's
 * (Keycloak's DuplicateEmailValidator; here, as at `PATCH me/`, neither its address nor its username in any case,
 * which a realm login by email would find too). Refused, the page comes back with Keycloak's words and the values sent,
 * and nothing changes; accepted, the account takes them (no session ends) and the authorization goes on with
 * `kc_action_status=success`. Values are trimmed, as Keycloak's user profile trims what a form sends.
 */
async function updateProfile({ app, realm, login, provider, request, reply, pending, user, form }: ActionAnswer): Promise<FastifyReply> {
  const sent: ProfileValues = {
    firstName: (form.get(FIRST_NAME_FIELD) ?? '').trim(),
    lastName: (form.get(LAST_NAME_FIELD) ?? '').trim(),
    email: (form.get(EMAIL_FIELD) ?? '').trim(),
  }
  // Keycloak's words (messages_en: missingFirstNameMessage, ..., invalidEmailMessage, emailExistsMessage, error-invalid-length-too-long,
  // error-person-name-invalid-character).
  const tooLong = (field: keyof ProfileValues) => sent[field].length > PROFILE_FIELD_LENGTHS[field] ? [`Maximal length is ${PROFILE_FIELD_LENGTHS[field]}.`] : []
  const prohibitedInName = (field: 'firstName' | 'lastName', label: string) => PERSON_NAME_PROHIBITED.test(sent[field]) ? [`${label} contains invalid character.`] : []
  const problemsOf: Record<keyof ProfileValues, string[]> = {
    email: sent.email === '' ? ['Please specify email.'] : !isEmailAddress(sent.email) || tooLong('email').length ? ['Invalid email address.'] : [],
    firstName: sent.firstName === '' ? ['Please specify first name.'] : [...tooLong('firstName'), ...prohibitedInName('firstName', 'First name')],
    lastName: sent.lastName === '' ? ['Please specify last name.'] : [...tooLong('lastName'), ...prohibitedInName('lastName', 'Last name')],
  }
  const problems = () => Object.values(problemsOf).flat()
  if (!problems().length && sent.email.toLowerCase() !== user.email.toLowerCase() && await emailTakenByAnother(app, user, sent.email)) problemsOf.email.push('Email already exists.')
  if (problems().length) {
    const invalid = Object.entries(problemsOf).filter(([, messages]) => messages.length).map(([name]) => name)
    return html(reply, 400, actionPage(realm, login, pending, user, problems(), sent, invalid))
  }
  const updated = await app.accounts.update(user.id, { email: sent.email, firstName: sent.firstName, lastName: sent.lastName })
  app.audit.change({ userId: user.id, username: user.username, address: request.ip, method: 'oidc' }, 'update', auditedUser(updated), serializeUser(user), serializeUser(updated))
  return finishLogin(app, realm, login, provider, request, reply, updated, pending.gatewaySession, pending.acr, { action: UPDATE_PROFILE, status: 'success' }, pending.signedInAt)
}

/**
 * What Keycloak's default user profile refuses in a first or last name (its `person-name-prohibited-characters`
 * validator, "an additional barrier for attacks such as script injection"), control characters included: the names
 * go into every token's `given_name`, `family_name` and `name`, which applications show, not all of them escaped.
 */
const PERSON_NAME_PROHIBITED = /[<>&"\v$%!#?§;*~/\\|^=[\]{}()\p{Cc}]/u

/** An email address as the gateway API takes one (`PATCH me/`; an empty one is refused before this). */
const isEmailAddress = (value: string): boolean => emailAddress.safeParse(value).success

/** Whether the gateway session and the realm session that an action's login was made in, if any, are still live. */
async function sessionsLive(app: App, provider: Provider, interaction: Interaction, pending: PendingUpdate): Promise<boolean> {
  if (pending.gatewaySession !== undefined && !(await app.sessions.get(pending.gatewaySession))) return false
  const realmSession = interaction.session?.cookie
  return realmSession === undefined || (await provider.Session.find(realmSession)) !== undefined
}

function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(hash('sha256', given, 'buffer'), hash('sha256', expected, 'buffer'))
}

/**
 * Ends the login step: the user goes on to the client, or, when the client's `access` rules refuse them, the client
 * gets `error=access_denied` at its redirect URI, as Keycloak answers a login it denies. The login carries the
 * browser's gateway session, to which the realm session it makes is linked (`loginResult`), and the authorization's
 * `acr`: whether the person typed their password in it or their gateway session signed them in.
 * oidc-provider's interaction cookie (the login's id, on this login's own path) is expired here: oidc-provider leaves
 * it for its 30 minutes, and no logout, on the realm's path or the gateway's, is sent it to clear it.
 */
async function finishLogin(app: App, realm: Realm, login: LoginUnderWay, provider: Provider, request: FastifyRequest, reply: FastifyReply, user: User, gatewaySession: string | undefined, acr: LoginAcr, actionOutcome?: KcActionOutcome, signedInAt?: number): Promise<FastifyReply> {
  const refusal = app.clientAccess(realm.name, login.clientId, user, request.ip)
  const result = refusal ? { error: 'access_denied', error_description: refusal }
    : { ...loginResult(String(user.id), gatewaySession, acr, signedInAt), ...(actionOutcome ? { [KC_ACTION_RESULT]: actionOutcome } : {}) }
  let returnTo: string
  if (actionOutcome?.status === 'success' && actionOutcome.action === UPDATE_PASSWORD) {
    // The new password ended the realm session the login was begun in: oidc-provider would refuse to resume the
    // authorization in another one, which the browser's next request makes.
    login.interaction.session = undefined
    await saveResult(login.interaction, result)
    returnTo = login.interaction.returnTo
  } else {
    returnTo = await provider.interactionResult(request.raw, reply.raw, result, { mergeWithLastSubmission: false })
  }
  reply.clearCookie(REALM_INTERACTION_COOKIE, { path: `${realm.path}${LOGIN_ACTIONS}${login.uid}`, httpOnly: true, sameSite: 'lax', secure: app.csrf.isSecure(request) })
  return reply.header('cache-control', 'no-store').redirect(returnTo, 303)
}

/**
 * Keycloak asks for consent only for a client with "Consent required", which no realm client has (they are
 * first-party, provider.ts `grantWithoutConsent`): `prompt=consent` (keycloak-js `login({ prompt: 'consent' })`) is
 * answered with the code and no page, as Keycloak answers it for such a client. oidc-provider asks for the consent
 * it requests as a step of its own once the person is signed in; it is given here, with the login this authorization
 * may have just finished (its last submission), so that its code keeps that login's `acr`. The client's access
 * rules are judged as the authorization resumes (provider.ts `loadExistingGrant`).
 */
async function consentWithoutPage(app: App, realm: Realm, uid: string, provider: Provider, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const returnTo = await provider.interactionResult(request.raw, reply.raw, { consent: {} }, { mergeWithLastSubmission: true })
  reply.clearCookie(REALM_INTERACTION_COOKIE, { path: `${realm.path}${LOGIN_ACTIONS}${uid}`, httpOnly: true, sameSite: 'lax', secure: app.csrf.isSecure(request) })
  return reply.header('cache-control', 'no-store').redirect(returnTo, 303)
}

/**
 * Why oidc-provider asks a browser to log in where its gateway session signs it in instead: it has no realm session,
 * or one of another person than its gateway session's (provider.ts `GATEWAY_HAS_ANOTHER_PERSON`).
 */
const GATEWAY_SIGNS_IN: ReadonlySet<string> = new Set(['no_session', GATEWAY_HAS_ANOTHER_PERSON])
/** Those, and a subject (`id_token_hint`) or a maximum age that `gatewaySessionAnswers` compares with the gateway session. */
const GATEWAY_SESSION_ANSWERS: ReadonlySet<string> = new Set([...GATEWAY_SIGNS_IN, 'id_token_hint', 'max_age'])
/** Those, and a fresh login (`prompt=login`, `max_age=0`), which the sign-in the login sent the browser to make answers. */
const FRESH_SIGN_IN_ANSWERS: ReadonlySet<string> = new Set([...GATEWAY_SESSION_ANSWERS, 'login_prompt'])

/** The query parameter of a login page's "Sign in with <label>" link: the upstream provider's name. */
const PROVIDER_QUERY = 'provider'

/**
 * The upstream provider a login sent the browser to sign in at (docs/sso.md), kept in the login's record until it
 * ends: which, and when (epoch ms, the database's clock, as a gateway session's start is taken in).
 */
interface ProviderSignIn {
  provider: string
  at: number
}
const PROVIDER_SIGN_IN = 'gatehouseProviderSignIn'

function providerSignIn(interaction: Interaction): ProviderSignIn | undefined {
  const started = (interaction.result as Record<string, unknown> | undefined)?.[PROVIDER_SIGN_IN] as ProviderSignIn | undefined
  return typeof started?.provider === 'string' && typeof started.at === 'number' ? started : undefined
}

/**
 * Whether the gateway session began since the login sent the browser to a provider: the person signed in since, there
 * (the provider's sign-in comes back to the login's page) or, after one refused there, with their password at the
 * gateway's login page it landed on. Whether that sign-in was a fresh one is the session's `freshSignIn`.
 */
function signedInSince(signedIn: GatewaySignIn, at: number): boolean {
  return signedIn.signedInAt !== undefined && signedIn.signedInAt >= at
}

/**
 * The provider an authorization's `kc_idp_hint` names, which sends the browser there instead of showing the login page,
 * as Keycloak's "Identity Provider Redirector" (IdentityProviderAuthenticator) does: after a session that answers the
 * login (its cookie authenticator comes first), once (`sendToProvider` keeps that it did: Keycloak reads the hint
 * from the authorization request alone, so the login's page asked for again is shown). An empty hint, or one naming
 * no configured provider, is passed over: the page, as Keycloak logs "Provider not found" and goes on to its form.
 * For the authorization endpoint only: a device authorization (no `redirect_uri`) takes the parameter too (oidc-provider's
 * extra parameters are every endpoint's), but the person's browser never asked for the provider, as in Keycloak, where
 * the hint is the browser's own request's.
 */
function hintedProvider(app: App, interaction: Interaction): string | undefined {
  return typeof interaction.params.redirect_uri === 'string' ? upstreamProvider(app, interaction.params[KC_IDP_HINT]) : undefined
}

/** A configured upstream provider of that name, or undefined for any other value (none, several, unknown). */
function upstreamProvider(app: App, name: unknown): string | undefined {
  return typeof name === 'string' && app.config.sso.some((provider) => provider.name === name) ? name : undefined
}

/**
 * Sends the browser to sign in at an upstream provider, to come back to this login's page (`next`), where the gateway
 * session that sign-in opens finishes the login. The login keeps that it did, and when: only a gateway session begun
 * since is taken for a fresh login (`prompt=login`, `max_age`), and a `kc_idp_hint` sends the browser once.
 */
async function sendToProvider(app: App, login: LoginUnderWay, reply: FastifyReply, provider: string, freshLogin: boolean): Promise<FastifyReply> {
  const started: ProviderSignIn = { provider, at: app.bus.clock.now() }
  await saveResult(login.interaction, { [PROVIDER_SIGN_IN]: started })
  return reply.header('cache-control', 'no-store').redirect(app.publishedPath + ssoStartPath(provider, login.action, freshLogin), 303)
}

/**
 * Whether the authorization asks for a fresh login (`prompt=login`, `max_age`), which an upstream provider's sign-in is
 * to give too: it asks the provider for one (`prompt=login`), as Keycloak's identity brokering passes `prompt` on.
 */
function asksFreshLogin(interaction: Interaction): boolean {
  const prompt = interaction.params.prompt
  return (typeof prompt === 'string' && prompt.split(' ').includes('login')) || interaction.params.max_age !== undefined
}

/** A "Sign in with <label>" link for each upstream provider (docs/sso.md), to this login's page (`sendToProvider`). */
function ssoButtons(app: App, loginPath: string): SsoButton[] {
  return app.config.sso.map((provider) => ({ label: provider.label, href: `${loginPath}?${PROVIDER_QUERY}=${encodeURIComponent(provider.name)}` }))
}

/** The `sub` of the authorization's `id_token_hint`, which oidc-provider verified when the authorization began. */
function hintedSubject(params: Record<string, unknown>): unknown {
  if (typeof params.id_token_hint !== 'string') return undefined
  try {
    return decodeJwt(params.id_token_hint).sub
  } catch {
    return null
  }
}

/**
 * The user of the browser's gateway session, with that session's key hash, if it has a live one (the realm's place is
 * public: a stale cookie is no session). The login step takes it, and so does a silent authorization
 * (`silentGatewaySignIn`).
 */
export async function gatewaySessionUser(app: App, realm: Realm, request: FastifyRequest): Promise<GatewaySignIn | undefined> {
  const decision = await app.authorize(request, app.places.realm(realm.name))
  const principal = decision.granted ? decision.principal : undefined
  return principal && { user: principal.user, gatewaySession: principal.sessionId, signedInAt: principal.issuedAt, freshSignIn: principal.freshSignIn === true }
}

/**
 * Who the browser's gateway session signs in for a silent authorization (provider.ts `silentSignIn`), which keeps a
 * realm session: counted as a sign-in started (routes.ts `startsSignIn` leaves `prompt=none` uncounted), so that a
 * client that drops the realm's cookie each time cannot have a gateway session make realm sessions without bound.
 * Past the limit the browser is not signed in silently (`login_required`); a login page would say why.
 */
export async function silentGatewaySignIn(app: App, realm: Realm, request: FastifyRequest, accepts: (signedIn: GatewaySignIn) => boolean = () => true): Promise<GatewaySignIn | undefined> {
  const signedIn = await gatewaySessionUser(app, realm, request)
  if (!signedIn || !accepts(signedIn)) return undefined
  try {
    app.signInStarts.admit(request.ip)
  } catch (error) {
    if (error instanceof SignInsThrottled) return undefined
    throw error
  }
  return signedIn
}

/**
 * The login status iframe's cookie (Keycloak's `KEYCLOAK_SESSION`) for a browser signed in only at the gateway: a
 * value that is no session's, so the iframe tells keycloak-js's check-sso that the browser's session `changed`
 * (from none), and keycloak-js asks the realm silently (`prompt=none`), which the gateway session answers
 * (provider.ts `silentSignIn`). Without it the iframe reports `unchanged` and keycloak-js never asks, as for a
 * browser with no session at all. The realm session that answer makes sets the cookie to its own `sid`'s; the
 * gateway's logout removes it (realm.ts `signOutBrowser`). A browser with the cookie already is left alone.
 */
export async function markGatewaySignIn(app: App, realm: Realm, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.cookies[SESSION_COOKIE] === undefined || request.cookies[SESSION_STATE_COOKIE] !== undefined) return
  if (!(await gatewaySessionUser(app, realm, request))) return
  const secure = app.csrf.isSecure(request)
  // As the realm session's own (keycloak-format.ts): seen inside another site's page only as SameSite=None, on https.
  reply.setCookie(SESSION_STATE_COOKIE, GATEWAY_SIGN_IN_MARK, { path: `${realm.path}/`, httpOnly: false, secure, sameSite: secure ? 'none' : 'lax' })
}

/** Never the SHA-256 of a `sid` (43 base64url characters), which the iframe compares the cookie with. */
const GATEWAY_SIGN_IN_MARK = 'gateway'

/**
 * Opens the gateway session of a browser that just signed in at the realm, and returns its key hash; one it had
 * before is replaced (session-start.ts).
 * The browser's realm sessions pass on to the new one, even another person's: oidc-provider signs that person out of
 * the realm before it signs the new one in, which the login under way needs their session for.
 */
async function openGatewaySession(app: App, request: FastifyRequest, reply: FastifyReply, user: User): Promise<string> {
  const cookie = request.cookies[SESSION_COOKIE]
  const previous = cookie ? await app.sessions.resolve(cookie).then((session) => session.keyHash, () => undefined) : undefined
  return (await startSession(app, request, reply, user, previous === undefined ? undefined : { keyHash: previous, realmSwitchesUser: true })).keyHash
}

/**
 * Where a browser that the gateway sent to its realm's login (for a service that takes realm tokens: `loginUrlFor`
 * in realm.ts) comes back with a code. The gateway is its own client here and needs no tokens, only who logged
 * in: the code is taken only from the browser whose realm session it was issued to (otherwise anyone could plant
 * their own code in someone else's browser, login CSRF), and used up by being looked up, so that it serves once. The browser then
 * gets a gateway session and goes back to the page it asked for.
 */
export async function gatewayCallback(app: App, realm: Realm, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const query = request.query as Record<string, unknown>
  if (query.error !== undefined) {
    // Anyone can write a link here with an error and a description of their own: the page says only what the code means.
    const reason = query.error === 'access_denied' ? 'No access rule of the application lets you sign in to it.' : 'The login could not be completed. Go back to the application and start again.'
    return html(reply, 400, simplePage('Login failed', `<p>${reason}</p>`))
  }
  const { instance: provider } = await realm.provider()
  const code = typeof query.code === 'string' ? await provider.AuthorizationCode.find(query.code) : undefined
  const sessionId = request.cookies[REALM_SESSION_COOKIE]
  const session = sessionId ? await provider.Session.find(sessionId) : undefined
  // oidc-provider's typings leave out `consumed`, which a code already redeemed carries.
  const consumed = (code as { consumed?: unknown } | undefined)?.consumed !== undefined
  const fromThisBrowser = code && session && !code.isExpired && !consumed && code.sessionUid === session.uid &&
    code.accountId === session.accountId && code.redirectUri === realm.issuer + GATEWAY_CALLBACK && freshLogin(code)
  // Finding the code used it up (adapter.ts `#claimCode`): of callbacks that bring one code at once, one finds it unused.
  if (!fromThisBrowser) return expired(reply)
  // A code outlives its grant, ended (a logout, its account's end: src/store/oidc.ts `CODE_MODELS`): it is no sign-in then.
  if (typeof code.grantId !== 'string' || !(await provider.Grant.find(code.grantId))) return expired(reply)
  const user = await app.accounts.get(Number(code.accountId))
  // The status every door answers a disabled account with (account_disabled).
  if (!user?.isActive) return html(reply, AccountDisabled.status, simplePage('Login failed', '<p>Your account is disabled.</p>'))
  await openGatewaySession(app, request, reply, user)
  // The state is the page the gateway sent the browser from, but anyone can write a link with a state of their own:
  // it is held to this site, and written as a Location can carry it (a control character would fail the answer).
  const next = typeof query.state === 'string' ? Buffer.from(query.state, 'base64url').toString('utf8') : undefined
  return reply.header('cache-control', 'no-store').redirect(sameOriginTarget(app.publicUrl, next) ?? `${app.publishedPath}/`, 302)
}

/** Longest time between the person's login at the realm and the code it gave the gateway: the login of this very sign-in. */
const FRESH_LOGIN_SECONDS = 60

/**
 * Whether the code comes from a login the person just made (the gateway asks for one with `prompt=login`), not from
 * the realm's browser session alone: otherwise a browser whose gateway session was ended (a lost laptop, whose
 * owner ended its sessions) would get a new one from the realm by leaving out `prompt=login`.
 */
function freshLogin(code: { iat?: number; authTime?: number }): boolean {
  return typeof code.iat === 'number' && typeof code.authTime === 'number' && code.iat - code.authTime <= FRESH_LOGIN_SECONDS
}

/**
 * A login page whose login is over: it expired, or it was used already (the browser's back button, a second tab).
 * As Keycloak restarts such a login from its KC_RESTART cookie (SessionCodeChecks, "loginTimeout"), the form's
 * submission starts the authorization request the page was shown for again, its password unused: the browser is sent
 * to the authorization endpoint, which signs it in at once when it has a realm session by now (the login was finished
 * in another tab), or shows a fresh login page saying the login started again. The request is the page's own, and
 * sending a browser to the authorization endpoint is what any link can do: the endpoint checks every parameter
 * again. Without one (a reload of an old page, a form from elsewhere), the page says to start again at the application.
 */
async function restartLogin(app: App, realm: Realm, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const restart = request.method === 'POST' ? new URLSearchParams((await readForm(app, request, reply)).get(RESTART_FIELD) ?? '') : undefined
  if (!restart?.get('client_id')) return expired(reply)
  reply.setCookie(LOGIN_RESTARTED_COOKIE, '1', restartedCookieOptions(app, realm, request))
  return reply.header('cache-control', 'no-store').redirect(`${realm.path}${KEYCLOAK_ROUTES.authorization}?${restart}`, 303)
}

function restartedCookieOptions(app: App, realm: Realm, request: FastifyRequest) {
  return { path: `${realm.path}${LOGIN_ACTIONS}`, httpOnly: true, sameSite: 'lax' as const, secure: app.csrf.isSecure(request), maxAge: 60 }
}

/**
 * The login form's `restart` field: the authorization request's parameters, as a query (those oidc-provider
 * recognised, each a string). The browser posts it encoded once more (`%2F` as `%252F`), with the form's other fields,
 * all within REALM_BODY_LIMIT: a request whose field would take more than RESTART_FIELD_MOST of it (a long `state`,
 * a pushed request's parameters) gets no such field, so that its form can still be sent; only its stale page then
 * says to start again at the application, as one without the field does. The restart's redirect stays within a
 * URL's length too.
 */
function restartField(params: Record<string, unknown>): Record<string, string> {
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (typeof value === 'string') query.set(name, value)
  const restart = query.toString()
  return new URLSearchParams({ [RESTART_FIELD]: restart }).toString().length <= RESTART_FIELD_MOST ? { [RESTART_FIELD]: restart } : {}
}
/** Half the realm's body limit: the rest is room for the username and the password, which a browser may escape too. */
const RESTART_FIELD_MOST = REALM_BODY_LIMIT / 2

function expired(reply: FastifyReply): FastifyReply {
  return html(reply, 400, simplePage('Login expired', '<p>Your login attempt timed out or was already used. Go back to the application and start again.</p>'))
}

function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').headers(UNFRAMED_PAGE_HEADERS).type('text/html; charset=utf-8').send(body)
}

/**
 * The form a page posted, read within the realms' body budget (src/oidc/routes.ts). A login form is a few short
 * fields and the authorization request it restarts: one longer than REALM_BODY_LIMIT is refused (413), unread when
 * its length says so; read as an empty form, it was answered as a wrong password, or a form from elsewhere, which it
 * is not. Decoded once whole: a character sent as UTF-8 (curl --data, not a browser's percent-encoding) may be split
 * between two reads, and each half decoded alone is a replacement character.
 */
async function readForm(app: App, request: FastifyRequest, reply: FastifyReply): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(request.headers['content-type'] ?? '')) return new URLSearchParams()
  const body = await readRealmBody(app, request.raw, reply.raw, request.ip)
  if (body === 'too_large') throw new PayloadTooLarge()
  if (body === 'too_slow') throw new RequestTimeout('The form took too long to arrive.')
  if (body === 'budget_full') throw new BodyBuffersFull()
  // Read as the gateway's own forms are: bytes or escapes that are not UTF-8 would become U+FFFD, and be stored so
  // (a name) or set (a password) without a word.
  const text = body.toString('utf8')
  if (!isUtf8(body) || !wellFormedEscapes(text)) throw new MalformedEscape('The form is not UTF-8, or has a malformed percent escape.')
  return new URLSearchParams(text)
}
