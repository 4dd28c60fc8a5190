import { Command, CommanderError } from 'commander'
import { ConfigError } from '../config/config-error.ts'
import { DatabaseUnavailable, GatehouseError, UsernameTaken, ValidationFailed } from '../errors.ts'
import { ListenFailed } from '../listener/listen-errors.ts'
import { DatabaseUnusable, DataDirUnusable } from '../store/errors.ts'
import { printable } from '../logging/printable.ts'
import { secretOwnsStandardOutput, UsageError } from './common.ts'
import { gatehouseProgram } from './program.ts'
import { isWorker } from './workers.ts'

const program = gatehouseProgram()

// Every (sub)command reports bad arguments in one line, its suggestion included, and exits 2 instead of printing
// usage. A command group named without a subcommand (`gatehouse users`) is answered with its help: the list of them.
function quietErrors(command: Command): void {
  command.exitOverride().configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('Usage:') ? text : oneLine(text)) })
  command.commands.forEach(quietErrors)
}

function oneLine(text: string): string {
  const line = text.trim().split('\n').map((part) => part.trim()).join(' ').replace(/^error: /, '').replace('(Did you mean', '(did you mean')
  return `gatehouse: ${printable(line)}\n`
}
quietErrors(program)

// A reader that stops early (`gatehouse tokens list | head`) closes the pipe: the rest of the output is not wanted,
// which is no failure of the command. Anything else that breaks standard output is said in one line. A secret shown
// only once that could not be written is the command's own failure: it undoes what made the secret and says so.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (secretOwnsStandardOutput()) return
  if (error.code !== 'EPIPE') process.stderr.write(`gatehouse: cannot write the output: ${error.message}\n`)
  process.exit(error.code === 'EPIPE' ? (process.exitCode ?? 0) : 1)
})

try {
  await program.parseAsync(process.argv)
} catch (error) {
  process.exitCode = exitCodeFor(error)
  // A worker of `serve --workers` that failed to start would be kept alive by its channel to the primary, which
  // waits for it to exit (and closing the channel from this side exits with status 0).
  if (isWorker()) process.exit()
}

/**
 * Writes why the command failed. What it quotes may come from elsewhere (a username in a file being imported, a name
 * given as an argument): a control character in it is written as its escape, so that it cannot act on the terminal
 * (clear it, rewrite what came before); the line breaks between the problems of a configuration file stay.
 */
function report(message: string): void {
  process.stderr.write(`gatehouse: ${message.split('\n').map(printable).join('\n')}\n`)
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2
  if (error instanceof UsageError) {
    report(error.message)
    return 2
  }
  if (error instanceof ConfigError || error instanceof DataDirUnusable || (error instanceof ListenFailed && !error.inUse) || (error instanceof DatabaseUnusable && misnamedDatabase(error))) {
    report(error.message)
    return 2
  }
  if (error instanceof GatehouseError) {
    // A field whose message is the error's own (`username_taken`) would say it twice.
    const detailed = Object.entries(error.fields ?? {}).filter(([, v]) => v.join(' ') !== error.message)
    const fields = detailed.length ? ' ' + detailed.map(([k, v]) => `${k}: ${v.join(' ')}`).join('; ') : ''
    report(`${error.message}${fields}${databaseReason(error)}`)
    // A value the command was given that Gatehouse refuses (a username, a password) is a usage mistake too; an
    // account that exists already has a status of its own, which a script creating it again may take for done.
    if (error instanceof UsernameTaken) return 3
    return error instanceof ValidationFailed ? 2 : 1
  }
  report((error as Error)?.message ?? String(error))
  return 1
}

/**
 * PostgreSQL's answers that waiting will not change, mistakes in the database URL: a database of that name the server
 * does not have (3D000), a login it refuses (28000, 28P01). A server that does not answer is another matter (exit 1).
 * (A function, not a constant: the command runs, and may fail, before this module's later constants are made.)
 */
function misnamedDatabase(error: Error): boolean {
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
    if (['3D000', '28000', '28P01'].includes((cause as { code?: unknown }).code as string)) return true
  }
  return false
}

/**
 * What the database said, for an operator at a terminal: "try again shortly" is all a client of the API is told, but
 * a database that refuses every write (a standby, a full disk) or a password it does not take will not change by
 * waiting. Its words carry no secret: the server's and the driver's messages name no password.
 */
function databaseReason(error: GatehouseError): string {
  if (!(error instanceof DatabaseUnavailable) || error.cause === undefined) return ''
  const reason = (error.cause as Error)?.message ?? String(error.cause)
  return reason ? ` (${reason.split('\n', 1)[0]})` : ''
}
