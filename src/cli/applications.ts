import { Command, Option } from 'commander'
import { cliActor } from '../audit/actor.ts'
import { recordSecretRotated } from '../audit/applications.ts'
import { MAX_SECRET_GRACE_SECONDS, newClientSecret, rotateApplicationSecret } from '../oidc/applications.ts'
import { addStorageOptions, positiveInteger, UsageError, withApp, writeFailure, writeSecret, type StorageOptions } from './common.ts'

interface RotateOptions extends StorageOptions {
  id: number
  graceSeconds: number
}

/** Application ids are the database's 32-bit integers, as the API's ids are (src/api/validation.ts). */
const MAX_APPLICATION_ID = 2 ** 31 - 1

/**
 * OAuth2 applications from the command line (the API's `applications/` manages them otherwise): for an operator who
 * must replace a secret that leaked without a superuser's credentials at hand.
 */
export function applicationsCommand(): Command {
  const applications = new Command('applications').description('manage OAuth2 applications')

  applications.addCommand(addStorageOptions(new Command('rotate-secret')
    .description('give a confidential application a new secret and print it (the only time it is shown)')
    .requiredOption('--id <id>', 'the application, by id (as applications/{id}/ names it)', positiveInteger('--id'))
    .addOption(new Option('--grace-seconds <seconds>', `how long the secret being replaced still works, at most ${MAX_SECRET_GRACE_SECONDS} (0: it stops at once)`)
      .argParser(graceSeconds).default(0)))
    .action(async (options: RotateOptions) => {
      await withApp(options, async (app) => {
        const current = options.id <= MAX_APPLICATION_ID ? await app.store.applications.findById(options.id) : undefined
        if (!current) throw new UsageError(`no such application: ${options.id}`)
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
        process.stderr.write(`rotated the secret of application ${current.id} (${current.name}); ${previous}\n`)
      })
    }))

  return applications
}

function graceSeconds(value: string): number {
  if (!/^[0-9]{1,12}$/.test(value) || Number(value) > MAX_SECRET_GRACE_SECONDS) {
    throw new UsageError(`--grace-seconds must be a whole number from 0 to ${MAX_SECRET_GRACE_SECONDS}, got "${value}"`)
  }
  return Number(value)
}
