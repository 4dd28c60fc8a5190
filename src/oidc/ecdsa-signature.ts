/**
 * An ECDSA signature in JWS's form (RFC 7518 §3.4, IEEE P1363: r and s as unsigned big-endian integers of the
 * curve's size, one after the other) from the DER form node:crypto makes (SEC 1 / RFC 3279: a SEQUENCE of two
 * INTEGERs). node:crypto makes the JWS form itself when asked with `{ key, dsaEncoding: 'ieee-p1363' }`, but an
 * options object around the key makes it tell a KeyObject from a CryptoKey by throwing and catching two errors,
 * which cost as much as the P-256 signature itself (docs/performance.md, "Token grants"); signed with the KeyObject
 * alone, the DER form comes back at once, and this turns it over.
 */

const SEQUENCE = 0x30
const INTEGER = 0x02

/** `der`'s r and s, each `size` bytes (32 for P-256); throws on anything else than a DER sequence of two integers that fit. */
export function ieeeP1363FromDer(der: Uint8Array, size: number): Buffer {
  if (der.length < 2 || der[0] !== SEQUENCE) throw new Error('not a DER ECDSA signature: no SEQUENCE')
  // A sequence this short (at most 2 × (3 + 66) bytes for P-521) has its length in one byte, or in 0x81 and one more.
  let at = der[1] === 0x81 ? 3 : 2
  if (der.length !== at + der[at - 1]!) throw new Error('not a DER ECDSA signature: wrong length')
  const signature = Buffer.alloc(2 * size)
  for (let part = 0; part < 2; part++) {
    if (der[at] !== INTEGER || at + 2 > der.length) throw new Error('not a DER ECDSA signature: no INTEGER')
    const length = der[at + 1]!
    let start = at + 2
    const end = start + length
    if (length === 0 || end > der.length) throw new Error('not a DER ECDSA signature: INTEGER out of bounds')
    // DER puts a zero byte before an integer whose first bit is set, so that it reads as positive.
    while (end - start > size && der[start] === 0) start++
    if (end - start > size) throw new Error('not a DER ECDSA signature: INTEGER too large for the curve')
    signature.set(der.subarray(start, end), (part + 1) * size - (end - start))
    at = end
  }
  if (at !== der.length) throw new Error('not a DER ECDSA signature: bytes after the INTEGERs')
  return signature
}
