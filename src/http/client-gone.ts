import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

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

/** What `connectionGone` reads of a request's connection. */
export type WatchedConnection = Pick<Socket, 'destroyed' | 'once' | 'off'>

/**
 * For work that has the request but not its response at hand (an authenticator): a signal that aborts when the
 * request's connection closes before `release` is called. A kept-alive connection outlives its requests, so the
 * work must call `release` when it ends, which drops the listener.
 */
export function connectionGone(connection: WatchedConnection): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController()
  const abort = (): void => controller.abort()
  if (connection.destroyed) abort()
  else connection.once('close', abort)
  return { signal: controller.signal, release: () => connection.off('close', abort) }
}
