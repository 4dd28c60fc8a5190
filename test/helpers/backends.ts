import { rmSync } from 'node:fs'
import { after, before } from 'node:test'
import { Migrator } from 'kysely'
import { migrationProvider } from '../../src/store/migrations/index.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { startGateway, tempDir, type GatewayOptions, type TestGateway } from './gateway.ts'
import { createTestDatabase } from './postgres.ts'

export interface OpenedStore {
  store: Store
  /** A second, independent connection to the same database. */
  reopen: () => Promise<Store>
  cleanup: () => Promise<void>
}

/** Both storage backends, each on a fresh database: every store test runs on each of them. */
export const storeBackends: { name: string; open: () => Promise<OpenedStore> }[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = tempDir()
      return {
        store: await openStore({ dataDir: dir }),
        reopen: () => openStore({ dataDir: dir }),
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const database = await createTestDatabase()
      return {
        store: await openStore({ url: database.url, dataDir: '' }),
        reopen: () => openStore({ url: database.url, dataDir: '' }),
        cleanup: database.drop,
      }
    },
  },
]

/** A fresh database with no migration run; `storage` and `cliArgs` are how a gateway and the CLI are pointed at it. */
export interface UnmigratedStore {
  store: Store
  storage: { dataDir: string } | { databaseUrl: string }
  cliArgs: string[]
  cleanup: () => Promise<void>
}

/** Both backends on a fresh database with no migration run, for tests that upgrade a database from an older version. */
export const unmigratedBackends: { name: string; open: () => Promise<UnmigratedStore> }[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = tempDir()
      return {
        store: await openStore({ dataDir: dir }, { migrate: false }),
        storage: { dataDir: dir },
        cliArgs: ['--data-dir', dir],
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const database = await createTestDatabase()
      return {
        store: await openStore({ url: database.url, dataDir: '' }, { migrate: false }),
        storage: { databaseUrl: database.url },
        cliArgs: ['--database', database.url],
        cleanup: database.drop,
      }
    },
  },
]

/**
 * Runs `test` on a fresh database of the backend migrated only up to `migration` (as an earlier version left it), then
 * closes and drops it.
 */
export async function atMigration(backend: (typeof unmigratedBackends)[number], migration: string, test: (store: Store, opened: UnmigratedStore) => Promise<void>): Promise<void> {
  const opened = await backend.open()
  const { store, cleanup } = opened
  try {
    const migrator = new Migrator({ db: store.database.db, provider: migrationProvider(store.database.dialect) })
    const { error } = await migrator.migrateTo(migration)
    if (error) throw error
    await test(store, opened)
  } finally {
    await store.close()
    await cleanup()
  }
}

/**
 * Opens a fresh store on the backend before the enclosing suite's tests and closes and drops it after them; the
 * returned object is filled in once the suite starts (read `.store` inside tests, not at collection time).
 */
export function openForSuite(backend: { open: () => Promise<OpenedStore> }): OpenedStore {
  const opened = {} as OpenedStore
  before(async () => {
    Object.assign(opened, await backend.open())
  })
  after(async () => {
    await opened.store.close()
    await opened.cleanup()
  })
  return opened
}

/**
 * As `openForSuite`, with a second connection to the same database (`other`), as another gateway process has: for
 * what several processes do to one database at once.
 */
export function openTwoForSuite(backend: { open: () => Promise<OpenedStore> }): { store: Store; other: Store } {
  const opened = {} as { store: Store; other: Store }
  let cleanup: () => Promise<void>
  before(async () => {
    const first = await backend.open()
    cleanup = first.cleanup
    Object.assign(opened, { store: first.store, other: await first.reopen() })
  })
  after(async () => {
    await opened.other?.close()
    await opened.store?.close()
    await cleanup?.()
  })
  return opened
}

/** The real server on each storage backend, for behaviour that storage is part of; `close` also drops the database. */
export const gatewayBackends: { name: string; start: (options?: GatewayOptions) => Promise<TestGateway> }[] = [
  { name: 'SQLite', start: (options = {}) => startGateway(options) },
  {
    name: 'PostgreSQL',
    async start(options = {}) {
      const database = await createTestDatabase()
      const gw = await startGateway({ ...options, databaseUrl: database.url })
      return {
        ...gw,
        async close() {
          await gw.close()
          await database.drop()
        },
      }
    },
  },
]
