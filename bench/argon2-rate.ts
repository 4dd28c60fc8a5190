import { availableParallelism } from 'node:os'
import { hashPassword, verifyPassword } from '../src/directory/passwords.ts'

/**
 * How many argon2id verifications per second this machine does at Gatehouse's cost: one at a time, then on all its
 * cores, one per core, as many as Gatehouse runs at once however many password checks wait (src/directory/passwords.ts).
 * Prints the two numbers, or with `one-at-a-time` or `all-cores` that one only; with `ARGON2_RATE_CPU=1`, each
 * followed by the process's CPU µs per verification.
 */
const seconds = Number(process.argv[2] ?? 3)
const only = process.argv[3]
const hash = await hashPassword('bench-password')

const withCpu = process.env.ARGON2_RATE_CPU === '1'

/**
 * Verifications a second over the time they took: each core's last verification, started before the deadline, ends
 * after it, and is counted over the time it took (divided by `seconds` alone, a slow machine's rate came out higher).
 */
async function rate(parallel: number): Promise<string> {
  const started = performance.now()
  const until = started + seconds * 1000
  const cpu = process.cpuUsage()
  let done = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (performance.now() < until) {
      await verifyPassword(hash, 'bench-password')
      done++
    }
  }))
  const perSecond = done / ((performance.now() - started) / 1000)
  const used = process.cpuUsage(cpu)
  return withCpu ? `${perSecond} ${Math.round((used.user + used.system) / done)}` : String(perSecond)
}

const rates = only === 'one-at-a-time' ? [await rate(1)] : only === 'all-cores' ? [await rate(availableParallelism())] : [await rate(1), await rate(availableParallelism())]
process.stdout.write(`${rates.join(' ')}\n`)
