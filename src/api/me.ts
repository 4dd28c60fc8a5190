import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { recordTokensOfUserRevoked } from '../audit/tokens.ts'
import { AccountLocked, InvalidCredentials, ManagedBySource, PermissionDenied, ValidationFailed } from '../errors.ts'
import type { User } from '../store/users.ts'
import { toggle } from '../settings/definitions.ts'
import { principalOf } from './access.ts'
import { profileFields } from './profile-fields.ts'
import type { GatewayApi } from './gateway-api.ts'
import { auditedUser, passwordMark, serializeUser } from './users.ts'
import { startSession } from '../auth/session-start.ts'
import { clientGone } from '../http/client-gone.ts'

const profileChanges = z.object(profileFields).partial().strict()

const passwordChange = z.object({
  current_password: z.string().min(1, 'Enter your current password.'),
  new_password: z.string().min(1, 'Enter a new password.'),
  revoke_tokens: toggle().optional(),
}).strict()

/**
 * The caller's own account: read it, change name and email, change the password. Only local accounts are
 * changed here; a directory or single sign-on account's details belong to its source.
 */
export function meRoutes(api: GatewayApi, app: App): void {
  api.get('/me/', async (request) => {
    const { user } = principalOf(request)
    return { count: 1, next: null, previous: null, results: [serializeUser(user)] }
  })

  api.patch('/me/', { schema: { body: profileChanges } }, async (request) => {
    const { user } = principalOf(request)
    const input = request.body
    if (user.source !== 'local') throw new ManagedBySource(`Your details come from your ${user.source} account and are changed there.`)
    if (input.email && input.email.toLowerCase() !== user.email.toLowerCase()) await assertEmailFree(app, user, input.email)
    const updated = await app.accounts.update(user.id, { email: input.email, firstName: input.first_name, lastName: input.last_name })
    app.audit.change(actorOf(request), 'update', auditedUser(updated), serializeUser(user), serializeUser(updated))
    return serializeUser(updated)
  })

  // The current password is asked for whatever the credential, so a stolen session or token cannot lock
  // the owner out. Every session of the account ends (the OpenID Connect provider's too); a browser changing it
  // gets a fresh session at once. Personal tokens end only with revoke_tokens (docs/passwords.md says why).
  api.post('/me/password/', { schema: { body: passwordChange } }, async (request, reply) => {
    const principal = principalOf(request)
    const input = request.body
    if (principal.user.source !== 'local') throw new ManagedBySource(`Your password belongs to your ${principal.user.source} account and is changed there.`)
    await assertCurrentPassword(app, request, reply, input.current_password, input.new_password, 'new_password')
    let user
    try {
      user = await app.accounts.update(principal.user.id, { password: input.new_password, revokeTokens: input.revoke_tokens }, { tokensRevoked: (revoked) => recordTokensOfUserRevoked(app.audit, actorOf(request), principal.user.id, revoked) })
    } catch (error) {
      // The password policy names the account's `password`; here the person typed it as `new_password`.
      if (error instanceof ValidationFailed && error.fields?.password) throw new ValidationFailed({ new_password: error.fields.password })
      throw error
    }
    app.audit.change(actorOf(request), 'update', auditedUser(user), passwordMark(input.current_password, 'old'), passwordMark(input.new_password, 'new'))
    await keepBrowserSignedIn(app, request, reply, user)
    return reply.code(204).send()
  })
}

/**
 * What a person changing their own password proves, wherever they change it (here and users/{id}/): the current
 * password, checked as a login checks it (its failures count towards the account's lockout), so a stolen session or
 * token cannot lock the owner out; and a new one that differs from it. `field` names the new password in the body.
 */
export async function assertCurrentPassword(app: App, request: FastifyRequest, reply: FastifyReply, current: string, next: string, field: string): Promise<void> {
  try {
    await app.accounts.checkPassword(principalOf(request).user.username, current, request.ip, undefined, undefined, clientGone(reply.raw))
  } catch (error) {
    if (error instanceof InvalidCredentials) throw new ValidationFailed({ current_password: ['This is not your current password.'] })
    // The caller's credential is good: a 401 would read as the session or token having ended (the web interface signs
    // out on one), when it is the current password that may not be checked for a while.
    if (error instanceof AccountLocked) throw new ValidationFailed({ current_password: [error.message] })
    throw error
  }
  if (next === current) throw new ValidationFailed({ [field]: ['Choose a password different from the current one.'] })
}

/** A new password ends every session of the account; the browser that set it gets a fresh one at once. */
export async function keepBrowserSignedIn(app: App, request: FastifyRequest, reply: FastifyReply, user: User): Promise<void> {
  if (principalOf(request).method === 'session') await startSession(app, request, reply, user)
}

/**
 * What a user who is not a superuser may change of their own record through users/{id}/, as the platform lets them
 * (django-ansible-base's can_change_user answers yes for request.user == obj), under me/'s and me/password/'s rules:
 * names and e-mail address of a local account, and its password with the current one: given as `current_password`,
 * or as the request's own basic credentials, which were just checked (the platform asks for neither, and the
 * collection's user module sends none; a session or a token alone proves nothing of the password, and one stolen must
 * not lock the owner out). A value sent as the record already has it is no change (the collection's user module sends
 * the whole record); the username is not theirs to change, nor the superuser flag, and a directory or single sign-on
 * account's details belong to its source.
 */
export async function assertOwnChange(app: App, request: FastifyRequest, reply: FastifyReply, user: User, input: OwnChange): Promise<void> {
  const changed = (['username', 'email', 'first_name', 'last_name'] as const).filter((field) => input[field] !== undefined && input[field] !== serializeUser(user)[field])
  if (input.is_superuser === true) throw new PermissionDenied(NOT_YOUR_FLAG)
  if (user.source !== 'local' && (changed.length || input.password !== undefined)) {
    throw new ManagedBySource(`Your details come from your ${user.source} account and are changed there.`)
  }
  if (changed.includes('username')) throw new PermissionDenied('Your username is changed by an administrator.')
  if (changed.includes('email') && input.email && input.email.toLowerCase() !== user.email.toLowerCase()) await assertEmailFree(app, user, input.email)
  if (input.password !== undefined && (input.current_password !== undefined || principalOf(request).method !== 'basic')) {
    if (input.current_password === undefined) throw new ValidationFailed({ current_password: ['Enter your current password to change it.'] })
    await assertCurrentPassword(app, request, reply, input.current_password, input.password, 'password')
  }
}

export const NOT_YOUR_FLAG = 'You cannot make yourself a superuser.'

/** The fields of a change to a user's own record that assertOwnChange weighs. */
export interface OwnChange {
  username?: string
  email?: string
  first_name?: string
  last_name?: string
  is_superuser?: boolean
  password?: string
  current_password?: string
}

export const EMAIL_TAKEN = 'Another account signs in with this email address.'

/**
 * A realm login may name an account by its e-mail address, in any case (src/oidc/login-name.ts), and takes it only
 * when one account matches: an address copied from another account would stop that account's login by it. Keycloak
 * refuses a duplicate address for the same reason; it is checked where a person sets their own, unverified.
 */
export async function assertEmailFree(app: App, user: User, email: string): Promise<void> {
  if (await emailTakenByAnother(app, user, email)) throw new ValidationFailed({ email: [EMAIL_TAKEN] })
}

/** Whether another account than `user` signs in with this address: its address or its username, in any case. */
export async function emailTakenByAnother(app: App, user: User, email: string): Promise<boolean> {
  const holders = await app.store.users.findUsernamesLike(email, true)
  return holders.some((username) => username !== user.username)
}
