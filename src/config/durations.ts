/**
 * Durations in the configuration are seconds, fractions allowed (`connect_seconds: 0.5`), while the timers they set
 * take whole milliseconds: Node's server deadlines, undici's timeouts and AbortSignal.timeout refuse any other
 * number, and 1.005 s is 1004.9999999999999 ms in floating point. A positive duration never rounds down to 0, which
 * those timers read as none.
 */
export function millisecondsOf(seconds: number): number {
  return seconds > 0 ? Math.max(1, Math.round(seconds * 1000)) : 0
}

/**
 * For a library that takes seconds and multiplies them by 1000 itself (openid-client's `timeout`): the duration in
 * seconds whose thousandfold is whole, at most a few milliseconds longer than asked.
 */
export function secondsInWholeMilliseconds(seconds: number): number {
  for (let ms = millisecondsOf(seconds); ; ms++) if (Number.isInteger((ms / 1000) * 1000)) return ms / 1000
}
