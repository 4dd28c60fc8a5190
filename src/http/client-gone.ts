import type { ServerResponse } from 'node:http'

/**
 * A signal that aborts when the client goes away before its answer was sent (it closed the connection, or the server
 * cut it off): work done only for that answer, such as a password check still waiting for its turn, can be dropped.
 */
export function clientGone(response: ServerResponse): AbortSignal {
  const controller = new AbortController()
  if (response.destroyed) controller.abort()
  else response.once('close', () => {
    if (!response.writableFinished) controller.abort()
  })
  return controller.signal
}
