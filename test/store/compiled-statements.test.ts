import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DummyDriver, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from 'kysely'
import { CompiledStatements } from '../../src/store/compiled-statements.ts'
import { Kysely } from '../../src/store/kysely.ts'

interface Tables {
  users: { id: number; username: string; last_login: number | null; password_hash: string | null }
}

/** Compiles queries as the SQLite backend does, and runs none. */
const db = new Kysely<Tables>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (kysely) => new SqliteIntrospector(kysely),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
})

describe('compiled statements', () => {
  it('builds a shape once and reuses its SQL with the values given later', () => {
    const statements = new CompiledStatements()
    let built = 0
    const byName = (username: string) => statements.compiled('byName', [username], () => {
      built++
      return db.selectFrom('users').selectAll().where('username', '=', username)
    })
    const first = byName('ada')
    const second = byName('grace')
    assert.equal(built, 1)
    assert.equal(second.sql, first.sql)
    assert.deepEqual(second.parameters, ['grace'])
  })

  it('keeps apart shapes whose SQL differs, such as a value compared with null', () => {
    const statements = new CompiledStatements()
    const recordLogin = (at: number, id: number, hash: string | null) =>
      statements.compiled(hash === null ? 'recordLogin:no-hash' : 'recordLogin', hash === null ? [at, id] : [at, id, hash],
        () => db.updateTable('users').set({ last_login: at }).where('id', '=', id)
          .where((eb) => hash === null ? eb('password_hash', 'is', null) : eb('password_hash', '=', hash)).returningAll())
    recordLogin(1, 7, 'h1')
    const withHash = recordLogin(2, 8, 'h2')
    const withoutHash = recordLogin(3, 9, null)
    assert.deepEqual(withHash.parameters, [2, 8, 'h2'])
    assert.match(withHash.sql, /"password_hash" = \?/)
    assert.deepEqual(withoutHash.parameters, [3, 9])
    assert.match(withoutHash.sql, /"password_hash" is null/)
  })

  it('builds every time a shape whose compiled parameters are not the ones given', () => {
    const statements = new CompiledStatements()
    let built = 0
    // Given in another order than the query takes them: its SQL is never reused with them.
    const swapped = (id: number, username: string) => statements.compiled('swapped', [username, id], () => {
      built++
      return db.selectFrom('users').selectAll().where('id', '=', id).where('username', '=', username)
    })
    swapped(1, 'ada')
    const second = swapped(2, 'grace')
    assert.equal(built, 2)
    assert.deepEqual(second.parameters, [2, 'grace'])
  })
})
