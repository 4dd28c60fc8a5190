/**
 * Python's `datetime.fromisoformat` (3.11 and later, as the platform runs it), which Django's `parse_datetime`
 * tries before its own pattern: the ISO 8601 forms besides Django's, such as the compact `20200101T000000`, the
 * hour alone (`2020-01-01T12`), week dates (`2020-W01-3`) and offsets to the second (`+01:00:30`). It reads the
 * string the way CPython's C implementation does, quirks included (a fraction may follow the hour or minute and
 * means microseconds, the date and time separator may be any one character), so that a filter value means here
 * what it means to the platform. The instant in milliseconds since the epoch, or undefined where Python raises.
 */
export function fromIsoFormat(text: string): number | undefined {
  const split = dateLength(text)
  if (split === undefined) return undefined
  const date = readDate(text.slice(0, split))
  if (date === undefined) return undefined
  // Python's separator is any one character, however many UTF-16 units it takes.
  const rest = [...text.slice(split)].slice(1).join('')
  const time = split === text.length ? { hour: 0, minute: 0, second: 0, microsecond: 0, offsetMs: 0 } : readTime(rest)
  if (time === undefined) return undefined
  const { hour, minute, second, microsecond, offsetMs } = time
  if (hour > 23 || minute > 59 || second > 59 || Math.abs(offsetMs) >= 86_400_000) return undefined
  const instant = new Date(0)
  instant.setUTCFullYear(date.year, date.month - 1, date.day)
  if (instant.getUTCFullYear() !== date.year || instant.getUTCMonth() !== date.month - 1 || instant.getUTCDate() !== date.day) return undefined
  return Math.floor(instant.setUTCHours(hour, minute, second, Math.floor(microsecond / 1000)) - offsetMs)
}

const isDigit = (char: string | undefined): boolean => char !== undefined && char >= '0' && char <= '9'

/** Where the date ends (CPython's `_find_isoformat_datetime_separator`): told apart by the characters at 4 and 5. */
function dateLength(text: string): number | undefined {
  if (text.length < 7) return undefined
  if (text.length === 7) return 7
  if (text[4] === '-') {
    if (text[5] !== 'W') return 10
    if (text.length > 8 && text[8] === '-') {
      if (text.length === 9) return undefined
      return text.length > 10 && isDigit(text[10]) ? 8 : 10
    }
    return 8
  }
  if (text[4] !== 'W') return 8
  let end = 7
  while (end < text.length && isDigit(text[end])) end++
  if (end < 9) return end
  return end % 2 === 0 ? 7 : 8
}

/** `count` digits at `at`, or undefined. */
function digits(text: string, at: number, count: number): number | undefined {
  const part = text.slice(at, at + count)
  return part.length === count && /^[0-9]*$/.test(part) ? Number(part) : undefined
}

interface CalendarDate { year: number; month: number; day: number }

/** YYYY-MM-DD, YYYYMMDD, YYYY-Www[-D] or YYYYWww[D] (CPython's `parse_isoformat_date`). */
function readDate(text: string): CalendarDate | undefined {
  const year = digits(text, 0, 4)
  if (year === undefined || year < 1) return undefined
  const separated = text[4] === '-'
  let at = separated ? 5 : 4
  if (text[at] === 'W') {
    const week = digits(text, at + 1, 2)
    if (week === undefined) return undefined
    at += 3
    let weekday = 1
    if (at < text.length) {
      if (separated && text[at++] !== '-') return undefined
      const read = digits(text, at, 1)
      if (read === undefined) return undefined
      weekday = read
    }
    return fromWeekDate(year, week, weekday)
  }
  const month = digits(text, at, 2)
  if (month === undefined) return undefined
  at += 2
  if (separated && text[at++] !== '-') return undefined
  const day = digits(text, at, 2)
  return day === undefined ? undefined : { year, month, day }
}

/** The ISO week date's calendar day: week 1 holds January 4th; a year has 53 weeks when its last week does. */
function fromWeekDate(year: number, week: number, weekday: number): CalendarDate | undefined {
  if (weekday < 1 || weekday > 7 || week < 1 || week > 53) return undefined
  if (week === 53 && !hasWeek53(year)) return undefined
  const january4 = new Date(0)
  january4.setUTCFullYear(year, 0, 4)
  const mondayOfWeek1 = january4.getTime() - ((january4.getUTCDay() + 6) % 7) * 86_400_000
  const day = new Date(mondayOfWeek1 + ((week - 1) * 7 + weekday - 1) * 86_400_000)
  return { year: day.getUTCFullYear(), month: day.getUTCMonth() + 1, day: day.getUTCDate() }
}

/** A year starting on a Thursday, or a leap year starting on a Wednesday. */
function hasWeek53(year: number): boolean {
  const january1 = new Date(0)
  january1.setUTCFullYear(year, 0, 1)
  const weekday = january1.getUTCDay()
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  return weekday === 4 || (leap && weekday === 3)
}

interface ClockTime { hour: number; minute: number; second: number; microsecond: number }

/** The time, then `Z` or an offset of the same shape (CPython's `parse_isoformat_time`). */
function readTime(text: string): (ClockTime & { offsetMs: number }) | undefined {
  let zone = 0
  while (zone < text.length && !'Z+-'.includes(text[zone]!)) zone++
  const clock = readClock(text, zone)
  if (clock === undefined) return undefined
  if (zone === text.length) return clock.trailing ? undefined : { ...clock, offsetMs: 0 }
  if (text[zone] === 'Z') return zone === text.length - 1 ? { ...clock, offsetMs: 0 } : undefined
  const offset = readClock(text.slice(zone + 1), text.length - zone - 1)
  if (offset === undefined || offset.trailing) return undefined
  const sign = text[zone] === '-' ? -1 : 1
  const seconds = (offset.hour * 60 + offset.minute) * 60 + offset.second
  // CPython takes an offset of no whole seconds for UTC, dropping its fraction.
  return { ...clock, offsetMs: seconds === 0 ? 0 : sign * (seconds * 1000 + offset.microsecond / 1000) }
}

/**
 * HH[:MM[:SS]] or HHMMSS read up to `end`, then a fraction after `.` or `,` of which the first six digits count
 * (CPython's `parse_hh_mm_ss_ff`). `trailing`: something other than the end of the string follows, which only
 * matters where no offset does.
 */
function readClock(text: string, end: number): (ClockTime & { trailing: boolean }) | undefined {
  const parts = [0, 0, 0]
  let at = 0
  let separated = true
  let fraction = false
  for (let i = 0; i < 3; i++) {
    const value = digits(text, at, 2)
    if (value === undefined) return undefined
    parts[i] = value
    at += 2
    const char = text[at++]
    if (i === 0) separated = char === ':'
    if (at >= end) return { hour: parts[0]!, minute: parts[1]!, second: parts[2]!, microsecond: 0, trailing: char !== undefined }
    if (separated && char === ':') continue
    if (char === '.' || char === ',') {
      fraction = true
      break
    }
    if (separated) return undefined
    at--
  }
  // After the seconds, CPython reads on as a fraction whatever separator came, or none.
  const count = Math.min(end - at, 6)
  const first = digits(text, at, count)
  if (first === undefined || (count === 0 && !fraction)) return undefined
  at += count
  while (isDigit(text[at])) at++
  return { hour: parts[0]!, minute: parts[1]!, second: parts[2]!, microsecond: first * 10 ** (6 - count), trailing: at < text.length }
}
