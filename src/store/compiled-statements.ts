import type { Compilable } from 'kysely'
import { CompiledQuery } from './kysely.ts'

/**
 * Statements a hot path runs, each compiled once: Kysely builds and compiles a query's tree on every call, which
 * cost a refresh more than SQLite's own work on its rows (src/store/oidc.ts), and a password grant a few percent of
 * its event loop's work (src/store/users.ts). The SQL of these depends on their shape only (an insert's, on how many
 * rows it writes), never on their values: a shape's first query is compiled with its real values, and its SQL reused
 * only if those came out as exactly the parameters given, in that order.
 */
export class CompiledStatements {
  /** By shape: the SQL, or null when the compiled parameters were not the ones given (then it is always built). */
  readonly #sql = new Map<string, string | null>()

  compiled<R>(shape: string, parameters: readonly unknown[], build: () => Compilable<R>): CompiledQuery<R> {
    const sql = this.#sql.get(shape)
    if (sql) return CompiledQuery.raw(sql, [...parameters]) as CompiledQuery<R>
    const query = build().compile()
    if (sql === undefined) this.#sql.set(shape, sameParameters(query.parameters, parameters) ? query.sql : null)
    return query
  }
}

function sameParameters(compiled: readonly unknown[], given: readonly unknown[]): boolean {
  return compiled.length === given.length && compiled.every((value, i) => value === given[i])
}
