import { stdSerializers } from 'pino'

type SerializedError = ReturnType<typeof stdSerializers.err>

/** The most of any one text of a logged error: a stack, a message naming what a certificate holds. */
export const MAX_LOGGED_TEXT = 2000

/** The fields of an error that carry what the other end sent, never logged. */
const PEER_BYTES = ['data', 'rawPacket', 'body', 'headers', 'chunk'] as const

/** A text cut to MAX_LOGGED_TEXT, saying how much was left out. */
export function boundedText(text: string): string {
  return text.length > MAX_LOGGED_TEXT ? `${text.slice(0, MAX_LOGGED_TEXT)}… (${text.length - MAX_LOGGED_TEXT} more characters)` : text
}

/**
 * pino's error serializer, bounded. A TLS peer's refused certificate comes with Node's error whole: its bytes, its
 * key, every certificate above it, and its names in the message as well ("is not in the cert's altnames: ..."), all of
 * them the peer's to size. A service or provider answering with a certificate for another name (the very case of a
 * connection taken over) made every request to it write some 300 KB to the log. The certificate is logged as what
 * tells it apart (subject, issuer, validity, fingerprint), and every text at most MAX_LOGGED_TEXT long; what the peer
 * sent is left out.
 */
export function boundedError(error: Error): SerializedError {
  const serialized = stdSerializers.err(error)
  if (serialized === null || typeof serialized !== 'object') return serialized
  const fields = serialized as unknown as Record<string, unknown>
  // The peer's own bytes, which may be anyone's secrets: undici's parser error keeps the rest of the answer it could
  // not read (`data`: a Set-Cookie, a body of tokens), Node's the request it could not (`rawPacket`), and a status
  // error the answer's headers and body.
  for (const key of PEER_BYTES) delete fields[key]
  for (const key of Object.keys(fields)) {
    const value = fields[key]
    if (typeof value === 'string') fields[key] = boundedText(value)
  }
  if (fields.cert !== undefined) fields.cert = certificateSummary(fields.cert)
  return serialized
}

function certificateSummary(cert: unknown): Record<string, unknown> | undefined {
  if (cert === null || typeof cert !== 'object') return undefined
  const { subject, issuer, valid_from: validFrom, valid_to: validTo, fingerprint256 } = cert as Record<string, unknown>
  const text = (value: unknown) => value === undefined ? undefined : boundedText(typeof value === 'string' ? value : JSON.stringify(value))
  return { subject: text(subject), issuer: text(issuer), valid_from: text(validFrom), valid_to: text(validTo), fingerprint256: text(fingerprint256) }
}
