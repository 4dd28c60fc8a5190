import type { Algorithm, Options } from '@node-rs/argon2'
import { randomBytes } from 'node:crypto'

/** argon2's native addon loads with the first password hashed or verified: a restart on an existing database needs neither. */
let argon2: Promise<typeof import('@node-rs/argon2')> | undefined
const loadArgon2 = () => (argon2 ??= import('@node-rs/argon2'))

/** argon2id with OWASP's minimum recommended parameters (19 MiB, 2 iterations, 1 lane). */
const ARGON2ID: Options = { algorithm: 2 as Algorithm, memoryCost: 19456, timeCost: 2, parallelism: 1 }

export async function hashPassword(password: string): Promise<string> {
  const { hash } = await loadArgon2()
  return hash(password, ARGON2ID)
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  const { verify } = await loadArgon2()
  try {
    return await verify(passwordHash, password)
  } catch {
    return false
  }
}

let dummyHash: Promise<string> | undefined

/**
 * Spends the same time as a real verification, for unknown users and empty passwords,
 * so a wrong password and a missing account cannot be told apart by timing.
 */
export async function burnVerificationTime(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'))
  await verifyPassword(await dummyHash, password)
}
