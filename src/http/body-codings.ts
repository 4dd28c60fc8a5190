import type { IncomingHttpHeaders } from 'node:http'
import { BadRequest, UnsupportedMediaType } from '../errors.ts'

/**
 * Node decodes `chunked` only: a body also coded otherwise (`gzip, chunked`) would be read, or reach a service, still
 * coded, with nothing saying so (RFC 9112 §6.1 lets a server refuse a transfer coding it does not understand).
 */
export function transferCodingRefusal(headers: IncomingHttpHeaders): BadRequest | undefined {
  const coding = headers['transfer-encoding']
  return coding !== undefined && coding.trim().toLowerCase() !== 'chunked' ? new BadRequest('The only transfer coding understood is chunked.') : undefined
}

/**
 * A body Gatehouse reads itself decodes no content coding: a gzip body would be parsed as its compressed bytes (and
 * refused as not UTF-8), and one labelled with a coding it was never given would be taken as plain. Both are 415, with
 * `Accept-Encoding` naming what is taken (RFC 9110 §15.5.16, §12.5.3). A proxied body goes on to its service as sent.
 */
export function contentCodingRefusal(headers: IncomingHttpHeaders): UnsupportedMediaType | undefined {
  const coding = headers['content-encoding']?.trim().toLowerCase()
  if (coding === undefined || coding === '' || coding === 'identity') return undefined
  return new UnsupportedMediaType(`Unsupported content coding "${coding.slice(0, 40)}": send the request body without Content-Encoding.`, { headers: { 'accept-encoding': 'identity' } })
}
