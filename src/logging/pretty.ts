import { prettyFactory, type MessageFormatFunc } from 'pino-pretty'
import type { DestinationStream } from 'pino'
import { printableValues } from './printable.ts'

/**
 * Log lines a person can read in a terminal (src/logging/format.ts decides when). The log stays structured
 * (the same pino objects, the same redaction); only how a line is written changes.
 */

/**
 * The fields of the one line every request logs (src/server.ts): shown as one sentence, not as a block of keys. The
 * decision, its code and authenticator stay in the JSON lines, where programs read them; the status says it here.
 */
const REQUEST_FIELDS = 'pid,hostname,reqId,method,path,status,ms,service,place,decision,code,authenticator,user,auth,incomplete,closed_by'

const requestLine: MessageFormatFunc = (log, _messageKey, _level, { colors }) => {
  const status = Number(log.status)
  const paint = status >= 500 ? colors.red : status >= 400 ? colors.yellow : colors.green
  const who = log.user === undefined ? 'anonymous' : `${String(log.user)} (${String(log.auth)})`
  const service = log.service === undefined ? '' : ` → ${String(log.service)}`
  // An answer that did not reach the client whole says so, or it would read as one that did.
  const ending = log.incomplete ? (log.closed_by === 'gateway' ? ' (cut by the gateway)' : ' (incomplete)') : ''
  // A head refused unread has no method or path in its line (src/logging/request-line.ts `arrivalLine`): why, instead.
  const request = log.method === undefined ? `(head not read: ${String(log.code)})` : `${String(log.method)} ${String(log.path)}`
  return `${request} ${paint(String(status))}${ending} ${String(log.ms)} ms${service} · ${who}`
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
        // A value that would act on the terminal (an escape sequence, a bidirectional override) is shown escaped.
        log = printableValues(JSON.parse(line))
      } catch {
        output.write(line)
        return
      }
      output.write(log.msg === 'request' && log.status !== undefined ? request(log) : other(log))
    },
  }
}
