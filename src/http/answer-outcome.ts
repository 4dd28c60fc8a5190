import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ErrorCode } from '../errors.ts'

/**
 * How a request's answer ended, for its log line and metrics: a request is logged when its response closes, whether
 * the answer was sent whole, refused by Node's parser mid-body, cut short, or never sent.
 */
export interface AnswerOutcome {
  readonly status: number
  /** The code of the refusal that replaced or cut the gateway's own answer (src/errors.ts). */
  readonly code?: ErrorCode
  /** How the answer fell short, when it did: for the request's log line. */
  readonly ending?: AnswerEnding
}

/** The fields a request's log line gets when its answer did not reach the client whole. */
export interface AnswerEnding {
  /** Cut after it began, or never begun. */
  readonly incomplete: true
  /**
   * The gateway closed the connection: a drain's end, a request's body refused while its answer was under way, a
   * request pipelined behind it that timed out, an upgrade still unanswered at shutdown.
   */
  readonly closedBy?: 'gateway'
}

/**
 * A request refused as it arrived, which no lane or route takes (src/listener/node-server.ts; a head Node's parser
 * could not read, `answerClientError` in src/errors.ts): it still gets its one log line and its count.
 */
export interface ArrivalRefusal {
  /** The id its answer carries in X-Request-Id. */
  readonly id: string
  /** None for a head the parser could not read: nothing of its bytes reaches the log. */
  readonly request: IncomingMessage | undefined
  readonly status: number
  readonly code: ErrorCode
  readonly elapsedMs: number
  readonly ending?: AnswerEnding | undefined
}

/** Where the gateway's listener logs and counts its refusals on arrival (src/server.ts). */
export type RefusedOnArrival = (refusal: ArrivalRefusal) => void

/**
 * nginx's statuses for a request never answered, kept so that log searches made for nginx find these lines too: its
 * client closed the connection first (499), or the server closed it without an answer (444).
 */
export const CLIENT_CLOSED_REQUEST = 499
export const CLOSED_WITHOUT_ANSWER = 444

/** The refusal sent by the parser's handler, kept on the response it replaced; read by `outcomeOf`. */
const REPLACED_BY = Symbol('answer replaced by the parser\'s refusal')
/** Why the gateway cut the connection under the response (undefined: no refusal of the request's). */
const CUT_BY_GATEWAY = Symbol('answer cut by the gateway')

type Marked = ServerResponse & {
  [REPLACED_BY]?: { status: number; code: ErrorCode }
  [CUT_BY_GATEWAY]?: { code: ErrorCode | undefined }
}

/** Servers cutting every connection they hold (a drain's end): every answer still under way is cut by the gateway. */
const cuttingAll = new WeakSet<object>()

/** Records that the parser's handler answered this response's request itself (its body was malformed or too slow). */
export function markReplacedAnswer(response: ServerResponse, refusal: { status: number; code: ErrorCode }): void {
  (response as Marked)[REPLACED_BY] = refusal
}

/** Records that the gateway is about to cut the connection under this response, for `code` if a refusal says why. */
export function markCutByGateway(response: ServerResponse, code?: ErrorCode): void {
  (response as Marked)[CUT_BY_GATEWAY] = { code }
}

/** Records that `server` is about to close every connection it holds, answers under way with them. */
export function markCuttingAll(server: object): void {
  cuttingAll.add(server)
}

/** How the response, now closed, ended. */
export function outcomeOf(response: ServerResponse): AnswerOutcome {
  if (response.writableFinished) return { status: response.statusCode }
  const marked = response as Marked
  const replaced = marked[REPLACED_BY]
  if (replaced) return { status: replaced.status, code: replaced.code }
  const cut = marked[CUT_BY_GATEWAY] ?? (cutWithAll(response) ? { code: undefined } : undefined)
  if (cut) {
    return { status: response.headersSent ? response.statusCode : CLOSED_WITHOUT_ANSWER, code: cut.code, ending: { incomplete: true, closedBy: 'gateway' } }
  }
  return { status: response.headersSent ? response.statusCode : CLIENT_CLOSED_REQUEST, ending: { incomplete: true } }
}

function cutWithAll(response: ServerResponse): boolean {
  // A connection a server accepted names that server.
  const server = (response.req?.socket as { server?: object } | null | undefined)?.server
  return server !== undefined && cuttingAll.has(server)
}
