import type { AuthMethod } from '../config/schema.ts'

/** The WWW-Authenticate challenges (RFC 9110 §11.6.1) for the credential types a place accepts. */
export function challengesFor(accepts: readonly AuthMethod[]): string[] {
  const challenges: string[] = []
  if (accepts.includes('basic')) challenges.push('Basic realm="Gatehouse", charset="UTF-8"')
  if (accepts.includes('token') || accepts.includes('oidc')) challenges.push('Bearer realm="Gatehouse"')
  return challenges
}
