import { escapeHtml } from './html.ts'

/** The small page a browser navigating gets for an error (src/errors.ts decides when): status, message and code. */
export function errorPage(error: { status: number; message: string; code: string }): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${error.status} · Gatehouse</title></head><body><main><h1>${error.status}</h1><p>${escapeHtml(error.message)}</p>` +
    `<p><code>${escapeHtml(error.code)}</code></p></main></body></html>`
}
