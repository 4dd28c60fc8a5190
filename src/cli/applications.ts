import type { App } from '../app.ts'
import { applicationActions, createApplication, serializeApplication, updateApplication } from '../api/applications.ts'
import { parseBody } from '../api/validation.ts'
import { cliActor } from '../audit/actor.ts'
import { recordSecretRotated } from '../audit/applications.ts'
import { ValidationFailed } from '../errors.ts'
import { newClientSecret, rotateApplicationSecret } from '../oidc/applications.ts'
import type { Application } from '../store/applications.ts'
import { NO_FILTER } from '../store/list-filter.ts'
import { printable } from '../logging/printable.ts'
import { withApp } from './actions.ts'
import { everyPage, printList, UsageError, writeFailure, writeSecret, type StorageOptions } from './common.ts'

interface ByIdOptions extends StorageOptions {
  id: number
}

interface RotateOptions extends ByIdOptions {
  graceSeconds: number
}

/** The options that give the API's fields, by the fields' names with dashes (`--client-type` is `client_type`). */
interface FieldOptions {
  name?: string
  description?: string
  organization?: string
  user?: string
  clientType?: string
  authorizationGrantType?: string
  redirectUris?: string
  pkceRequired?: string
}

/** Application ids are the database's 32-bit integers, as the API's ids are (src/api/validation.ts). */
const MAX_APPLICATION_ID = 2 ** 31 - 1

export async function listApplications(options: StorageOptions & { json?: boolean }): Promise<void> {
  await withApp(options, async (app) => {
    const all = await everyPage(async (offset, limit) => (await app.store.applications.list({ offset, limit, filter: NO_FILTER })).applications)
    const shown = new Map(await Promise.all(all.map(async (a) => [a.id, await serializeApplication(app, a)] as const)))
    printList(all, options.json === true, ['ID', 'NAME', 'CLIENT_ID', 'CLIENT_TYPE', 'GRANT_TYPE', 'ORGANIZATION'],
      (a) => [String(a.id), a.name, a.clientId, a.clientType, a.authorizationGrantType, a.organizationId === null ? '' : String(a.organizationId)],
      (a) => shown.get(a.id))
  })
}

export async function showApplication(options: ByIdOptions): Promise<void> {
  await withApp(options, async (app) => {
    process.stdout.write(`${JSON.stringify(await serializeApplication(app, await foundApplication(app, options.id)), null, 2)}\n`)
  })
}

export async function makeApplication(options: StorageOptions & FieldOptions & { json?: boolean }): Promise<void> {
  const input = checkedFields(() => parseBody(createApplication, fieldsOf(options)))
  await withApp(options, async (app) => {
    if (!app.oidc.applicationsRealm) {
      throw new UsageError(`no realm in the configuration serves OAuth2 applications (realms, gateway.oidc.applications_realm)${app.config.realms.length ? '' : ': give the configuration the gateway runs with --config, or --demo for the demo\'s'}`)
    }
    const actions = applicationActions(app)
    const { application, secret } = await checkedFields(() => actions.create(input, cliActor()))
    const output = options.json
      ? `${JSON.stringify(await serializeApplication(app, application, secret), null, 2)}\n`
      : [`created application ${application.id} (${printable(application.name)})`, `client_id: ${application.clientId}`, ...(secret ? [`client_secret: ${secret}`] : [])].join('\n') + '\n'
    if (secret === undefined) return void process.stdout.write(output)
    try {
      await writeSecret(output)
    } catch (error) {
      // No one has its secret: it is deleted again rather than left for a script to create once more under a new id.
      await actions.delete(application, cliActor())
      throw new Error(`the secret of the new application could not be written (${writeFailure(error)}); application ${application.id} was deleted again: `
        + 'create it with standard output where it can be read')
    }
  })
}

export async function changeApplication(options: ByIdOptions & FieldOptions): Promise<void> {
  const fields = fieldsOf(options)
  if (Object.keys(fields).length === 0) throw new UsageError('nothing to change: give at least one of --name, --description, --organization, --user, --authorization-grant-type, --redirect-uris, --pkce-required')
  const input = checkedFields(() => parseBody(updateApplication, fields))
  await withApp(options, async (app) => {
    const current = await foundApplication(app, options.id)
    const { application: updated } = await checkedFields(() => applicationActions(app).update(current, input, cliActor()))
    process.stdout.write(`updated application ${updated.id} (${printable(updated.name)})\n`)
  })
}

export async function deleteApplication(options: ByIdOptions): Promise<void> {
  await withApp(options, async (app) => {
    const current = await foundApplication(app, options.id)
    await applicationActions(app).delete(current, cliActor())
    process.stdout.write(`deleted application ${current.id} (${printable(current.name)})\n`)
  })
}

export async function rotateSecret(options: RotateOptions): Promise<void> {
  await withApp(options, async (app) => {
    const current = await foundApplication(app, options.id)
    if (current.clientType === 'public') throw new UsageError(`application ${current.id} is public: it has no secret to rotate`)
    // Printed before it is stored: a secret that could not be written is never taken, and the one the clients
    // hold goes on working, where storing it first would leave one that no one has (and end the grace of the one
    // before if rotated again).
    const secret = newClientSecret()
    try {
      await writeSecret(`${secret}\n`)
    } catch (error) {
      throw new Error(`the new secret could not be written (${writeFailure(error)}); application ${current.id} keeps its secret`)
    }
    const rotated = await rotateApplicationSecret(app.store.applications, current.id, secret, options.graceSeconds, app.bus.clock.now())
    if (!rotated) throw new Error(`application ${current.id} was deleted meanwhile: the secret printed is not taken`)
    recordSecretRotated(app.audit, cliActor(), current, rotated.application, rotated.previousUntil)
    const previous = rotated.previousUntil === null ? 'the previous one no longer works' : `the previous one works until ${new Date(rotated.previousUntil).toISOString()}`
    process.stderr.write(`rotated the secret of application ${current.id} (${printable(current.name)}); ${previous}\n`)
  })
}

/** The options given, as the API's body: each field named as the API names it, its value as text, as a form sends it. */
function fieldsOf(options: FieldOptions): Record<string, string> {
  const fields: Record<string, string | undefined> = {
    name: options.name,
    description: options.description,
    organization: options.organization,
    user: options.user,
    client_type: options.clientType,
    authorization_grant_type: options.authorizationGrantType,
    redirect_uris: options.redirectUris,
    pkce_required: options.pkceRequired,
  }
  return Object.fromEntries(Object.entries(fields).filter((entry): entry is [string, string] => entry[1] !== undefined))
}

/** The API's refusal by field, said as the command's: each field named by its option (`--client-type`). */
function checkedFields<T>(check: () => T): T {
  const refused = (error: unknown): never => {
    if (!(error instanceof ValidationFailed) || !error.fields) throw error
    throw new UsageError(Object.entries(error.fields)
      .map(([field, problems]) => `${field === 'non_field_errors' ? '' : `--${field.replaceAll('_', '-')}: `}${problems.join(' ')}`).join(' '))
  }
  try {
    const result = check()
    return result instanceof Promise ? result.catch(refused) as T : result
  } catch (error) {
    return refused(error)
  }
}

async function foundApplication(app: App, id: number): Promise<Application> {
  const application = id <= MAX_APPLICATION_ID ? await app.store.applications.findById(id) : undefined
  if (!application) throw new UsageError(`no such application: ${id}`)
  return application
}
