import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { startGateway, type GatewayOptions, type TestGateway } from './gateway.ts'

/** The PostgreSQL server the tests use (CI has one at 127.0.0.1:5432, trust auth). */
export const POSTGRES_ADMIN_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** How the databases the tests make are named: runs that share one server may tell theirs apart (GATEHOUSE_TEST_DATABASE_PREFIX). */
const DATABASE_PREFIX = process.env.GATEHOUSE_TEST_DATABASE_PREFIX || 'gatehouse_test_'
// Written into the statements that create and drop them, unquoted.
if (!/^[a-z_][a-z0-9_]{0,40}$/.test(DATABASE_PREFIX)) throw new Error(`GATEHOUSE_TEST_DATABASE_PREFIX must be lower-case letters, digits and "_", got "${DATABASE_PREFIX}"`)

/** A fresh, empty database for one test file; dropped by the returned function. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${DATABASE_PREFIX}${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(POSTGRES_ADMIN_URL)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

/** A gateway on `backend`: SQLite in a directory of its own, or a fresh PostgreSQL database that closing it drops. */
export async function startGatewayOn(backend: 'sqlite' | 'postgres', options: GatewayOptions = {}): Promise<TestGateway> {
  if (backend === 'sqlite') return startGateway(options)
  const database = await createTestDatabase()
  try {
    const gw = await startGateway({ ...options, databaseUrl: database.url })
    return { ...gw, close: async () => { await gw.close(); await database.drop() } }
  } catch (error) {
    await database.drop()
    throw error
  }
}
