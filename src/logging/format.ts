/**
 * Which log format `serve` writes. JSON lines remain the default wherever a program reads the output (a pipe,
 * a file, a container's log collector); a person at a terminal gets readable lines (src/logging/pretty.ts).
 */

export const logFormats = ['auto', 'pretty', 'json'] as const
export type LogFormatChoice = (typeof logFormats)[number]

/** pino's levels: a name it does not know would stop the start with its own words, after the database was opened. */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof logLevels)[number]

/** `auto` means readable lines on a terminal and JSON anywhere else. */
export function resolveLogFormat(choice: LogFormatChoice, stdoutIsTerminal: boolean): 'pretty' | 'json' {
  return choice === 'auto' ? (stdoutIsTerminal ? 'pretty' : 'json') : choice
}
