import { STATUS_CODES } from '../http/node-http.ts'
import { escapeHtml } from './html.ts'

/**
 * The small page a browser navigating gets for an error (src/errors.ts decides when): what kind of error in words,
 * the message, the code, and a way on from a dead end. `path` is the path the page answers: the way on is written
 * relative to it, so that it leads to the start page also where a proxy publishes the gateway under a path of its
 * own (docs/edge.md).
 */
export function errorPage(error: { status: number; message: string; code: string }, path: string): string {
  const words = escapeHtml(STATUS_CODES[error.status] ?? 'Error')
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${error.status} ${words} · Gatehouse</title></head><body><main><h1>${words}</h1><p>${escapeHtml(error.message)}</p>` +
    `<p><code>${escapeHtml(error.code)}</code></p><p><a href="${escapeHtml(startPageFrom(path))}">Go to the start page</a></p></main></body></html>`
}

/** The gateway's root relative to `path`: `./` from `/x`, `../../` from `/api/gateway/x`. */
function startPageFrom(path: string): string {
  const depth = path.split('/').length - 2
  return depth > 0 ? '../'.repeat(depth) : './'
}
