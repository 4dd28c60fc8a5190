import { availableParallelism } from 'node:os'
import { hashPassword, verifyPassword } from '../src/directory/passwords.ts'

/**
 * How many argon2id verifications per second this machine does at Gatehouse's cost: one at a time (as the checks
 * from one client address run, src/directory/lockout.ts), then on all its cores. Prints the two numbers, or with
 * `one-at-a-time` the first only.
 */
const seconds = Number(process.argv[2] ?? 3)
const oneAtATimeOnly = process.argv[3] === 'one-at-a-time'
const hash = await hashPassword('bench-password')

async function rate(parallel: number): Promise<number> {
  const until = Date.now() + seconds * 1000
  let done = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (Date.now() < until) {
      await verifyPassword(hash, 'bench-password')
      done++
    }
  }))
  return done / seconds
}

process.stdout.write(oneAtATimeOnly ? `${await rate(1)}\n` : `${await rate(1)} ${await rate(availableParallelism())}\n`)
