import { pbkdf2Sync } from 'node:crypto'
import type { GatehouseMigration } from './helpers.ts'

const BATCH = 200

/** The key of a user code as src/oidc/record-keys.ts `userCodeKey` derived it when this migration was written. */
function userCodeKey(userCode: string): string {
  const normalised = userCode.replace(/[^A-Za-z0-9_]/g, '').replace(/[a-z]/g, (letter) => letter.toUpperCase())
  return pbkdf2Sync(normalised, 'gatehouse device user code', 10_000, 32, 'sha256').toString('base64url')
}

/**
 * A device code is found by its user code under a key derived from it (src/oidc/record-keys.ts `userCodeKey`), and its
 * payload no longer holds the code: whoever reads the database cannot type a pending one in. The device codes kept
 * before are rewritten so, and a device login under way goes on. There are few: a device code lasts minutes.
 */
export const oidcUserCodeKeys: GatehouseMigration = {
  async up(db) {
    // Expired codes can no longer be typed in: removed now (the sweep would soon) rather than each given a key at
    // the cost of a derivation (milliseconds) while the start waits. A minute's margin for this machine's clock
    // against the database's, which the gateway's clock follows.
    await db.deleteFrom('oidc_records').where('model', '=', 'DeviceCode').where('expires_at', 'is not', null)
      .where('expires_at', '<', Date.now() - 60_000).execute()
    // A batch at a time, in the order of their keys, which the rewrite leaves as they are.
    for (let after = ''; ;) {
      const rows: { id: string; payload: string; user_code: string | null }[] = await db.selectFrom('oidc_records')
        .select(['id', 'payload', 'user_code']).where('model', '=', 'DeviceCode').where('id', '>', after).orderBy('id').limit(BATCH).execute()
      for (const row of rows) {
        const { userCode, ...payload } = JSON.parse(row.payload) as Record<string, unknown>
        const typed = typeof userCode === 'string' ? userCode : row.user_code
        await db.updateTable('oidc_records').set({ payload: JSON.stringify(payload), user_code: typed === null ? null : userCodeKey(typed) })
          .where('model', '=', 'DeviceCode').where('id', '=', row.id).execute()
      }
      if (rows.length < BATCH) break
      after = rows.at(-1)!.id
    }
  },
}
