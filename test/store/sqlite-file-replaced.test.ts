import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { openStore, type Store } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'

const GATEHOUSE = fileURLToPath(new URL('../../bin/gatehouse', import.meta.url))

/**
 * A command on the database (not a serving gateway, which `restore` finds by its heartbeat) whose event loop was held
 * while a restore put another file in place (`users import` parsing a large file): its write must not go to the file
 * set aside while it says it succeeded. The check every second is late then; a write transaction looks at the file
 * itself first.
 */
describe('a write after the database file was replaced under a busy process', () => {
  const dir = tempDir()
  const backup = join(tempDir(), 'backup.sqlite')
  let store: Store

  before(async () => {
    store = await openStore({ dataDir: dir })
    execFileSync(GATEHOUSE, ['backup', backup, '--data-dir', dir], { stdio: 'pipe' })
  })
  after(() => store?.close())

  const usernames = (file: string) => (new DatabaseSync(file, { readOnly: true }).prepare('SELECT username FROM users').all() as { username: string }[]).map((row) => row.username)

  it('is refused, and lands in neither file', async () => {
    // Synchronous: this process's event loop is held while the restore runs, as a command's is while it parses.
    execFileSync(GATEHOUSE, ['restore', backup, '--data-dir', dir], { stdio: 'pipe' })
    await assert.rejects(store.transaction((tx) => tx.users.create({ username: 'written-after-restore' })), (error: Error) => {
      assert.match(String((error.cause as Error | undefined)?.message), /was deleted or replaced while in use/)
      return true
    })
    const setAside = readdirSync(dir).filter((name) => name.startsWith('gatehouse.sqlite.before-restore'))
    assert.equal(setAside.length, 1, readdirSync(dir).join())
    for (const file of [join(dir, 'gatehouse.sqlite'), join(dir, setAside[0]!)]) assert.equal(usernames(file).includes('written-after-restore'), false, file)
  })
})
