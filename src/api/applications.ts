import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { App } from '../app.ts'
import { type Actor, actorOf } from '../audit/actor.ts'
import { auditedApplication, recordSecretRotated } from '../audit/applications.ts'
import { NotFound, pkDoesNotExist, ValidationFailed } from '../errors.ts'
import { endApplicationTokens, hashClientSecret, newClientSecret, rotateApplicationSecret } from '../oidc/applications.ts'
import { MAX_SECRET_GRACE_SECONDS } from '../limits.ts'
import { type Application, applicationFilterFields } from '../store/applications.ts'
import { ForeignKeyViolation, UniqueViolation } from '../store/errors.ts'
import { principalOf } from './access.ts'
import { organizationUrl } from './organizations.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { listQuery } from './list-query.ts'
import { describeList, SERVER_FIELDS } from './metadata.ts'
import { paged } from './pagination.ts'
import { activityStreamUrl, ENCRYPTED, userSummary, userUrl } from './summaries.ts'
import { integer, toggle } from '../settings/definitions.ts'
import { bodyId, idParam, nullableBodyId, optionalBody } from './validation.ts'

/** Space-separated absolute http(s) URLs without fragments, as django-oauth-toolkit takes `redirect_uris`. */
const redirectUris = z.string().trim().max(4000).refine((value) => value.split(/\s+/).filter(Boolean).every((uri) => {
  const url = URL.parse(uri)
  return url !== null && (url.protocol === 'https:' || url.protocol === 'http:') && url.hash === ''
}), 'Enter space-separated absolute http(s) URLs without a fragment.')
/**
 * The platform's serializer refuses a null organization (`allow_null: False`) and, under the Django REST framework
 * django-ansible-base pins, requires one (a field of the model's `unique_together`), while its model allows none.
 * Here one left out is none, as the web interface creates them (docs/api.md, where Gatehouse differs); applications
 * stored without one are shown as they are.
 */
const organization = bodyId

/**
 * `skip_authorization` and `algorithm` are taken as what the realm does (it asks its clients' users no consent, and
 * the application's ID tokens are the realm's), so the collection may send them; a value asking for anything else
 * is refused rather than stored without effect.
 */
const applicationFields = z.object({
  /** As long as django-ansible-base's (its NamedCommonModel's `max_length`, migration 023). */
  name: z.string().trim().min(1, 'This field may not be blank.').max(512),
  description: z.string().trim().max(1000).optional(),
  organization: organization.optional(),
  user: nullableBodyId.optional(),
  client_type: z.enum(['confidential', 'public']),
  authorization_grant_type: z.enum(['password', 'authorization-code']),
  redirect_uris: redirectUris.optional(),
  /**
   * django-ansible-base's per-application switch, `true` for a new application as there: its authorization requests
   * must carry PKCE (S256). `false` lets an application whose client sends none log in without it.
   */
  pkce_required: toggle().optional(),
  skip_authorization: z.literal(true, { error: 'Users are never asked to consent: only true is accepted.' }).optional(),
  algorithm: z.literal('', { error: 'ID tokens are signed by the realm: only "" is accepted.' }).optional(),
}).strict()
/**
 * The platform's serializer has `client_id` and `client_secret` read-only: both are made here, whatever a body
 * says, and Django REST framework drops them from input unread. So are they here, on create and update alike; the
 * answer shows the values in effect (on create, the ones made).
 */
const ignoredCredentials = {
  client_id: z.unknown().optional().describe('Read-only: made by the server; ignored.'),
  client_secret: z.unknown().optional().describe('Read-only: made by the server and shown once, on create; ignored.'),
}
export const createApplication = applicationFields.extend(ignoredCredentials).superRefine((input, context) => {
  if (input.authorization_grant_type === 'authorization-code' && !input.redirect_uris?.trim()) {
    context.addIssue({ code: 'custom', path: ['redirect_uris'], message: 'Redirect URIs are required for the authorization-code grant.' })
  }
})
export const updateApplication = applicationFields.partial().extend(ignoredCredentials).strict()
const replaceApplication = updateApplication.required({ name: true, client_type: true, authorization_grant_type: true })
const PUBLIC_HAS_NO_SECRET = 'A public application has no secret to rotate.'
/**
 * Without a body at all (`curl -X POST`, a client's bare `post(url)`) as with `{}`: no grace. The grace is read as
 * Django REST framework's IntegerField reads a number, so a form's `grace_seconds=30` is 30 seconds.
 */
const rotateSecret = optionalBody(z.object({
  grace_seconds: integer(0, MAX_SECRET_GRACE_SECONDS).optional()
    .describe('How long the secret being replaced still authenticates, in seconds (default 0: it stops at once).'),
}).strict())
const listApplications = listQuery(applicationFilterFields)

/** Django REST framework's UniqueTogetherValidator's words, on `non_field_errors` as it raises them. */
const nameTaken = () => new ValidationFailed({ non_field_errors: ['The fields name, organization must make a unique set.'] })

/** An application as the API shows it; its secret only when given (in the response that makes one). */
export async function serializeApplication(app: App, application: Application, secret?: string) {
  const url = `${GATEWAY_API}/applications/${application.id}/`
  const creator = application.userId === null ? undefined : userSummary(await app.accounts.get(application.userId), application.userId)
  const organization = application.organizationId === null ? undefined : app.access.organization(application.organizationId)
  return {
    id: application.id,
    type: 'application',
    url,
    // No `tokens`: an application's tokens are the realm's access tokens, which are verified without being listed.
    related: {
      ...(creator ? { user: userUrl(creator.id), created_by: userUrl(creator.id) } : {}),
      ...(application.organizationId === null ? {} : { organization: organizationUrl(application.organizationId) }),
      activity_stream: activityStreamUrl('application', application.id),
    },
    summary_fields: {
      ...(creator ? { user: creator, created_by: creator } : {}),
      ...(organization ? { organization: { id: organization.id, name: organization.name, description: organization.description } } : {}),
    },
    created: new Date(application.created).toISOString(),
    created_by: application.userId,
    modified: new Date(application.modified).toISOString(),
    modified_by: null,
    name: application.name,
    description: application.description,
    organization: application.organizationId,
    user: application.userId,
    client_id: application.clientId,
    // A public application has no secret: the platform's serializer leaves the field out rather than show it empty.
    ...(application.clientType === 'public' ? {} : { client_secret: secret ?? ENCRYPTED }),
    client_type: application.clientType,
    authorization_grant_type: application.authorizationGrantType,
    redirect_uris: application.redirectUris.join(' '),
    pkce_required: application.pkceRequired,
    skip_authorization: true,
    algorithm: '',
  }
}

/**
 * Records the applications that went with their organization or their owner: each its own `delete`, as the platform's
 * activity stream records every auditable object a cascade deletes, with `code` saying why.
 */
export async function auditApplicationsGone(app: App, actor: Actor, applications: readonly Application[], code: string): Promise<void> {
  for (const application of applications) app.audit.change(actor, 'delete', auditedApplication(application), await serializeApplication(app, application), undefined, code)
}

type CreateInput = z.output<typeof createApplication>
type UpdateInput = z.output<typeof updateApplication>

/**
 * What is done to applications, from the API and the command line alike: the checks a body passed by its schema
 * still needs (the organization and user it names, its name unique in its organization), the write, and its entry in
 * the activity stream, by `actor`.
 */
export function applicationActions(app: App) {
  const realm = app.oidc.applicationsRealm
  const serialize = (application: Application, secret?: string) => serializeApplication(app, application, secret)
  const audited = auditedApplication
  /** The platform's PrimaryKeyRelatedField: an id that names no organization is the caller's mistake, named. */
  const existingOrganization = async (id: number | undefined) => {
    if (id === undefined) return id
    if (!(await app.store.access.findOrganization(id))) throw new ValidationFailed({ organization: [pkDoesNotExist(id)] })
    return id
  }
  const existingUser = async (id: number | null | undefined) => {
    if (id === undefined || id === null) return id
    if (!(await app.accounts.get(id))) throw new ValidationFailed({ user: [pkDoesNotExist(id)] })
    return id
  }
  /**
   * Django REST framework's UniqueTogetherValidator on (name, organization), as the platform's applications have it:
   * the collection finds an application by the pair, so a second one would make every later run fail. Skipped, as
   * there, when the organization is null.
   */
  const uniqueInOrganization = async (name: string, organizationId: number | null, self?: number) => {
    if (organizationId === null) return
    const holder = await app.store.applications.findByName(name, organizationId)
    if (holder && holder.id !== self) throw nameTaken()
  }
  /**
   * Runs a write that the API's checks passed: no twin of its name, and the organization and user it names there. A
   * twin made meanwhile (another request, another process) is refused by the database's unique index on the pair
   * (migration 022), and an organization or user deleted meanwhile by its foreign key: each is answered as the check
   * would have answered it. The other unique column, `client_id`, is 20 random bytes made here: no clash is expected.
   */
  const checkedWrite = async <T>(named: { organizationId?: number | null | undefined; userId?: number | null | undefined }, write: () => Promise<T>): Promise<T> => {
    try {
      return await write()
    } catch (error) {
      if (error instanceof UniqueViolation) throw nameTaken()
      if (!(error instanceof ForeignKeyViolation)) throw error
      await existingOrganization(named.organizationId ?? undefined)
      // From the database, not the accounts' cache: a deletion committed by another request or process reaches the
      // cache only with its news, after the commit.
      const userId = named.userId
      if (userId !== undefined && userId !== null && !(await app.store.users.findById(userId))) throw new ValidationFailed({ user: [pkDoesNotExist(userId)] })
      throw error
    }
  }

  return {
    async found(id: number): Promise<Application> {
      const application = await app.store.applications.findById(id)
      if (!application) throw new NotFound('No such application.')
      return application
    },

    /**
     * A new application of the realm serving them, owned by `input.user` or by no one (as the platform's: its creator
     * does not become its owner, whose deletion would take the application and its clients' tokens with it), with its
     * secret when confidential: the only time that secret is known.
     */
    async create(input: CreateInput, actor: Actor): Promise<{ application: Application; secret: string | undefined }> {
      if (!realm) throw new ValidationFailed({ non_field_errors: ['No realm is configured to serve OAuth2 applications (realms, gateway.oidc.applications_realm).'] })
      const organizationId = (await existingOrganization(input.organization)) ?? null
      await uniqueInOrganization(input.name, organizationId)
      const secret = input.client_type === 'confidential' ? newClientSecret() : undefined
      const userId = (await existingUser(input.user)) ?? null
      const application = await checkedWrite({ organizationId, userId }, () => app.store.applications.create({
        realm: realm.name,
        clientId: randomBytes(20).toString('hex'),
        clientSecretHash: secret === undefined ? null : hashClientSecret(secret),
        name: input.name,
        description: input.description ?? '',
        clientType: input.client_type,
        authorizationGrantType: input.authorization_grant_type,
        redirectUris: input.redirect_uris?.split(/\s+/).filter(Boolean) ?? [],
        pkceRequired: input.pkce_required ?? true,
        userId,
        organizationId,
      }))
      app.audit.change(actor, 'create', audited(application), undefined, await serialize(application))
      return { application, secret }
    },

    /**
     * Changes an application; one made confidential gets a new secret, returned here and shown in the answer once (as a
     * create's), and one made public loses its secret. Its tokens stay, as the platform's do.
     */
    async update(current: Application, input: UpdateInput, actor: Actor): Promise<{ application: Application; secret: string | undefined }> {
      const typeChange = input.client_type === undefined || input.client_type === current.clientType ? undefined : input.client_type
      const secret = typeChange === 'confidential' ? newClientSecret() : undefined
      const grant = input.authorization_grant_type ?? current.authorizationGrantType
      const uris = input.redirect_uris === undefined ? current.redirectUris : input.redirect_uris.split(/\s+/).filter(Boolean)
      if (grant === 'authorization-code' && !uris.length) throw new ValidationFailed({ redirect_uris: ['Redirect URIs are required for the authorization-code grant.'] })
      const organizationId = await existingOrganization(input.organization)
      await uniqueInOrganization(input.name ?? current.name, organizationId === undefined ? current.organizationId : organizationId, current.id)
      const userId = await existingUser(input.user)
      // Another grant type ends the tokens the old one gave, in the same transaction: a refresh token of a password
      // application switched to the authorization-code grant would otherwise go on giving what that grant now refuses.
      const grantChanged = grant !== current.authorizationGrantType
      const updated = await checkedWrite({ organizationId, userId }, () => app.bus.change(async (tx, announce) => {
        const written = await tx.applications.update(current.id, {
          name: input.name,
          description: input.description,
          authorizationGrantType: input.authorization_grant_type,
          redirectUris: input.redirect_uris === undefined ? undefined : uris,
          pkceRequired: input.pkce_required,
          organizationId,
          userId,
          ...typeChange === 'confidential' ? { clientType: typeChange, clientSecretHash: hashClientSecret(secret!) } : typeChange === 'public' ? { clientType: typeChange, clientSecretHash: null } : {},
        })
        if (written && grantChanged) await endApplicationTokens(tx, announce, [current.clientId])
        return written
      }))
      if (!updated) throw new NotFound('No such application.')
      // What the update itself changed from: another change at the same time may have come between.
      const { before, after } = updated
      app.audit.change(actor, 'update', audited(after), await serialize(before), await serialize(after))
      return { application: after, secret }
    },

    /** Deletes the application and ends its tokens, in every process. */
    async delete(current: Application, actor: Actor): Promise<void> {
      const deleted = await app.bus.change(async (tx, announce) => {
        if (!(await tx.applications.delete(current.id))) return false
        await endApplicationTokens(tx, announce, [current.clientId])
        return true
      })
      if (!deleted) throw new NotFound('No such application.')
      app.audit.change(actor, 'delete', audited(current), await serialize(current))
    },
  }
}

/**
 * OAuth2 applications, as the platform has them: each is a client of the realm `gateway.oidc.applications_realm`
 * (src/oidc/applications.ts), so it gets tokens at `/o/token/` (or the realm's own token endpoint) that work at
 * every service taking that realm's tokens. Managed by superusers at run time; a confidential application's
 * secret is shown once, in the response that creates it.
 */
export function applicationRoutes(api: GatewayApi, app: App): void {
  const superuser = { access: 'superuser' } as const
  const serialize = (application: Application, secret?: string) => serializeApplication(app, application, secret)
  const actions = applicationActions(app)
  const found = actions.found

  api.get('/applications/', { config: superuser, schema: { querystring: listApplications } }, async (request) => {
    const { page, filter } = request.query
    const { count, applications } = await app.store.applications.list({ offset: page.offset, limit: page.pageSize, filter })
    return paged(request, page, count, await Promise.all(applications.map((a) => serialize(a))))
  })

  describeList(api, '/applications/', {
    access: 'superuser',
    name: 'OAuth2 Application List',
    description: 'OAuth2 applications: clients of the OpenID Connect provider that get tokens at /o/token/.',
    create: { body: applicationFields, readOnly: { ...SERVER_FIELDS, client_id: 'string', client_secret: 'string' }, allowed: (principal) => principal.user.isSuperuser },
  })

  api.post('/applications/', { config: superuser, schema: { body: createApplication } }, async (request, reply) => {
    const { application, secret } = await actions.create(request.body, actorOf(request))
    reply.code(201)
    return serialize(application, secret)
  })

  api.get('/applications/:id/', { config: superuser, schema: { params: idParam } }, async (request) => serialize(await found(request.params.id)))

  for (const [method, body] of [['PATCH', updateApplication], ['PUT', replaceApplication]] as const) api.route({
    method,
    url: '/applications/:id/',
    config: superuser,
    schema: { params: idParam, body },
    handler: async (request) => {
      const { application, secret } = await actions.update(await found(request.params.id), request.body, actorOf(request))
      return serialize(application, secret)
    },
  })

  /**
   * A confidential application's new secret, shown in this answer only, as the one made with it was (Keycloak's
   * `POST /admin/realms/{realm}/clients/{id}/client-secret`; the platform makes none after the create). With
   * `grace_seconds` the old one goes on authenticating that long, as Keycloak's rotated secret does under its
   * client secret rotation policy, so that its clients can take the new one without a moment refused; without, it
   * stops at once. Its tokens stay: a secret that leaked is ended here, tokens are revoked at `/o/revoke_token/`.
   */
  api.post('/applications/:id/client_secret/', { config: superuser, schema: { params: idParam, body: rotateSecret } }, async (request) => {
    const current = await found(request.params.id)
    if (current.clientType === 'public') throw new ValidationFailed({ client_type: [PUBLIC_HAS_NO_SECRET] })
    const secret = newClientSecret()
    const rotated = await rotateApplicationSecret(app.store.applications, current.id, secret, request.body.grace_seconds ?? 0, app.bus.clock.now())
    if (!rotated) throw new NotFound('No such application.')
    recordSecretRotated(app.audit, actorOf(request), current, rotated.application, rotated.previousUntil)
    return { ...(await serialize(rotated.application, secret)), previous_secret_expires: rotated.previousUntil === null ? null : new Date(rotated.previousUntil).toISOString() }
  })

  api.delete('/applications/:id/', { config: superuser, schema: { params: idParam } }, async (request, reply) => {
    await actions.delete(await found(request.params.id), actorOf(request))
    return reply.code(204).send()
  })
}
