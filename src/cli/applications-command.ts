import { Command, Option } from 'commander'
import { MAX_SECRET_GRACE_SECONDS } from '../limits.ts'
import { addDemoOption, addStorageOptions, lazyAction, positiveInteger, UsageError } from './common.ts'

/** What the applications commands do (applications.ts), loaded when one of them runs. */
const actions = () => import('./applications.ts')

/**
 * OAuth2 applications from the command line, as the API's `applications/` manages them: for an operator without a
 * superuser's credentials at hand. The options are the API's fields, checked by the API's schemas and by the same
 * checks after them (src/api/applications.ts), written with the same effects (a deleted application's tokens end in
 * every process) and recorded in the activity stream as the command line's.
 */
export function applicationsCommand(): Command {
  const applications = new Command('applications').description('manage OAuth2 applications')

  applications.addCommand(addStorageOptions(new Command('list').description('list applications (never their secrets)')
    .option('--json', 'a JSON array, each application as the API shows it'))
    .action(lazyAction(actions, 'listApplications')))

  applications.addCommand(addStorageOptions(byId(new Command('show').description('print an application as the API shows it (JSON; its secret masked)')))
    .action(lazyAction(actions, 'showApplication')))

  applications.addCommand(addStorageOptions(addDemoOption(fieldOptions(new Command('create')
    .description('create an application of the realm serving them, and print its client id and, when confidential, its secret (the only time it is shown)'))
    .addOption(new Option('--client-type <type>', 'confidential (it has a secret) or public; required'))
    .option('--json', 'print the application as the API answers its create (with client_secret)')))
    .action(lazyAction(actions, 'makeApplication')))

  applications.addCommand(addStorageOptions(fieldOptions(byId(new Command('update')
    .description('change the fields given, as the API\'s PATCH does (the client type stays; a new grant type ends the tokens of the old one)'))))
    .action(lazyAction(actions, 'changeApplication')))

  applications.addCommand(addStorageOptions(byId(new Command('delete').description('delete an application; its tokens end at once, in every process')))
    .action(lazyAction(actions, 'deleteApplication')))

  applications.addCommand(addStorageOptions(byId(new Command('rotate-secret')
    .description('give a confidential application a new secret and print it (the only time it is shown)'))
    .addOption(new Option('--grace-seconds <seconds>', `how long the secret being replaced still works, at most ${MAX_SECRET_GRACE_SECONDS} (0: it stops at once)`)
      .argParser(graceSeconds).default(0)))
    .action(lazyAction(actions, 'rotateSecret')))

  return applications
}

function byId(command: Command): Command {
  return command.requiredOption('--id <id>', 'the application, by id (as applications/{id}/ names it)', positiveInteger('--id'))
}

/** The options for the API's writable fields that create and update share; `--client-type` is create's alone. */
function fieldOptions(command: Command): Command {
  return command
    .option('--name <name>', 'unique in its organization (at most 512 characters); required to create')
    .option('--description <text>', 'what it is for')
    .option('--organization <id>', 'the organization it belongs to, by id')
    .option('--user <id>', 'the user who owns it, by id (default on create: none)')
    .option('--authorization-grant-type <type>', 'password or authorization-code; required to create')
    .option('--redirect-uris <uris>', 'space-separated absolute http(s) URLs; required with authorization-code')
    .option('--pkce-required <boolean>', 'whether its authorization requests must carry PKCE (default on create: true)')
}

function graceSeconds(value: string): number {
  if (!/^[0-9]{1,12}$/.test(value) || Number(value) > MAX_SECRET_GRACE_SECONDS) {
    throw new UsageError(`--grace-seconds must be a whole number from 0 to ${MAX_SECRET_GRACE_SECONDS}, got "${value}"`)
  }
  return Number(value)
}
