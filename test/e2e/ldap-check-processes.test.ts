import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { skewedClock } from '../helpers/skewed-clock.ts'
import { at, login } from '../helpers/session.ts'

const INTERVAL_SECONDS = 1
/** What a process logs when the periodic check becomes its job. */
const RUNS_THE_CHECK = /"msg":"this process runs the directory account check/

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`)
    await sleep(50)
  }
}

/**
 * The directory's user searches for alice over `seconds`: the periodic check asks about her once per run (and then
 * reads her groups, with a filter naming her DN, not counted here).
 */
async function searchesOver(directory: TestDirectory, seconds: number): Promise<number> {
  const before = directory.searches('(uid=alice)')
  await sleep(seconds * 1000)
  return directory.searches('(uid=alice)') - before
}

describe('the directory account check with several processes on one database', () => {
  const dir = tempDir()
  let directory: TestDirectory
  let gateways: GatewayProcess[] = []
  before(async () => {
    directory = await startDirectory({ logSearches: true })
    const configFile = join(dir, 'gatehouse.json')
    writeFileSync(configFile, JSON.stringify({ ldap: directory.config({ account_check: { interval_seconds: INTERVAL_SECONDS } }) }))
    const args = ['--config', configFile, '--data-dir', dir]
    const env = { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' }
    // One after the other: the first migrates the new database.
    gateways.push(await spawnGateway(args, env))
    gateways.push(await spawnGateway(args, env))
    // alice holds a session, so every run of the check asks the directory about her.
    await login(at(gateways[0]!.url), 'alice', PASSWORDS.alice!)
  })
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    await directory?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('runs in one process per period, and in another once that one is gone', async () => {
    await until(() => gateways.some((g) => RUNS_THE_CHECK.test(g.output())), INTERVAL_SECONDS * 5000, 'a process runs the check')
    const seconds = 6
    const searches = await searchesOver(directory, seconds)
    assert.ok(searches >= seconds - 2 && searches <= seconds + 1, `one check per ${INTERVAL_SECONDS} s in ${seconds} s, not one per process: ${searches}`)
    const holders = gateways.filter((g) => RUNS_THE_CHECK.test(g.output()))
    assert.equal(holders.length, 1, 'one process runs it')

    const [holder] = holders
    const other = gateways.find((g) => g !== holder)!
    // Killed, not stopped: it cannot hand the check over, and the other must wait for its lease to run out.
    holder!.process.kill('SIGKILL')
    await new Promise((resolve) => holder!.process.once('exit', resolve))
    gateways = [other]
    await until(() => RUNS_THE_CHECK.test(other.output()), INTERVAL_SECONDS * 5000, 'the other process takes the check over')
    const after = await searchesOver(directory, 4)
    assert.ok(after >= 2 && after <= 5, `the check goes on once a period: ${after}`)
  })
})

/**
 * On "hosts" whose clocks disagree by an hour: the lease runs out by the database's clock, so the process whose clock
 * runs ahead does not take it from the one running the check, which by its own clock would have lapsed long ago.
 */
describe('the directory account check with processes whose clocks disagree, on PostgreSQL', () => {
  const dir = tempDir()
  let directory: TestDirectory
  let drop: (() => Promise<void>) | undefined
  const gateways: GatewayProcess[] = []
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    await directory?.close()
    await drop?.()
    rmSync(dir, { recursive: true, force: true })
  })

  it('is not taken over by a process whose clock runs an hour ahead while its holder runs it', async () => {
    directory = await startDirectory()
    const database = await createTestDatabase()
    drop = database.drop
    const configFile = join(dir, 'gatehouse.json')
    writeFileSync(configFile, JSON.stringify({ ldap: directory.config({ account_check: { interval_seconds: INTERVAL_SECONDS } }) }))
    const args = ['--config', configFile, '--database', database.url]
    const env = { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' }
    const holder = await spawnGateway(args, env)
    gateways.push(holder)
    await until(() => RUNS_THE_CHECK.test(holder.output()), INTERVAL_SECONDS * 5000, 'the first process runs the check')
    const ahead = await spawnGateway(args, { ...env, ...skewedClock(3600_000) })
    gateways.push(ahead)
    await sleep(INTERVAL_SECONDS * 4000)
    assert.doesNotMatch(ahead.output(), RUNS_THE_CHECK)
  })
})
