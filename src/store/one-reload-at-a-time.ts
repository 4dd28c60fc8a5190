/**
 * A reload of an in-memory view of the store that runs one at a time: one asked for while another runs is answered
 * by one more run after it (however many were asked meanwhile), so the last run always starts after the last ask.
 * Two reloads at once could end in either order, and one that read before a change and ended after the change's own
 * reload would put the view from before it back.
 */
export function oneReloadAtATime(read: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined
  let again = false
  return () => {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        await read()
      } while (again)
    })().finally(() => {
      running = undefined
    })
    return running
  }
}
