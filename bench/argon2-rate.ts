import { availableParallelism } from 'node:os'
import { hashPassword, verifyPassword } from '../src/directory/passwords.ts'

/** How many argon2id verifications per second this machine does at Gatehouse's cost, on all its cores. */
const seconds = Number(process.argv[2] ?? 3)
const hash = await hashPassword('bench-password')
const until = Date.now() + seconds * 1000
let done = 0
await Promise.all(Array.from({ length: availableParallelism() }, async () => {
  while (Date.now() < until) {
    await verifyPassword(hash, 'bench-password')
    done++
  }
}))
process.stdout.write(`${done / seconds}\n`)
