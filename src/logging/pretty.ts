import { prettyFactory, type MessageFormatFunc } from 'pino-pretty'
import type { DestinationStream } from 'pino'

/**
 * Log lines a person can read in a terminal. The log stays structured (the same pino objects, the same
 * redaction); only how a line is written changes. JSON lines remain the default wherever a program reads
 * the output (a pipe, a file, a container's log collector).
 */

export const logFormats = ['auto', 'pretty', 'json'] as const
export type LogFormatChoice = (typeof logFormats)[number]

/** `auto` means readable lines on a terminal and JSON anywhere else. */
export function resolveLogFormat(choice: LogFormatChoice, stdoutIsTerminal: boolean): 'pretty' | 'json' {
  return choice === 'auto' ? (stdoutIsTerminal ? 'pretty' : 'json') : choice
}

/** The fields of the one line every request logs (src/server.ts): shown as one sentence, not as a block of keys. */
const REQUEST_FIELDS = 'pid,hostname,reqId,method,path,status,ms,service,user,auth'

const requestLine: MessageFormatFunc = (log, _messageKey, _level, { colors }) => {
  const status = Number(log.status)
  const paint = status >= 500 ? colors.red : status >= 400 ? colors.yellow : colors.green
  const who = log.user === undefined ? 'anonymous' : `${String(log.user)} (${String(log.auth)})`
  const service = log.service === undefined ? '' : ` → ${String(log.service)}`
  return `${String(log.method)} ${String(log.path)} ${paint(String(status))} ${String(log.ms)} ms${service} · ${who}`
}

/** A pino destination that writes each line formatted for people to `output`. */
export function prettyLogStream(output: NodeJS.WritableStream, colorize: boolean): DestinationStream {
  const common = { colorize, translateTime: 'SYS:HH:MM:ss.l', levelFirst: false }
  const request = prettyFactory({ ...common, ignore: REQUEST_FIELDS, hideObject: true, messageFormat: requestLine })
  const other = prettyFactory({ ...common, ignore: 'pid,hostname' })
  return {
    write(line: string) {
      let log: { msg?: unknown; status?: unknown }
      try {
        log = JSON.parse(line)
      } catch {
        output.write(line)
        return
      }
      output.write(log.msg === 'request' && log.status !== undefined ? request(log) : other(log))
    },
  }
}
