import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { clientKey } from '../directory/lockout.ts'
import { transferCodingRefusal } from '../http/body-codings.ts'
import { closeLingeringAfter } from '../http/lingering-close.ts'
import { PackedChunks } from '../http/packed-chunks.ts'
import { Shares } from './shares.ts'

/**
 * Request bodies read before their request takes one of the service's upstream connections, as nginx does by default
 * (`proxy_request_buffering`): a client that sends its body slowly then holds only its own connection, which
 * `server.timeouts.request_seconds` ends, never one of the service's. A body up to the service's
 * `pool.body_buffer_kb` is read whole and forwarded in one piece; of a larger one, that much is read first, and the
 * rest is streamed as it comes, so holding an upstream connection costs a client at least that many bytes sent.
 * All bodies held at once share one budget (`server.body_buffers_mb`): a body that would take it past that is
 * streamed from where it stands, as every body was before.
 */

/** What is forwarded as a request's body: nothing, the whole of it, or what has been read followed by the rest. */
export type ForwardedBody = null | Buffer | Readable

/**
 * The bytes of request bodies held in memory at once: for all services together, or for the gateway's own API and
 * realms. With `perClient`, no one client address (an IPv6 one by its /64, as the connection caps count) holds more
 * than that much of it, so that clients of a few addresses cannot take it all from everyone else.
 */
export class BodyBudget {
  readonly #shares: Shares

  constructor(bytes: number, options: { perClient?: number } = {}) {
    this.#shares = new Shares(bytes, options.perClient)
  }

  /** Takes `size` bytes of the budget (of `client`'s share too); false, taking nothing, when they are not there. */
  take(size: number, client?: string): boolean {
    return this.#shares.take(size, client === undefined ? undefined : clientKey(client))
  }

  give(size: number, client?: string): void {
    this.#shares.give(size, client === undefined ? undefined : clientKey(client))
  }
}

export class RequestBuffer {
  readonly #limit: number
  readonly #budget: BodyBudget

  /** `limitBytes` 0: every body is streamed as it comes. */
  constructor(limitBytes: number, budget: BodyBudget) {
    this.#limit = limitBytes
    this.#budget = budget
  }

  /**
   * The body of `raw` to forward, once the whole of it or the first `limitBytes` of it has arrived; undefined when the
   * client went away (or its request timed out) first, and there is nothing to answer. The bytes held count
   * against the budget until `response` closes. `atLeastBytes`: read this much before streaming, when the limit is
   * lower (a body the access rules must read, src/access/method-override.ts); `scan`: what each chunk of a body
   * streamed on goes through then (`followedByRest`).
   */
  read(raw: IncomingMessage, response: ServerResponse, atLeastBytes = 0, scan?: (chunk: Buffer) => void): Promise<ForwardedBody | undefined> | ForwardedBody {
    if (!hasRequestBody(raw)) return null
    const refusal = transferCodingRefusal(raw.headers)
    if (refusal) throw refusal
    const coding = raw.headers['transfer-encoding']
    const limit = Math.max(this.#limit, atLeastBytes)
    if (limit === 0) return followedByRest([], raw)
    const budget = this.#budget
    // A body known to fit is waited for whole, and so is one of no declared length until it passes the limit; of any
    // other, the first `limit` bytes are.
    const declared = coding === undefined ? Number(raw.headers['content-length']) : Number.NaN
    const streamFrom = Number.isNaN(declared) || declared <= limit ? limit + 1 : limit
    return new Promise((resolve) => {
      // Held at about their size, however small the chunks a client sends (src/http/packed-chunks.ts).
      const packed = new PackedChunks()
      const chunks: Buffer[] = []
      let size = 0
      const settle = (body: ForwardedBody | undefined): void => {
        raw.off('data', onData).off('end', onEnd).off('close', onClose)
        resolve(body)
      }
      const onData = (chunk: Buffer): void => {
        if (!budget.take(chunk.length)) {
          // Nothing more may be held: what has arrived goes first, the rest as it comes.
          raw.pause()
          settle(followedByRest([...chunks, ...packed.flush(), chunk], raw, scan))
          return
        }
        for (const piece of packed.add(chunk)) chunks.push(piece)
        size += chunk.length
        if (size >= streamFrom) {
          raw.pause()
          settle(followedByRest([...chunks, ...packed.flush()], raw, scan))
        }
      }
      const onEnd = (): void => settle(Buffer.concat([...chunks, ...packed.flush()], size))
      // Before its end: the client went away, or the server cut the request off (request_seconds).
      const onClose = (): void => settle(undefined)
      response.on('close', () => budget.give(size))
      raw.on('data', onData).on('end', onEnd).on('close', onClose)
    })
  }
}

/**
 * A request answered before its body arrived whole (refused part-way, its bytes naming a method the rules refuse; its
 * upstream failed): what more comes is dropped, and the connection closes after the answer, lingering a few seconds
 * for the client's close (src/http/lingering-close.ts). Node drops the body of a request nobody read, but not of one
 * read in part: the client, still sending, was held with its connection until the keep-alive timeout or
 * `server.timeouts.request_seconds`.
 */
export function dropRestOfBody(raw: IncomingMessage, response: ServerResponse): void {
  if (raw.complete) return
  raw.resume()
  if (!response.headersSent) closeLingeringAfter(response)
}

/**
 * Whether a request has a body to forward (or to drain), whatever its method: a GET's or a HEAD's too, which search
 * APIs (Elasticsearch, OpenSearch) read their queries from and nginx and Envoy pass on. They were dropped, and the
 * service answered a query it never received.
 */
export function hasRequestBody(raw: IncomingMessage): boolean {
  return raw.headers['transfer-encoding'] !== undefined || (raw.headers['content-length'] ?? '0') !== '0'
}

/**
 * What has been read, then the rest as it comes. With `scan`, every chunk goes through it first, and the last is held
 * back until the request has ended: a scan that throws fails the body, and so the upstream request, before the
 * service has all of it. The client's request is then left as it stands, not destroyed, so that it can be answered.
 */
function followedByRest(read: readonly Buffer[], rest: IncomingMessage, scan?: (chunk: Buffer) => void): Readable {
  const chunks = chained(read, rest)
  if (!scan) return Readable.from(chunks, { objectMode: false })
  return Readable.from((async function* () {
    let held: Buffer | undefined
    for await (const chunk of chunks) {
      scan(chunk)
      if (held) yield held
      held = chunk
    }
    if (held) yield held
  })(), { objectMode: false })
}

/**
 * The upstream client destroys a body it stops sending (its service answered before the body's end, or failed): the
 * client's request is then not destroyed with it, which reset the connection under the answer being written (clients
 * still sending lost it to EPIPE), but left to be answered, and what more it sends is dropped, as the connection
 * closes lingering (src/http/lingering-close.ts).
 */
async function* chained(read: readonly Buffer[], rest: IncomingMessage): AsyncGenerator<Buffer> {
  try {
    yield* read
    yield* rest.iterator({ destroyOnReturn: false })
  } finally {
    // Once the iterator has let go of the request (resume does nothing while it reads).
    if (!rest.complete) rest.resume()
  }
}
