import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { deleteInBatches } from '../../src/store/deletion-batches.ts'

describe('deleting in batches', () => {
  it('deletes a batch at a time until one comes back short, letting other work run between batches', async () => {
    let rows = 5000
    const asked: number[] = []
    let turns = 0
    const turnsAtEachBatch: number[] = []
    let counting = true
    const count = (): void => {
      turns++
      if (counting) setImmediate(count)
    }
    setImmediate(count)
    const deleted = await deleteInBatches(async (limit) => {
      asked.push(limit)
      turnsAtEachBatch.push(turns)
      const batch = Math.min(limit, rows)
      rows -= batch
      return batch
    }, 2000)
    counting = false
    assert.equal(deleted, 5000)
    assert.deepEqual(asked, [2000, 2000, 2000])
    // Other callbacks of the event loop ran between each two batches.
    for (let i = 1; i < turnsAtEachBatch.length; i++) assert.ok(turnsAtEachBatch[i]! > turnsAtEachBatch[i - 1]!, `turns before each batch: ${turnsAtEachBatch}`)
  })

  it('asks again after a full batch, and stops at an empty one', async () => {
    const answers = [3, 3, 0]
    const deleted = await deleteInBatches(async () => answers.shift()!, 3)
    assert.equal(deleted, 6)
    assert.deepEqual(answers, [])
  })
})
