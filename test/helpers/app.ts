import { rmSync } from 'node:fs'
import { after, before } from 'node:test'
import { createApp, type App } from '../../src/app.ts'
import { validateConfig } from '../../src/config/load.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { tempDir } from './gateway.ts'

/**
 * The app on a SQLite store of its own, without a server, for the describe block it is called in: made before its
 * tests, closed and removed after them. Its fields are set once the block's `before` has run.
 */
export function appOnTempStore(): { store: Store; app: App } {
  const made = {} as { store: Store; app: App }
  let dir: string
  before(async () => {
    dir = tempDir()
    made.store = await openStore({ dataDir: dir })
    made.app = await createApp(validateConfig({}), made.store)
  })
  after(async () => {
    await made.app?.close()
    await made.store?.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return made
}
