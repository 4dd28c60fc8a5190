import { setImmediate } from 'node:timers/promises'

/**
 * `run`, one at a time, shared by the calls that come before it begins. A run begins once the requests read with
 * the first call have all called (the event loop's next turn) and the previous run has ended. A burst of scrapes,
 * whose requests are read together while a format holds the event loop (tens of thousands of lines at worst), is
 * then formatted once, not once per scrape; and every call still gets a run that began after it: a scrape right
 * after a request counts that request.
 */
export function sharedRuns<T>(run: () => Promise<T>): () => Promise<T> {
  let next: Promise<T> | undefined
  let previous: Promise<unknown> = Promise.resolve()
  return () => {
    next ??= previous.then(ignore, ignore).then(() => setImmediate()).then(() => {
      next = undefined
      const current = run()
      previous = current
      return current
    })
    return next
  }
}

function ignore(): void {}
