import { closeSync, openSync, readSync } from 'node:fs'

/**
 * A file's text, or undefined when it holds more than `limit` bytes: read only that far (its size as `stat` gives it
 * cannot be trusted: a device such as /dev/zero has none, a pipe such as `--config <(...)` none yet), so a wrong path
 * is refused at once rather than read into memory. Errors opening or reading it are thrown as Node gives them.
 */
export function readAtMost(file: string, limit: number): string | undefined {
  return readBytesAtMost(file, limit)?.toString('utf8')
}

/**
 * As `readAtMost`, the file's bytes as they are (for a reader that checks their encoding first); of a file opened
 * already (its descriptor), read from where it is and left open.
 */
export function readBytesAtMost(file: string | number, limit: number): Buffer | undefined {
  const fd = typeof file === 'number' ? file : openSync(file, 'r')
  try {
    const buffer = Buffer.allocUnsafe(limit + 1)
    let length = 0
    for (let read; length < buffer.length && (read = readSync(fd, buffer, length, buffer.length - length, null)) > 0;) length += read
    return length > limit ? undefined : buffer.subarray(0, length)
  } finally {
    if (fd !== file) closeSync(fd)
  }
}

/** Whether the bytes start with UTF-16's byte-order mark (Windows' "Unicode", PowerShell's default for a redirect). */
export function startsAsUtf16(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
}
