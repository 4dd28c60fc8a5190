/** The most rows one statement of a prune deletes: a few milliseconds of SQLite's time on this scale of machine. */
export const PRUNE_BATCH_ROWS = 2000

/**
 * Deletes what `deleteBatch` finds, at most `limit` rows a statement, letting other work run between statements,
 * until a statement deletes fewer: SQLite runs on the event loop, so one statement deleting a few hundred thousand
 * expired rows (a busy hour's tokens) held every request of the process for a second, and on PostgreSQL it held
 * its locks as long. Answers how many rows went.
 */
export async function deleteInBatches(deleteBatch: (limit: number) => Promise<number>, limit = PRUNE_BATCH_ROWS): Promise<number> {
  let deleted = 0
  for (;;) {
    const batch = await deleteBatch(limit)
    deleted += batch
    if (batch < limit) return deleted
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}
