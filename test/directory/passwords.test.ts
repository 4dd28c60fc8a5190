import assert from 'node:assert/strict'
import { pbkdf2Sync, randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { describe, it } from 'node:test'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { argon2Tasks, burnVerificationTime, ConcurrencyLimit, hashCostRefusal, hashingThreads, hashNeedsUpdate, hashPassword, TIME_SPENDING_HASH, verifyPassword } from '../../src/directory/passwords.ts'
import { PasswordCheckAbandoned, PasswordCheckFailed, PasswordChecksBusy } from '../../src/errors.ts'
import { HashingThreads } from '../../src/directory/hashing-threads.ts'

describe('ConcurrencyLimit', () => {
  it('runs at most its limit at once and the others in the order they came', async () => {
    const limit = new ConcurrencyLimit(2)
    let running = 0
    let mostAtOnce = 0
    const started: number[] = []
    const task = (id: number) => limit.run(async () => {
      started.push(id)
      running++
      mostAtOnce = Math.max(mostAtOnce, running)
      await sleep(10)
      running--
      return id
    })
    assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map(task)), [1, 2, 3, 4, 5])
    assert.equal(mostAtOnce, 2)
    assert.deepEqual(started, [1, 2, 3, 4, 5])
    assert.equal(limit.running, 0)
  })

  it('gives the place of a task that failed to the next', async () => {
    const limit = new ConcurrencyLimit(1)
    const failed = limit.run(async () => {
      throw new Error('broken')
    })
    const next = limit.run(async () => 'ran')
    await assert.rejects(failed, /broken/)
    assert.equal(await next, 'ran')
    assert.equal(limit.running, 0)
  })

  it('refuses a task at once when maxWaiting tasks wait already, and runs those that waited', async () => {
    const limit = new ConcurrencyLimit(1, { whenFull: () => new Error('full') })
    limit.maxWaiting = 1
    let release!: () => void
    const first = limit.run(() => new Promise<string>((resolve) => {
      release = () => resolve('first')
    }))
    const second = limit.run(async () => 'second')
    await assert.rejects(limit.run(async () => 'third'), /full/)
    assert.equal(limit.waiting, 1)
    release()
    assert.deepEqual(await Promise.all([first, second]), ['first', 'second'])
    assert.equal(limit.running, 0)
  })

  it('drops a waiting task whose signal aborts, and gives the next place to the one after it', async () => {
    const limit = new ConcurrencyLimit(1, { whenAbandoned: () => new Error('abandoned') })
    let release!: () => void
    const first = limit.run(() => new Promise<void>((resolve) => {
      release = resolve
    }))
    const gone = new AbortController()
    let ranAbandoned = false
    const abandoned = limit.run(async () => {
      ranAbandoned = true
    }, gone.signal)
    const after = limit.run(async () => 'after')
    assert.equal(limit.waiting, 2)
    gone.abort()
    await assert.rejects(abandoned, /abandoned/)
    assert.equal(limit.waiting, 1)
    release()
    await first
    assert.equal(await after, 'after')
    assert.equal(ranAbandoned, false)
    assert.equal(limit.running, 0)
    await assert.rejects(limit.run(async () => 'late', gone.signal), /abandoned/, 'an aborted signal does not even queue')
  })
})

describe('argon2id verifications', () => {
  it('run on one thread per core, each holding one more, the rest waiting their turn', async () => {
    assert.equal(hashingThreads.size, availableParallelism())
    assert.equal(argon2Tasks.limit, hashingThreads.size * 2)
    const hash = await hashPassword('correct horse')
    const checks = Array.from({ length: argon2Tasks.limit * 3 + 1 }, (_, i) => verifyPassword(hash, i % 2 ? 'correct horse' : 'wrong'))
    let settled = false
    const all = Promise.all(checks).finally(() => {
      settled = true
    })
    let mostRunning = 0
    let mostWaiting = 0
    while (!settled) {
      mostRunning = Math.max(mostRunning, argon2Tasks.running)
      mostWaiting = Math.max(mostWaiting, argon2Tasks.waiting)
      await nextTurn()
    }
    assert.deepEqual(await all, checks.map((_, i) => i % 2 === 1))
    assert.equal(mostRunning, argon2Tasks.limit)
    assert.ok(mostWaiting > 0)
    assert.equal(argon2Tasks.running, 0)
  })

  it('go on to the next check a thread holds without waiting for the event loop', async () => {
    const hash = await hashPassword('correct horse')
    const before = hashingThreads.hashed
    const twoEach = hashingThreads.size * 2
    const checks = Array.from({ length: twoEach }, () => verifyPassword(hash, 'correct horse'))
    // The event loop is held until every check was hashed: each thread took its second check by itself.
    const deadline = Date.now() + 60_000
    while (hashingThreads.hashed - before < twoEach && Date.now() < deadline);
    assert.equal(hashingThreads.hashed - before, twoEach)
    assert.deepEqual(await Promise.all(checks), checks.map(() => true))
  })

  it('skip a check whose client went away while its thread held it', async () => {
    const hash = await hashPassword('correct horse')
    const before = hashingThreads.hashed
    const first = Array.from({ length: hashingThreads.size }, () => verifyPassword(hash, 'correct horse'))
    const gone = new AbortController()
    const held = Array.from({ length: hashingThreads.size }, () => verifyPassword(hash, 'correct horse', gone.signal).catch((error: unknown) => error))
    // The threads are still at their first checks: a hash takes milliseconds, and this turn of the loop is not over.
    gone.abort()
    assert.deepEqual(await Promise.all(first), first.map(() => true))
    for (const outcome of await Promise.all(held)) assert.ok(outcome instanceof PasswordCheckAbandoned)
    assert.equal(hashingThreads.hashed - before, hashingThreads.size)
    assert.equal(argon2Tasks.running, 0)
  })

  it('answer a hash that does not parse as no match', async () => {
    assert.equal(await verifyPassword('not a hash', 'correct horse'), false)
  })
})

describe('hashing threads', () => {
  it('end after a while without a job, and start again for the next', async () => {
    const threads = new HashingThreads(1, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 }, 50)
    const hash = await threads.hash('correct horse')
    assert.equal(threads.running, 1)
    for (const deadline = Date.now() + 30_000; threads.running > 0 && Date.now() < deadline;) await sleep(20)
    assert.equal(threads.running, 0)
    assert.equal(await threads.verify(hash, 'correct horse'), true)
  })
  /** One thread that hangs at a job whose password is `hang` and exits at one whose password is `exit`. */
  const misbehaving = () => new HashingThreads(1, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 }, 60_000, new URL('../fixtures/misbehaving-hashing-thread.js', import.meta.url))

  it('put a thread aside that takes too long over a job, failing that job closed, and hash the one it held behind it and the next on a fresh one', async () => {
    const threads = misbehaving()
    threads.jobTimeoutMs = 1000
    const hash = await threads.hash('correct horse')
    const hung = threads.verify(hash, 'hang').catch((error: unknown) => error)
    // Held by the same thread, behind the job it hangs at.
    const behind = threads.verify(hash, 'correct horse').catch((error: unknown) => error)
    assert.ok(await hung instanceof PasswordCheckFailed)
    // Never started, it is handed to a fresh thread.
    assert.equal(await behind, true)
    assert.equal(await threads.verify(hash, 'correct horse'), true)
    assert.equal(await threads.verify(hash, 'wrong'), false)
    assert.equal(threads.running, 1)
  })

  it('replace a thread that exits, failing its job closed', async () => {
    const threads = misbehaving()
    const hash = await threads.hash('correct horse')
    assert.ok(await threads.verify(hash, 'exit').catch((error: unknown) => error) instanceof PasswordCheckFailed)
    assert.equal(await threads.verify(hash, 'correct horse'), true)
    assert.equal(threads.running, 1)
  })
})

describe('the time spent for a check without a hash', () => {
  it('is a verification against a hash made with the parameters of every hash', async () => {
    const parameters = (hash: string) => hash.split('$').slice(0, 4).join('$')
    assert.equal(parameters(TIME_SPENDING_HASH), parameters(await hashPassword('a password')))
    const before = hashingThreads.hashed
    await burnVerificationTime('a password')
    assert.equal(hashingThreads.hashed - before, 1)
  })
})

describe('the cost of a stored hash', () => {
  /** A hash with these parameters, valid in form (its salt and output are arbitrary). */
  const withCost = (parameters: string, variant = 'argon2id') => `$${variant}$v=19$${parameters}$c29tZXNhbHRzb21lc2FsdA$cG9pbnRsZXNzcG9pbnRsZXNzcG9pbnRsZXNzcG9pbnQ`

  it('is verified up to the ceiling: Gatehouse\'s own, Django\'s and Keycloak\'s argon2 parameters', async () => {
    assert.equal(hashCostRefusal(TIME_SPENDING_HASH), undefined)
    assert.equal(hashCostRefusal(withCost('m=102400,t=2,p=8')), undefined)
    assert.equal(hashCostRefusal(withCost('m=7168,t=5,p=1')), undefined)
    // Read without argon2's addon, which stays off the event loop's thread: what the reading cannot tell is not run.
    for (const unreadable of ['not a hash', withCost('m=19456,t=2'), withCost('m=0x10,t=2,p=1'), withCost('m=19456,t=2,p=1,m=99999999')]) {
      assert.match(String(hashCostRefusal(unreadable)), /not an argon2 hash Gatehouse can read/, unreadable)
    }
  })

  it('is refused above it, in memory, lanes or work, and a check against it is no match without running it', async () => {
    for (const parameters of ['m=1048576,t=1,p=1', 'm=19456,t=2,p=64', 'm=8,t=100000000,p=1', 'm=65536,t=8,p=1']) {
      assert.match(String(hashCostRefusal(withCost(parameters))), /is above the most Gatehouse verifies/, parameters)
    }
    const before = hashingThreads.hashed
    assert.equal(await verifyPassword(withCost('m=8,t=100000000,p=1'), 'a password'), false)
    assert.equal(hashingThreads.hashed - before, 1, 'one verification\'s time, against a hash of Gatehouse\'s own')
  })

  it('is to be replaced when any parameter differs from Gatehouse\'s own', async () => {
    assert.equal(hashNeedsUpdate(TIME_SPENDING_HASH), false)
    assert.equal(hashNeedsUpdate(await hashPassword('a password')), false)
    assert.equal(hashNeedsUpdate(withCost('m=7168,t=5,p=1')), true)
    assert.equal(hashNeedsUpdate(withCost('m=19456,t=2,p=1', 'argon2i')), true)
    assert.equal(hashNeedsUpdate('not a hash'), false)
  })
})

describe('imported PBKDF2 hashes', () => {
  /** Django's own vector (tests/auth_tests/test_hashers.py, test_pbkdf2 at 20,000 iterations). */
  const DJANGO = 'pbkdf2_sha256$20000$seasalt$oBSd886ysm3AqYun62DOdin8YcfbU1z9cksZSuLP9r0='
  const keycloak = (digest: string, algorithm: string, iterations: number, keyBytes: number) => {
    const salt = randomBytes(16)
    return `keycloak$${algorithm}$${iterations}$${salt.toString('base64')}$${pbkdf2Sync('kc-password', salt, iterations, keyBytes, digest).toString('base64')}`
  }

  it('verify Django\'s and Keycloak\'s as they made them, on the hashing threads, and no other password', async () => {
    assert.equal(await verifyPassword(DJANGO, 'lètmein'), true)
    assert.equal(await verifyPassword(DJANGO, 'lètmeinz'), false)
    for (const hash of [keycloak('sha256', 'pbkdf2-sha256', 27500, 32), keycloak('sha512', 'pbkdf2-sha512', 1000, 64), keycloak('sha1', 'pbkdf2', 1000, 64)]) {
      assert.equal(await verifyPassword(hash, 'kc-password'), true, hash.split('$')[1])
      assert.equal(await verifyPassword(hash, 'kc-passwore'), false, hash.split('$')[1])
    }
  })

  it('are verified up to two million iterations times the key\'s blocks, refused above without running, and always replaced', async () => {
    assert.equal(hashCostRefusal(DJANGO.replace('$20000$', '$2000000$')), undefined)
    assert.match(String(hashCostRefusal(DJANGO.replace('$20000$', '$2000001$'))), /2000001 iterations of SHA256/)
    // Keycloak's SHA-1 provider derives 512 bits: four blocks of SHA-1's 160, each a full run of the iterations.
    assert.match(String(hashCostRefusal(keycloak('sha1', 'pbkdf2', 500_001, 64))), /2000004 in all/)
    for (const unreadable of ['pbkdf2_sha256$20000$seasalt$c2hvcnQ=', 'pbkdf2_sha256$0$seasalt$' + 'A'.repeat(44), 'keycloak$pbkdf2-md5$1000$c2FsdA==$' + 'A'.repeat(44), 'keycloak$pbkdf2-sha256$1000$$' + 'A'.repeat(44)]) {
      assert.match(String(hashCostRefusal(unreadable)), /not a PBKDF2 hash Gatehouse can read/, unreadable)
      assert.equal(await verifyPassword(unreadable, 'anything'), false)
    }
    const before = hashingThreads.hashed
    assert.equal(await verifyPassword(DJANGO.replace('$20000$', '$100000000$'), 'lètmein'), false)
    assert.equal(hashingThreads.hashed - before, 1, 'only the time-spending hash ran')
    assert.equal(hashNeedsUpdate(DJANGO), true)
    assert.equal(hashNeedsUpdate('argon2' + TIME_SPENDING_HASH), true)
  })
})
