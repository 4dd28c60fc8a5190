import { EventEmitter } from 'node:events'

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

/**
 * The log's output ended, its lines written, or `ms` gone by, before a stopping process exits. pino writes its
 * output asynchronously (sonic-boom), and at exit writes what is left synchronously, retrying a failed write for ever,
 * a broken pipe's too: once nothing read the output (a `| head`, a log shipper that died), a stopped `serve` never
 * exited, deaf to any signal but SIGKILL. Ended here, what is left is written asynchronously, and a broken pipe is
 * seen (pino then stops writing to it); the exit has nothing left to write. A destination of Gatehouse's own (the
 * terminal's readable lines) writes synchronously, and is left as it is.
 */
export function logEnded(log: object, ms = 1000): Promise<void> {
  const stream = pinoStream(log) as (EventEmitter & { flushSync?: unknown; end?: () => void }) | undefined
  if (!(stream instanceof EventEmitter) || !stream.flushSync || !stream.end) return Promise.resolve()
  const end = stream.end.bind(stream)
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    timer.unref()
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    stream.once('close', done).once('error', done)
    end()
  })
}

/**
 * The stream a pino logger writes to, found by its symbol's name: the copy of pino bundled with Fastify has symbols of
 * its own, which `pino.symbols` of another copy would not find (and loading one would slow every start).
 */
function pinoStream(log: object): unknown {
  for (let level: object | null = log; level; level = Object.getPrototypeOf(level)) {
    for (const symbol of Object.getOwnPropertySymbols(level)) if (symbol.description === 'pino.stream') return (level as Record<symbol, unknown>)[symbol]
  }
  return undefined
}
