import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { onceOr } from './validation.ts'

const MAX_PAGE = 1_000_000
export const MAX_PAGE_SIZE = 200
export const DEFAULT_PAGE_SIZE = 50

const wholeNumber = (message: string) => z
  .string({ error: onceOr(message) })
  .regex(/^[0-9]{1,9}$/, message)
  .transform(Number)
  .pipe(z.number().min(1, message))

/**
 * `?page=&page_size=` of a list, with the platform paginator's default (50) and cap (200): a larger page size
 * is capped, not refused, as the platform's paginator does.
 */
export const pageQuery = z.object({
  // `?page=` empty is the first page, as Django REST framework's paginator reads it (`... or 1`).
  page: z.preprocess((value) => (value === '' ? undefined : value), wholeNumber(`Enter a page number from 1 to ${MAX_PAGE}.`).pipe(z.number().max(MAX_PAGE, `Enter a page number from 1 to ${MAX_PAGE}.`)).default(1)),
  page_size: pageSize().default(DEFAULT_PAGE_SIZE),
})

/** A page size of any number of digits: whatever its length, a number above the cap is capped (leading zeros aside). */
function pageSize() {
  const message = 'Enter a page size of at least 1.'
  return z.string({ error: onceOr(message) })
    .regex(/^[0-9]+$/, message)
    .transform((digits) => digits.replace(/^0+(?=[0-9])/, ''))
    .transform((digits) => digits.length > String(MAX_PAGE_SIZE).length ? MAX_PAGE_SIZE : Math.min(Number(digits), MAX_PAGE_SIZE))
    .pipe(z.number().min(1, message))
}

export interface Page {
  page: number
  pageSize: number
  offset: number
}

export function pageOf(query: z.output<typeof pageQuery>): Page {
  return { page: query.page, pageSize: query.page_size, offset: (query.page - 1) * query.page_size }
}

/**
 * The platform's list shape: `{count, next, previous, results}` with next/previous as relative URLs; the link
 * to the first page has no `page`, as the platform's paginator writes it.
 */
export function paged<T>(request: FastifyRequest, page: Page, count: number, results: T[]) {
  const link = (n: number) => {
    const url = new URL(request.url, 'http://gatehouse.invalid')
    if (n === 1) url.searchParams.delete('page')
    else url.searchParams.set('page', String(n))
    return url.pathname + url.search
  }
  return {
    count,
    next: page.offset + results.length < count ? link(page.page + 1) : null,
    previous: page.page > 1 ? link(page.page - 1) : null,
    results,
  }
}
