import type { ServerResponse } from 'node:http'
import { markCutByGateway } from './answer-outcome.ts'
import { cutConnection } from './cut-connection.ts'

/**
 * Bounds how long a client may leave one of the gateway's own answers unread (`server.timeouts.send_seconds`, nginx's
 * `send_timeout`). The answer is written whole at once; what the kernel does not take waits in memory for the client
 * to read it. Without a bound, a client that asked for a large answer (the API documentation's 1.7 MB script is open
 * to all) and read nothing held the connection and the answer for good, past `keepAliveTimeout`, which starts only
 * once the answer is sent. Node's socket timeout suppresses itself while a write is under way that makes progress,
 * so a client reading slowly keeps its answer coming; only one that reads nothing for `sendMs` is cut.
 */
export function boundUnreadAnswer(response: ServerResponse, sendMs: number): void {
  response.once('prefinish', () => {
    const socket = response.socket
    // Everything was taken by the kernel at once, as for almost every answer: nothing waits on the client.
    if (!socket || socket.writableLength === 0) return
    response.setTimeout(sendMs, () => {
      if (response.writableFinished) return
      markCutByGateway(response)
      cutConnection(socket)
    })
    response.once('finish', () => {
      // A kept-alive connection has its idle timeout in place of this one by now; any other gets this one's no longer.
      if (socket.timeout === sendMs) socket.setTimeout(0)
    })
  })
}
