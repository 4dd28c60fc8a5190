import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { hashingThreads } from '../../src/directory/passwords.ts'
import { ADMIN_PASSWORD, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A username no account has must cost what a wrong password costs, or the time of the answer tells which names
 * exist: one argon2id verification each, from the process's very first such check (the only one in this file).
 */
describe('a check for a username no account has', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  /** The argon2id runs (hashes and verifications) one basic-authenticated request made, and its status. */
  async function cost(username: string, password: string): Promise<{ status: number; runs: number }> {
    const before = hashingThreads.hashed
    const answer = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })
    return { status: answer.status, runs: hashingThreads.hashed - before }
  }

  it('runs argon2id once, as a wrong password does, the first one in the process too', async () => {
    assert.deepEqual(await cost('nobody', 'a-wrong-password'), { status: 401, runs: 1 }, 'the first unknown username')
    assert.deepEqual(await cost('admin', 'a-wrong-password'), { status: 401, runs: 1 }, 'a wrong password')
    assert.deepEqual(await cost('nobody-else', 'a-wrong-password'), { status: 401, runs: 1 }, 'a later unknown username')
    assert.deepEqual(await cost('admin', ADMIN_PASSWORD), { status: 200, runs: 1 }, 'the right password')
  })
})
