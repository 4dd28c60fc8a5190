import { createServer, type Server } from 'node:net'

/** Why a port cannot be listened on, in an operator's words; other failures keep their own message. */
const PORT_PROBLEMS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
}
/** The same for failures that are the host's, not the port's. */
const HOST_PROBLEMS: Record<string, string> = {
  EADDRNOTAVAIL: "the address is not one of this machine's",
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved',
}

/** The configuration settings that named a listener's address. */
export interface ListenSettings {
  host: string
  port: string
}

/**
 * A port or address that cannot be listened on, with the setting that named it. One this machine cannot listen on is
 * a mistake in the configuration (exit status 2); a port another process holds is not (`inUse`): it may be free again
 * in a moment, as when the process before this one is still draining, so a supervisor should try again.
 */
export class ListenFailed extends Error {
  readonly inUse: boolean
  constructor(message: string, inUse: boolean) {
    super(message)
    this.inUse = inUse
  }
}

/** `error` as ListenFailed when it is one of the failures an operator fixes in the configuration; else as it was. */
export function explainListenError(error: unknown, settings: ListenSettings, host: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException)?.code ?? ''
  const [setting, problem] = PORT_PROBLEMS[code] ? [settings.port, PORT_PROBLEMS[code]] : [settings.host, HOST_PROBLEMS[code]]
  if (!problem) return error
  return new ListenFailed(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${problem} (${setting}, ${code})`, code === 'EADDRINUSE')
}

/** A listener `serve` will open: where, and the settings that named it. */
export interface PlannedListener {
  host: string
  port: number
  settings: ListenSettings
}

/**
 * Refuses a `host` this machine cannot listen on (an address not its own, a name resolving to none) and a port it
 * cannot have (another process holds it, or it needs privileges), for each listener `serve` will open, asked before
 * anything is opened: found only when it listened, the start had made and migrated the database and created the
 * superuser first. Each port is listened on and let go at once; one that another process frees in the moment before
 * the start listens (the process before it still draining) is refused as held, as a supervisor tries again anyway.
 */
export async function checkListeners(listeners: PlannedListener[]): Promise<void> {
  // Each held until every one is, so that two listeners planned on one port (--port on the redirect port) are found.
  const probes: Server[] = []
  const held: PlannedListener[] = []
  try {
    for (const listener of listeners) {
      const { host, port, settings } = listener
      const probe = createServer()
      probes.push(probe)
      try {
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject)
          probe.listen({ host, port }, resolve)
        })
      } catch (error) {
        // Held by this start itself: a mistake in how it was called, not a port that may come free (exit status 2).
        const own = (error as NodeJS.ErrnoException)?.code === 'EADDRINUSE' && held.find((other) => other.port === port)
        if (own) throw new ListenFailed(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${settings.port} names the port ${own.settings.port} listens on`, false)
        throw explainListenError(error, settings, host, port)
      }
      held.push(listener)
    }
  } finally {
    await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))))
  }
}
