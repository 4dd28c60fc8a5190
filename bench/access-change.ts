/**
 * `node bench/access-change.ts [assignments] [changes]`: what one change of access costs another gateway process,
 * with `assignments` role assignments (200,000 by default) on the database. This process makes the changes through
 * the API's code (AccessAdmin): a role given to a user and taken back again, a team membership given and taken, a role
 * given to and taken from a team the user is a member of, and a role definition's permissions changed, `changes` times
 * each. A second process (a child running this file with
 * `other`) holds the access model as a gateway does; for each change it says how long a request arriving just after
 * it waited for the news (`freshen`, as each request's turn does), and its event loop's longest turn from just before
 * the change until a second after it (a timer due every millisecond), in wall time and in its thread's own time (wall
 * time also counts other programs' use of the machine's cores), and its heap in use once it has applied the change
 * (after a full garbage collection). ACCESS_CHANGE_POSTGRES=1 runs on a database of
 * its own on the tests' PostgreSQL (test/helpers/postgres.ts), where the publisher's own wait for the other process's
 * confirmation is the news's delivery. Prints the median of each.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createApp, type App } from '../src/app.ts'
import { validateConfig } from '../src/config/load.ts'
import { openStore, type Store } from '../src/store/store.ts'
import type { User } from '../src/store/users.ts'
import { createTestDatabase } from '../test/helpers/postgres.ts'
import { seedOrganizationMembers } from '../test/helpers/seed-members.ts'

interface Target { dataDir: string; url?: string | undefined }
type Message = { kind: 'ready' } | { kind: 'arm' } | { kind: 'armed' } | { kind: 'changed'; userId: number; expect: string } | { kind: 'measured'; waitedMs: number; longestTurnMs: number; longestTurnThreadMs: number; heapMB: number; seen: boolean }

const SETTLE_MS = 1000

async function openTarget(target: Target): Promise<Store> {
  return target.url ? openStore({ url: target.url, dataDir: '' }) : openStore({ dataDir: target.dataDir })
}

/** The other process: the access model as a gateway holds it, and its event loop watched. */
async function other(target: Target): Promise<void> {
  const store = await openTarget(target)
  const app = await createApp(validateConfig({}), store)
  await app.bus.start()
  const threadMs = () => {
    const { user, system } = process.threadCpuUsage()
    return (user + system) / 1000
  }
  let longest = 0
  let longestThread = 0
  let last = performance.now()
  let lastThread = threadMs()
  setInterval(() => {
    const now = performance.now()
    const nowThread = threadMs()
    longest = Math.max(longest, now - last)
    longestThread = Math.max(longestThread, nowThread - lastThread)
    last = now
    lastThread = nowThread
  }, 1)
  process.on('message', (message: Message) => void (async () => {
    if (message.kind === 'arm') {
      longest = 0
      longestThread = 0
      last = performance.now()
      lastThread = threadMs()
      process.send!({ kind: 'armed' } satisfies Message)
      return
    }
    if (message.kind !== 'changed') return
    const started = performance.now()
    await app.bus.freshen()
    const waitedMs = performance.now() - started
    const user = (await store.users.findById(message.userId))!
    const seen = JSON.stringify(app.access.of(user).roles) === message.expect
    await sleep(SETTLE_MS)
    const measured = { waitedMs, longestTurnMs: longest, longestTurnThreadMs: longestThread }
    // What stays in memory once the change is applied: the access snapshot held, beside the rest of the gateway.
    globalThis.gc!()
    const heapMB = process.memoryUsage().heapUsed / 2 ** 20
    process.send!({ kind: 'measured', ...measured, heapMB, seen } satisfies Message)
  })())
  process.send!({ kind: 'ready' } satisfies Message)
}

function ask(child: ChildProcess, message: Message, answer: Message['kind']): Promise<Message> {
  return new Promise((resolve) => {
    const listener = (reply: Message) => {
      if (reply.kind !== answer) return
      child.off('message', listener)
      resolve(reply)
    }
    child.on('message', listener)
    child.send(message)
  })
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function main(): Promise<void> {
  const assignments = Number(process.argv[2] ?? 200_000)
  const changes = Number(process.argv[3] ?? 5)
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-access-change-'))
  const database = process.env.ACCESS_CHANGE_POSTGRES ? await createTestDatabase() : undefined
  const target: Target = { dataDir: join(dir, 'data'), url: database?.url }
  let child: ChildProcess | undefined
  let app: App | undefined
  try {
    const store = await openTarget(target)
    await seedOrganizationMembers(store, assignments)
    app = await createApp(validateConfig({}), store)
    await app.bus.start()
    const admin = await app.accounts.create({ username: 'bench-admin', isSuperuser: true })
    const user: User = await app.accounts.create({ username: 'bench-user' })
    const organization = await app.accessAdmin.createOrganization(admin, { name: 'Changed' })
    const team = await app.accessAdmin.createTeam(admin, { name: 'Changers', organizationId: organization.id })
    // The user's own team, whose roles change: the user holds them through it.
    const holders = await app.accessAdmin.createTeam(admin, { name: 'Holders', organizationId: organization.id })
    const orgAdmin = (await store.access.findRoleDefinitionByName('Organization Admin'))!
    const teamMember = (await store.access.findRoleDefinitionByName('Team Member'))!
    const custom = await app.accessAdmin.createRoleDefinition(admin, { name: 'Bench role', contentType: 'shared.organization', permissions: ['shared.view_organization'] })
    await app.accessAdmin.assign(admin, 'user', { roleDefinitionId: custom.id, actorId: user.id, objectId: organization.id })
    await app.accessAdmin.assign(admin, 'user', { roleDefinitionId: teamMember.id, actorId: user.id, objectId: holders.id })

    child = fork(new URL(import.meta.url).pathname, ['other', JSON.stringify(target)], { stdio: 'inherit', execArgv: [...process.execArgv, '--expose-gc'] })
    await new Promise<void>((resolve) => child!.once('message', () => resolve()))

    const roles = async () => JSON.stringify(app!.access.of((await store.users.findById(user.id))!).roles)
    const kinds: Record<string, { publishMs: number[]; waitedMs: number[]; longestTurnMs: number[]; longestTurnThreadMs: number[]; heapMB: number[]; unseen: number }> = {}
    const measure = async (kind: string, change: () => Promise<unknown>) => {
      await ask(child!, { kind: 'arm' }, 'armed')
      const started = performance.now()
      await change()
      const publishMs = performance.now() - started
      const reply = await ask(child!, { kind: 'changed', userId: user.id, expect: await roles() }, 'measured') as Extract<Message, { kind: 'measured' }>
      const row = kinds[kind] ??= { publishMs: [], waitedMs: [], longestTurnMs: [], longestTurnThreadMs: [], heapMB: [], unseen: 0 }
      row.publishMs.push(publishMs)
      row.waitedMs.push(reply.waitedMs)
      row.longestTurnMs.push(reply.longestTurnMs)
      row.longestTurnThreadMs.push(reply.longestTurnThreadMs)
      row.heapMB.push(reply.heapMB)
      if (!reply.seen) row.unseen++
    }
    for (let round = 0; round < changes; round++) {
      let given = await app.accessAdmin.assign(admin, 'user', { roleDefinitionId: orgAdmin.id, actorId: user.id, objectId: organization.id })
      await app.accessAdmin.unassign(admin, 'user', given.assignment.id)
      await measure('user role given', async () => given = await app!.accessAdmin.assign(admin, 'user', { roleDefinitionId: orgAdmin.id, actorId: user.id, objectId: organization.id }))
      await measure('user role taken', () => app!.accessAdmin.unassign(admin, 'user', given.assignment.id))
      let membership = given
      await measure('team membership given', async () => membership = await app!.accessAdmin.assign(admin, 'user', { roleDefinitionId: teamMember.id, actorId: user.id, objectId: team.id }))
      await measure('team membership taken', () => app!.accessAdmin.unassign(admin, 'user', membership.assignment.id))
      let teamRole = given
      await measure('team\'s role given', async () => teamRole = await app!.accessAdmin.assign(admin, 'team', { roleDefinitionId: orgAdmin.id, actorId: holders.id, objectId: organization.id }))
      await measure('team\'s role taken', () => app!.accessAdmin.unassign(admin, 'team', teamRole.assignment.id))
      const permissions = round % 2 ? ['shared.view_organization'] : ['shared.view_organization', 'shared.change_organization']
      await measure('role definition changed', () => app!.accessAdmin.updateRoleDefinition(admin, custom.id, { permissions }))
    }
    console.log(`${assignments} assignments, ${database ? 'PostgreSQL' : 'SQLite'}, median of ${changes}:`)
    console.log('| change | publisher\'s call (ms) | other process: request waited (ms) | other process: longest turn (ms) | the same, its thread\'s own time (ms) | other process: heap used after (MB) | not seen |')
    console.log('| --- | --- | --- | --- | --- | --- | --- |')
    for (const [kind, row] of Object.entries(kinds)) {
      console.log(`| ${kind} | ${median(row.publishMs).toFixed(1)} | ${median(row.waitedMs).toFixed(1)} | ${median(row.longestTurnMs).toFixed(1)} | ${median(row.longestTurnThreadMs).toFixed(1)} | ${median(row.heapMB).toFixed(0)} | ${row.unseen} |`)
    }
  } finally {
    child?.kill()
    await app?.close()
    await database?.drop()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'other') await other(JSON.parse(process.argv[3]!) as Target)
else await main()
