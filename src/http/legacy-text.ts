import { isUtf8 } from 'node:buffer'

const UTF8 = new TextDecoder('utf-8', { fatal: true })
/** A byte of 0x80 or above, raw or percent-encoded: the only way a form can carry text that is not UTF-8. */
const HIGH_BYTE = /[\x80-\xff]|%[89a-f][0-9a-f]/i

/**
 * UTF-8, or ISO-8859-1 when the bytes are not UTF-8, as Django REST framework reads credentials on the platform.
 * Never a lossy decoding: with each invalid byte read as U+FFFD, any such byte would stand for a password's U+FFFD.
 */
export function utf8OrLatin1(bytes: Buffer): string {
  return isUtf8(bytes) ? UTF8.decode(bytes) : bytes.toString('latin1')
}

/**
 * An `application/x-www-form-urlencoded` body whose every name and value is UTF-8: one that is not is read as
 * ISO-8859-1 (`utf8OrLatin1`) and written again in UTF-8. Whatever parses the form afterwards (oidc-provider,
 * URLSearchParams) would otherwise turn each such byte into U+FFFD. A body already in UTF-8 is returned as it is.
 */
export function formInUtf8(body: Buffer): Buffer {
  const text = body.toString('latin1')
  if (!HIGH_BYTE.test(text)) return body
  const pieces = text.split('&').map((pair) => pair.split(/=(.*)/s, 2).map(formBytes))
  if (pieces.every((pair) => pair.every(isUtf8))) return body
  const encoded = pieces.map((pair) => pair.map((bytes) => encodeURIComponent(utf8OrLatin1(bytes))).join('='))
  return Buffer.from(encoded.join('&'))
}

/** One name or value of a form, its text read byte for byte (ISO-8859-1): `+` is a space, `%XX` a byte, and a `%` not followed by two hex digits itself. */
export function formBytes(text: string): Buffer {
  const bytes = Buffer.alloc(text.length)
  let length = 0
  for (let i = 0; i < text.length; i++) {
    const hex = text[i] === '%' ? /^[0-9a-f]{2}$/i.exec(text.slice(i + 1, i + 3)) : null
    if (hex) {
      bytes[length++] = parseInt(hex[0], 16)
      i += 2
    } else {
      bytes[length++] = text[i] === '+' ? 0x20 : text.charCodeAt(i)
    }
  }
  return bytes.subarray(0, length)
}
