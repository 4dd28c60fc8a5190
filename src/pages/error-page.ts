import { STATUS_CODES } from '../http/node-http.ts'
import { escapeHtml, styledPage } from './html.ts'

/**
 * The small page a browser navigating gets for an error (src/errors.ts decides when): what kind of error in words,
 * the message, the code, the request's id (the `reqId` of the gateway's log line, for a user to quote), and a way on
 * from a dead end. `path` is the path the page answers: the way on is written
 * relative to it, so that it leads to the start page also where a proxy publishes the gateway under a path of its
 * own (docs/edge.md).
 */
export function errorPage(error: { status: number; message: string; code: string }, path: string, requestId?: string): string {
  const words = STATUS_CODES[error.status] ?? 'Error'
  // The pages' stylesheet wraps a long address in the message within a phone's width.
  return styledPage(`${error.status} ${words}`, `<h1>${escapeHtml(words)}</h1><p>${escapeHtml(error.message)}</p>` +
    `<p><code>${escapeHtml(error.code)}</code></p>${requestId === undefined ? '' : `<p>Request id: <code>${escapeHtml(requestId)}</code></p>`}<p><a href="${escapeHtml(startPageFrom(path))}">Go to the start page</a></p>`)
}

/** The gateway's root relative to `path`: `./` from `/x`, `../../` from `/api/gateway/x`. */
function startPageFrom(path: string): string {
  const depth = path.split('/').length - 2
  return depth > 0 ? '../'.repeat(depth) : './'
}
