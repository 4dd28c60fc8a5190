import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Kysely, SqliteDialect } from 'kysely'
import { sqliteFile } from '../../src/store/database.ts'
import type { Condition, ListFilter, Lookup } from '../../src/store/list-filter.ts'
import type { Tables } from '../../src/store/schema.ts'
import { NodeSqliteDatabase } from '../../src/store/sqlite-driver.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { UserRepository } from '../../src/store/users.ts'
import { tempDir } from '../helpers/gateway.ts'

/**
 * The lookups that ignore case (`iexact`, `icontains`, `istartswith`, `iendswith`, `search`) on SQLite, whose lower()
 * is a JavaScript function: it is called only for values that are not ASCII, and what matches is what JavaScript's
 * toLowerCase() on both sides would match, a value of ASCII or not.
 */
describe('lookups that ignore case on SQLite', () => {
  const dir = tempDir()
  let store: Store
  let sqlite: NodeSqliteDatabase
  let users: UserRepository
  let lowerCalls = 0
  // Last names: ASCII in every case, LIKE's own wildcards as text, and values lower() changes beyond ASCII (the
  // Kelvin sign lowers to an ASCII k, a dotted capital I to two characters).
  const lastNames = ['ADA', 'ada', 'Ada Lovelace', 'Grace', '100%_sure', '100 sure', 'Übersee', 'ÜBERSEE', 'ÅNGSTRÖM', 'KELVIN', 'İstanbul', 'Σίσυφος']
  const asciiUsers = 200

  before(async () => {
    store = await openStore({ dataDir: dir })
    for (const [i, lastName] of lastNames.entries()) await store.users.create({ username: `named-${i}`, lastName })
    for (let i = 0; i < asciiUsers; i++) await store.users.create({ username: `plain-${i}`, lastName: `Plain Person ${i}` })
    // A second connection to the file, whose lower() counts its calls (and lowers as the gateway's does).
    sqlite = new NodeSqliteDatabase(sqliteFile(dir), 0)
    sqlite.raw.function('lower', { deterministic: true }, (value) => {
      lowerCalls++
      return typeof value === 'string' ? value.toLowerCase() : value
    })
    users = new UserRepository(new Kysely<Tables>({ dialect: new SqliteDialect({ database: sqlite }) }), 'sqlite')
  })
  after(async () => {
    sqlite.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const lastNamesFound = async (filter: Partial<ListFilter>) => {
    const { users: page } = await users.list({ offset: 0, limit: 500, filter: { all: [], any: [], search: [], order: [], ...filter } })
    return page.map((user) => user.lastName).filter((name) => !name.startsWith('Plain Person')).sort()
  }
  const matches: Record<string, (value: string, text: string) => boolean> = {
    iexact: (value, text) => value === text,
    icontains: (value, text) => value.includes(text),
    istartswith: (value, text) => value.startsWith(text),
    iendswith: (value, text) => value.endsWith(text),
  }
  const expected = (lookup: string, text: string) =>
    lastNames.filter((name) => matches[lookup]!(name.toLowerCase(), text.toLowerCase())).sort()

  it('finds what toLowerCase() on both sides finds, ASCII or not', async () => {
    const texts = ['ada', 'ADA', 'aDa lOVE', 'lovelace', 'RACE', '%', '_', '0%_S', '0 s', 'übersee', 'BERS', 'åNGSTRÖ', 'k', 'kelvin', 'i̇stanbul', 'σίσυφοσ', 'ΣΊΣΥΦΟΣ', 'zzz']
    for (const lookup of Object.keys(matches) as Lookup[]) {
      for (const text of texts) {
        const condition: Condition = { field: 'last_name', lookup, value: text, negate: false }
        assert.deepEqual(await lastNamesFound({ all: [condition] }), expected(lookup, text), `last_name__${lookup}=${text}`)
      }
    }
    for (const term of ['ADA', 'übers', '%_', 'ö']) assert.deepEqual(await lastNamesFound({ search: [term] }), expected('icontains', term), `search=${term}`)
  })

  it('calls lower() only for the values that are not ASCII', async () => {
    const nonAscii = lastNames.filter((name) => /[^\x00-\x7f]/.test(name)).length
    const conditions = ['a', 'b', 'c', 'd'].map((text): Condition => ({ field: 'last_name', lookup: 'icontains', value: text, negate: false }))
    lowerCalls = 0
    await lastNamesFound({ any: conditions })
    // Each condition of each row not ASCII, at most: every one of the 200 ASCII rows compared without a call.
    assert.ok(lowerCalls > 0, 'the values that are not ASCII are lowered')
    assert.ok(lowerCalls <= nonAscii * conditions.length, `${lowerCalls} calls of lower() for ${nonAscii} values that are not ASCII`)
    lowerCalls = 0
    await lastNamesFound({ all: [{ field: 'last_name', lookup: 'iexact', value: 'ADA', negate: false }], search: ['ada'] })
    assert.ok(lowerCalls <= nonAscii * 5, `${lowerCalls} calls of lower() for an iexact and a search over four fields`)
  })
})
