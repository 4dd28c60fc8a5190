import type { ServerResponse } from 'node:http'
import type { ErrorCode } from '../errors.ts'

/**
 * How a request's answer ended, for its log line and metrics: a request is logged when its response closes, whether
 * the answer was sent whole, refused by Node's parser mid-body, cut short, or never sent because the client left.
 */
export interface AnswerOutcome {
  readonly status: number
  /** The code of the refusal the parser's handler sent in place of the gateway's own answer (src/errors.ts). */
  readonly code?: ErrorCode
  /** The answer did not reach the client whole: cut after it began, or never begun because the client went away. */
  readonly incomplete?: true
}

/**
 * nginx's status for a request whose client closed the connection before it was answered, kept here so that log
 * searches made for nginx find these lines too.
 */
export const CLIENT_CLOSED_REQUEST = 499

/** The refusal sent by the parser's handler, kept on the response it replaced; read by `outcomeOf`. */
const REPLACED_BY = Symbol('answer replaced by the parser\'s refusal')

type Replaced = ServerResponse & { [REPLACED_BY]?: { status: number; code: ErrorCode } }

/** Records that the parser's handler answered this response's request itself (its body was malformed or too slow). */
export function markReplacedAnswer(response: ServerResponse, refusal: { status: number; code: ErrorCode }): void {
  (response as Replaced)[REPLACED_BY] = refusal
}

/** How the response, now closed, ended. */
export function outcomeOf(response: ServerResponse): AnswerOutcome {
  if (response.writableFinished) return { status: response.statusCode }
  const replaced = (response as Replaced)[REPLACED_BY]
  if (replaced) return { status: replaced.status, code: replaced.code }
  return { status: response.headersSent ? response.statusCode : CLIENT_CLOSED_REQUEST, incomplete: true }
}
