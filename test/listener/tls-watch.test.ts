import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { it } from 'node:test'
import { watchFiles } from '../../src/listener/tls.ts'
import { tempDir } from '../helpers/gateway.ts'

/** Writes `file` every 100 ms for `ms`: something appending to a file named as a certificate. */
async function keepWriting(file: string, ms: number): Promise<void> {
  const end = performance.now() + ms
  for (let n = 0; performance.now() < end; n++) {
    writeFileSync(file, `line ${n} ${performance.now()}\n`)
    await sleep(100)
  }
}

/** The events with repeats in a row left out. */
const kinds = (events: readonly string[]) => events.filter((event, i) => event !== events[i - 1])

it('files that never settle are said to keep changing once, and again only after they settled in between', async () => {
  const file = join(tempDir('tls-watch-'), 'cert.pem')
  writeFileSync(file, 'first\n')
  const events: string[] = []
  const stop = watchFiles([file], () => events.push('changed'), () => events.push('unsettled'), { settledMs: 1000, unsettledAfterMs: 2500 })
  try {
    await keepWriting(file, 4500)
    assert.deepEqual(events, ['unsettled'], 'files changing for longer than the bound are reported once, and not taken')
    await sleep(3500)
    // The poll can see the last write's time after the files were taken, and take them again.
    assert.deepEqual(kinds(events), ['unsettled', 'changed'], 'once left alone they are taken')
    await keepWriting(file, 4500)
    await sleep(3500)
    assert.deepEqual(kinds(events), ['unsettled', 'changed', 'unsettled', 'changed'])
  } finally {
    stop()
  }
})

it('files changed once are taken without being said to keep changing', async () => {
  const file = join(tempDir('tls-watch-'), 'cert.pem')
  writeFileSync(file, 'first\n')
  const events: string[] = []
  const stop = watchFiles([file], () => events.push('changed'), () => events.push('unsettled'), { settledMs: 1000, unsettledAfterMs: 2500 })
  try {
    await sleep(100)
    writeFileSync(file, 'second\n')
    await sleep(3000)
    assert.deepEqual(kinds(events), ['changed'])
  } finally {
    stop()
  }
})
