import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { describe, it } from 'node:test'
import { runCli, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** `users list --json` as the API shows the accounts: who is an active superuser. */
async function activeSuperusers(storage: string[]): Promise<string[]> {
  const listed = await runCli(['users', 'list', '--json', ...storage])
  assert.equal(listed.code, 0, listed.stderr)
  return (JSON.parse(listed.stdout) as { username: string; is_superuser: boolean; is_active: boolean }[])
    .filter((user) => user.is_superuser && user.is_active).map((user) => user.username)
}

async function assertKeepsTheLastSuperuser(storage: string[]): Promise<void> {
  assert.equal((await runCli(['migrate', ...storage])).code, 0)
  assert.equal((await runCli(['users', 'create', 'root', '--superuser', ...storage])).code, 0)
  assert.equal((await runCli(['users', 'create', 'plain', ...storage])).code, 0)

  const refused = await runCli(['users', 'disable', 'root', ...storage])
  assert.equal(refused.code, 1, refused.stderr)
  assert.match(refused.stderr, /^gatehouse: root is the last active superuser: .*users create NAME --superuser/)
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
  assert.equal(refused.stdout, '')
  assert.deepEqual(await activeSuperusers(storage), ['root'], 'nothing changed')

  assert.equal((await runCli(['users', 'disable', 'plain', ...storage])).code, 0, 'any other account may be disabled')
  assert.equal((await runCli(['users', 'create', 'second', '--superuser', ...storage])).code, 0)
  const disabled = await runCli(['users', 'disable', 'root', ...storage])
  assert.equal(disabled.code, 0, disabled.stderr)
  assert.deepEqual(await activeSuperusers(storage), ['second'])
  const last = await runCli(['users', 'disable', 'second', ...storage])
  assert.equal(last.code, 1, 'and then that one is the last')
  assert.deepEqual(await activeSuperusers(storage), ['second'])
}

describe('bin/gatehouse users disable', () => {
  it('refuses to disable the last active superuser on SQLite, changing nothing, until another one is active', async () => {
    const dir = tempDir()
    try {
      await assertKeepsTheLastSuperuser(['--data-dir', dir])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses to disable the last active superuser on PostgreSQL', async () => {
    const database = await createTestDatabase()
    try {
      await assertKeepsTheLastSuperuser(['--database', database.url])
    } finally {
      await database.drop()
    }
  })
})
