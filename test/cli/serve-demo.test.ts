import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, describe, it } from 'node:test'
import { demoConfigFile } from '../../src/config/load.ts'
import { adminAuth, json, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'

const UNKNOWN_NAME_WARNING = 'access rule names something that does not exist'

/** The log up to a request made after start: whatever the start warns of is written before it. */
async function logAfterStart(gateway: GatewayProcess): Promise<string> {
  assert.equal((await fetch(`${gateway.url}/api/gateway/v1/ping/`)).status, 200)
  for (let i = 0; i < 100 && !gateway.output().includes('"msg":"request"'); i++) await sleep(50)
  assert.match(gateway.output(), /"msg":"request"/)
  return gateway.output()
}

/** Organization names, and teams as `organization/team`, as the API lists them. */
async function accessNames(gateway: GatewayProcess): Promise<{ organizations: string[]; teams: string[] }> {
  const organizations = await json(await fetch(`${gateway.url}/api/gateway/v1/organizations/?page_size=200`, { headers: adminAuth }))
  const teams = await json(await fetch(`${gateway.url}/api/gateway/v1/teams/?page_size=200`, { headers: adminAuth }))
  const nameOf = new Map<number, string>(organizations.results.map((o: { id: number; name: string }) => [o.id, o.name]))
  return {
    organizations: organizations.results.map((o: { name: string }) => o.name).sort(),
    teams: teams.results.map((t: { name: string; organization: number }) => `${nameOf.get(t.organization)}/${t.name}`).sort(),
  }
}

/** What the audit trail says Gatehouse made for the demo, as `content_type name`, once written (it writes in batches). */
async function seededEntries(gateway: GatewayProcess, expected: number): Promise<string[]> {
  let entries: string[] = []
  for (let i = 0; i < 100; i++) {
    const stream = await json(await fetch(`${gateway.url}/api/gateway/v1/activitystream/?operation=create&page_size=200`, { headers: adminAuth }))
    entries = stream.results.filter((e: { code: string | null }) => e.code === 'demo_seed').map((e: { content_type: string; summary_fields: { content_object: { name: string } } }) => `${e.content_type} ${e.summary_fields.content_object.name}`).sort()
    if (entries.length >= expected) break
    await sleep(50)
  }
  return entries
}

describe('serve --demo', () => {
  const dirs: string[] = []
  after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

  it('creates the organization and team its access rules name, once, so a first start has nothing to warn of', async () => {
    const dir = tempDir()
    dirs.push(dir)
    for (const start of ['first', 'second']) {
      const gateway = await spawnGateway(['--demo', '--data-dir', dir], { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' })
      try {
        const log = await logAfterStart(gateway)
        assert.doesNotMatch(log, new RegExp(UNKNOWN_NAME_WARNING), `the ${start} start`)
        assert.doesNotMatch(log, /"level":[4-6]\d/, `the ${start} start warns of nothing`)
        assert.deepEqual(await accessNames(gateway), { organizations: ['Platform', 'Research'], teams: ['Platform/Automation'] }, `after the ${start} start`)
        assert.deepEqual(await seededEntries(gateway, 3), ['organization Platform', 'organization Research', 'team Automation'], `audited once, by the first start`)
      } finally {
        await gateway.stop()
      }
    }
  })

  it('creates nothing for a configuration file given with --config: that is the administrator\'s', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const gateway = await spawnGateway(['--demo', '--config', demoConfigFile, '--data-dir', dir], { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' })
    try {
      assert.match(await logAfterStart(gateway), new RegExp(`no organization \\\\"Research\\\\" yet.*${UNKNOWN_NAME_WARNING}`))
      assert.deepEqual(await accessNames(gateway), { organizations: [], teams: [] })
    } finally {
      await gateway.stop()
    }
  })
})
