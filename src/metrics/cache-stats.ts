/**
 * Lookups a cache answered from memory and those it had to read, as two plain numbers: counting costs an
 * increment on the request path, and /metrics reads them when scraped (gatehouse_cache_lookups_total).
 */
export class CacheStats {
  hits = 0
  misses = 0
}
