import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { it } from 'node:test'
import { watchFiles } from '../../src/listener/tls.ts'
import { tempDir } from '../helpers/gateway.ts'

/**
 * Writes `file` every 100 ms, something appending to a file named as a certificate, until `done` says so or `ms` pass:
 * the caller then checks what `done` waited for, so no margin of a busy machine's timing decides the outcome.
 */
async function keepWriting(file: string, done: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms
  for (let n = 0; !done() && performance.now() < end; n++) {
    writeFileSync(file, `line ${n} ${performance.now()}\n`)
    await sleep(100)
  }
}

/** Waits until `done` says so, or `ms` pass. */
async function waitFor(done: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms
  while (!done() && performance.now() < end) await sleep(50)
}

/** The events with repeats in a row left out. */
const kinds = (events: readonly string[]) => events.filter((event, i) => event !== events[i - 1])

it('files that never settle are said to keep changing once, and again only after they settled in between', async () => {
  const file = join(tempDir('tls-watch-'), 'cert.pem')
  writeFileSync(file, 'first\n')
  const events: string[] = []
  const stop = watchFiles([file], () => events.push('changed'), () => events.push('unsettled'), { settledMs: 1000, unsettledAfterMs: 2500 })
  const count = (kind: string) => events.filter((event) => event === kind).length
  try {
    const started = performance.now()
    await keepWriting(file, () => count('unsettled') > 0, 15_000)
    const ms = performance.now() - started
    assert.deepEqual(events, ['unsettled'], 'files changing for longer than the bound are reported once, and not taken')
    assert.ok(ms >= 2500, `reported after ${Math.round(ms)} ms of changes, not before the bound`)
    // Still changing: not reported again, not taken.
    await keepWriting(file, () => false, 2500)
    assert.deepEqual(events, ['unsettled'], 'reported once while they keep changing')
    await waitFor(() => count('changed') > 0, 10_000)
    // The poll can see the last write's time after the files were taken, and take them again.
    assert.deepEqual(kinds(events), ['unsettled', 'changed'], 'once left alone they are taken')
    await keepWriting(file, () => count('unsettled') > 1, 15_000)
    await waitFor(() => kinds(events).length > 3, 10_000)
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
    await waitFor(() => events.length > 0, 10_000)
    assert.deepEqual(kinds(events), ['changed'])
  } finally {
    stop()
  }
})
