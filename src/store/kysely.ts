import { createRequire } from 'node:module'
import type * as KyselyModule from 'kysely'

/**
 * kysely's values, from its CommonJS build. kysely is some 260 files, and Node's ESM loader costs more per file than
 * its CommonJS one: the same code loads in about two thirds of the time (some 40 ms of every start). Import values
 * from here and types from 'kysely'; one copy of kysely is loaded either way.
 */
const kysely = createRequire(import.meta.url)('kysely') as typeof KyselyModule

export const { CompiledQuery, Kysely, Migrator, PostgresDialect, SqliteDialect, sql } = kysely
// The two that are types too keep their type meaning.
export type CompiledQuery<O = unknown> = KyselyModule.CompiledQuery<O>
export type Kysely<DB> = KyselyModule.Kysely<DB>
