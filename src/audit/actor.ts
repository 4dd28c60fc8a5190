import type { FastifyRequest } from 'fastify'
import { userInfo } from 'node:os'

/** Who did something, and from where: the "who" and "from where" of every audit entry. */
export interface Actor {
  readonly userId: number | null
  readonly username: string | null
  /** The trusted client address (Fastify's `request.ip`); none for the CLI and the system. */
  readonly address: string | null
  /** How the actor signed in: basic, session, token, oidc; `cli` for the command line; none for the system. */
  readonly method: string | null
}

/** The signed-in caller of a request (or an anonymous one, still with its address). */
export function actorOf(request: FastifyRequest): Actor {
  const principal = request.gatehouse?.principal
  return {
    userId: principal?.user.id ?? null,
    username: principal?.user.username ?? null,
    address: request.ip ?? null,
    method: principal?.method ?? null,
  }
}

/** Someone at the command line: the operating-system account that ran it is the best "who" there is. */
export function cliActor(): Actor {
  let username: string | null = null
  try {
    username = userInfo().username
  } catch {
    // No passwd entry for the uid (some containers): the entry still says it came from the CLI.
  }
  return { userId: null, username, address: null, method: 'cli' }
}

/** Gatehouse itself (pruning, automatic ends). */
export const SYSTEM_ACTOR: Actor = Object.freeze({ userId: null, username: null, address: null, method: null })

/**
 * A directory or SSO provider making or changing a user's account at their sign-in, or their memberships through a
 * configured mapping: the change is the source's word, made for that user (`method` says which source).
 */
export function mappingActor(source: 'ldap' | 'sso', user: { id: number; username: string }): Actor {
  return { userId: user.id, username: user.username, address: null, method: source }
}

/** A user acting for themselves at sign-in, before the request has a principal. */
export function signingIn(user: { id: number; username: string }, address: string | undefined, method: string): Actor {
  return { userId: user.id, username: user.username, address: address ?? null, method }
}
