import { STATUS_CODES } from '../http/node-http.ts'
import { escapeHtml } from './html.ts'

/**
 * The small page a browser navigating gets for an error (src/errors.ts decides when): what kind of error in words,
 * the message, the code, and a way on from a dead end.
 */
export function errorPage(error: { status: number; message: string; code: string }): string {
  const words = escapeHtml(STATUS_CODES[error.status] ?? 'Error')
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${error.status} ${words} · Gatehouse</title></head><body><main><h1>${words}</h1><p>${escapeHtml(error.message)}</p>` +
    `<p><code>${escapeHtml(error.code)}</code></p><p><a href="/">Go to the start page</a></p></main></body></html>`
}
