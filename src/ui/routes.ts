import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import type { App } from '../app.ts'
import { Forbidden, MethodNotAllowed, NotFound } from '../errors.ts'
import { answerRefusal } from '../gateway/authorize.ts'
import type { Place } from '../gateway/places.ts'
import { splitTarget } from '../http/request-target.ts'
import { isPageAddress } from './static/js/addresses.js'

/** Where the web interface's pages are served. */
export const UI_PATH = '/ui/'
const ASSETS_PATH = '/ui/assets/'
/** What the pages and their files answer. */
const PAGE_METHODS = ['GET', 'HEAD', 'OPTIONS']
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url))

/**
 * The pages run only their own scripts and styles, talk only to this origin, and are never framed.
 * No inline script or style is allowed, so injected markup cannot run.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ')

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

interface Asset {
  readonly body: Buffer
  /** Compressed on the first request that takes gzip, not every file at every start. */
  gzipped(): Buffer
  readonly contentType: string
  readonly etag: string
}

/**
 * The web interface: one HTML shell for every page under /ui/, plus its scripts and stylesheet. The pages do
 * everything through the public REST API with the session cookie, like any other client; the server's part
 * is to serve files and to send people without a session to the login page.
 */
export async function registerUi(server: FastifyInstance, app: App): Promise<void> {
  // Read and hashed at the first page or file asked for, not at every start of a gateway that may never serve one.
  let files: UiFiles | undefined
  const uiFiles = () => (files ??= loadUiFiles(STATIC_DIR, app.publishedPath))

  await server.register(async (ui) => {
    ui.addHook('onRequest', async (request) => {
      request.gatehouse.place = app.places.ui
    })
    ui.addHook('onSend', async (_request, reply) => {
      // An error page keeps its own policy (src/pages/html.ts), which allows its inline stylesheet and no script.
      if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', CONTENT_SECURITY_POLICY)
      reply.header('x-frame-options', 'DENY')
      reply.header('x-content-type-options', 'nosniff')
      reply.header('referrer-policy', 'same-origin')
    })

    const home = app.publishedPath + UI_PATH
    ui.get('/', async (_request, reply) => reply.redirect(home, 302))
    ui.get('/ui', async (_request, reply) => reply.redirect(home, 302))

    ui.get(`${ASSETS_PATH}*`, async (request, reply) => {
      const name = splitTarget(request.url).path.slice(ASSETS_PATH.length)
      const asset = uiFiles().assets.get(name)
      if (!asset) throw new NotFound('No such file.')
      return sendAsset(request, reply, asset)
    })

    // Every other path is a page of the single-page interface; the browser-side router picks what to show.
    const page = (place: Place) => async (request: FastifyRequest, reply: FastifyReply) => {
      const decision = await app.authorize(request, place)
      if (!decision.granted) {
        // A page a signed-in person may not enter says so itself; the status tells programs and tests the same.
        if (decision.loginUrl || !(decision.refusal instanceof Forbidden)) return answerRefusal(reply, decision)
        reply.code(decision.refusal.status)
      } else if (!isPageAddress(splitTarget(request.url).path)) {
        // An address that is no page: the shell says so to the person, the status to programs.
        reply.code(404)
      }
      reply.header('cache-control', 'no-store')
      // The pages' changes echo the csrftoken cookie, which lasts as long as the browser: one that kept the session
      // cookie (it has a Max-Age) over a restart would otherwise be refused every change, Log out among them.
      app.csrf.ensureToken(request, reply)
      return sendAsset(request, reply, uiFiles().shell, false)
    }
    ui.get(UI_PATH, page(app.places.ui))
    ui.get(`${UI_PATH}*`, page(app.places.ui))
    ui.get(`${UI_PATH}admin/*`, page(app.places.uiAdmin))

    // The pages and their files take nothing: another method is told which ones they answer, not that nothing is there,
    // before any body is read (a form posted here, of any type, is not parsed).
    const otherMethod = async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.method === 'OPTIONS') return reply.code(204).header('allow', PAGE_METHODS.join(', ')).send()
      throw new MethodNotAllowed(request.method, PAGE_METHODS)
    }
    for (const url of ['/ui', UI_PATH, `${UI_PATH}*`]) {
      ui.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url, onRequest: otherMethod, handler: otherMethod })
    }
  })
}

/**
 * The shell's addresses (`"/ui/..."`, `(/api/...)`) as the browser reaches them when a proxy publishes the gateway
 * under a path (docs/edge.md). The scripts find the path from their own address, so only the shell is rewritten.
 */
function underPublishedPath(html: string, publishedPath: string): string {
  return html.replace(/(["(])\/(ui|api)\//g, `$1${publishedPath}/$2/`)
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, asset: Asset, cacheable = true): FastifyReply {
  reply.type(asset.contentType)
  reply.header('vary', 'accept-encoding')
  if (cacheable) {
    // Revalidated on every load: a cheap 304, and an upgrade never leaves a browser on stale scripts.
    reply.header('cache-control', 'no-cache')
    reply.header('etag', asset.etag)
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
  }
  if (acceptsGzip(request.headers['accept-encoding'])) {
    reply.header('content-encoding', 'gzip')
    return reply.send(asset.gzipped())
  }
  return reply.send(asset.body)
}

/**
 * Whether Accept-Encoding takes gzip (RFC 9110 §12.5.3): named (coding names are case-insensitive; `x-gzip` is its
 * old name) or as `*`, with a weight above 0; `gzip;q=0` refuses it whatever `*` says.
 */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false
  let any = false
  for (const entry of header.split(',')) {
    const [coding, ...parameters] = entry.split(';').map((part) => part.trim().toLowerCase())
    const weight = parameters.find((parameter) => parameter.startsWith('q='))
    const accepted = weight === undefined || Number(weight.slice(2)) > 0
    if (coding === 'gzip' || coding === 'x-gzip') return accepted
    if (coding === '*') any = accepted
  }
  return any
}

interface UiFiles {
  /** The scripts, styles and images, by their path under the assets' address. */
  readonly assets: ReadonlyMap<string, Asset>
  /** index.html, naming every script to preload, with its addresses under the published path. */
  readonly shell: Asset
}

function loadUiFiles(dir: string, publishedPath: string): UiFiles {
  const assets = loadAssets(dir)
  const template = assets.get('index.html')!
  assets.delete('index.html')
  // The browser fetches every module at once instead of discovering the imports one level at a time.
  const preloads = [...assets.keys()].filter((name) => name.endsWith('.js')).map((name) => `<link rel="modulepreload" href="${ASSETS_PATH}${name}">`)
  const html = template.body.toString('utf8').replace('<!-- modulepreload -->', preloads.join('\n'))
  return { assets, shell: asset(Buffer.from(underPublishedPath(html, publishedPath)), template.contentType) }
}

/** Reads every file once; requests are then served from memory by exact name. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = join(entry.parentPath, entry.name)
    const contentType = CONTENT_TYPES[extname(file)]
    if (!contentType) continue
    assets.set(relative(dir, file).split(sep).join('/'), asset(readFileSync(file), contentType))
  }
  return assets
}

function asset(body: Buffer, contentType: string): Asset {
  let gzipped: Buffer | undefined
  return { body, gzipped: () => gzipped ??= gzipSync(body), contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
}
