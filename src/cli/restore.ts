import { chmodSync, closeSync, constants, copyFileSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Command } from 'commander'
import { addStorageOptions, resolveConfig, UsageError, type StorageOptions } from './common.ts'
import { sqliteFile } from '../store/database.ts'

/**
 * How recently a process must have said it was alive (every second, src/store/event-bus.ts) to count as serving: a
 * process stopped just now, or killed, stops counting within this long.
 */
const ALIVE_MS = 5_000

export function restoreCommand(): Command {
  return addStorageOptions(new Command('restore')
    .description('put a backup made by `backup` in place of the SQLite database, once no process serves it (PostgreSQL: use pg_restore)')
    .argument('<file>', 'the backup to restore; it is copied, not moved'))
    .action(async (file: string, options: StorageOptions) => {
      const config = resolveConfig(options)
      if (config.storage.database) throw new UsageError('restore puts back a SQLite backup; restore PostgreSQL with pg_restore (README: Backups)')
      const backup = resolve(file)
      const target = sqliteFile(config.storage.data_dir)
      checkBackup(backup)
      if (existsSync(target)) refuseWhileServed(target)
      const keptAs = restore(backup, target)
      process.stdout.write(`restored ${backup} to sqlite:${target}\n`)
      if (keptAs) process.stderr.write(`the database it replaced is kept as ${keptAs}; delete it once the restored one serves as it should\n`)
    })
}

/** A backup is a whole SQLite database of Gatehouse's: anything else would stop every command after it is in place. */
function checkBackup(backup: string): void {
  const stats = lstatSync(backup, { throwIfNoEntry: false })
  if (!stats?.isFile()) throw new UsageError(`${backup} ${stats ? 'is not a regular file' : 'does not exist'}`)
  let sqlite: DatabaseSync | undefined
  try {
    sqlite = new DatabaseSync(backup, { readOnly: true })
    const [check] = sqlite.prepare('PRAGMA quick_check(1)').all() as { quick_check: string }[]
    if (check?.quick_check !== 'ok') throw new UsageError(`${backup} is damaged (SQLite's check says: ${String(check?.quick_check).slice(0, 200)}); restore another backup`)
    if (!sqlite.prepare(`select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'`).get()) {
      throw new UsageError(`${backup} is a SQLite database, but not one of Gatehouse (it has no migrations table)`)
    }
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError(`${backup} is not a SQLite database Gatehouse can restore (${(error as Error).message.split('\n')[0]})`)
  } finally {
    sqlite?.close()
  }
}

/**
 * A process serving the database would go on writing into its WAL, laid over the restored file (or into the file it
 * has open, which no later start finds): the restore waits for every process to stop. Each says it is alive every
 * second, in the database itself.
 */
function refuseWhileServed(target: string): void {
  let sqlite: DatabaseSync | undefined
  let serving = 0
  try {
    sqlite = new DatabaseSync(target, { readOnly: true })
    const row = sqlite.prepare('select count(*) as n from gateway_processes where heartbeat_at > ?').get(Date.now() - ALIVE_MS) as { n: number } | undefined
    serving = Number(row?.n ?? 0)
  } catch {
    // A database too damaged to say, or without Gatehouse's tables: nothing serves it, which is why it is restored.
  } finally {
    sqlite?.close()
  }
  if (serving) {
    throw new UsageError(`${serving} gateway process${serving === 1 ? ' is' : 'es are'} serving sqlite:${target}; stop ${serving === 1 ? 'it' : 'them'} first (a process stopped within the last ${ALIVE_MS / 1000} s still counts)`)
  }
}

/**
 * Copies the backup beside the database, flushed, then moves the database and its WAL aside and the copy into its
 * place: at every moment the data directory holds either the old database whole or the restored one, and the old
 * one is kept (answered) rather than deleted.
 */
function restore(backup: string, target: string): string | undefined {
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 })
  const copy = `${target}.restoring-${process.pid}`
  rmSync(copy, { force: true })
  copyFileSync(backup, copy, constants.COPYFILE_EXCL)
  chmodSync(copy, 0o600)
  const fd = openSync(copy, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  let keptAs: string | undefined
  if (existsSync(target)) {
    keptAs = `${target}.before-restore-${new Date().toISOString().replaceAll(':', '-')}`
    renameSync(target, keptAs)
  }
  // The old WAL belongs to the old database: laid over the restored one, it would bring back what the restore undoes.
  for (const suffix of ['-wal', '-shm']) {
    if (!existsSync(target + suffix)) continue
    if (keptAs) renameSync(target + suffix, keptAs + suffix)
    else rmSync(target + suffix)
  }
  renameSync(copy, target)
  return keptAs
}
