import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { prettyLogStream } from '../../src/logging/pretty.ts'

/** The lines `prettyLogStream` writes for these log objects, uncoloured. */
function pretty(...lines: object[]): string[] {
  let written = ''
  const stream = prettyLogStream({ write: (text: string) => { written += text; return true } } as unknown as NodeJS.WritableStream, false)
  for (const line of lines) stream.write(JSON.stringify({ level: 30, time: 0, msg: 'request', ...line }) + '\n')
  return written.trimEnd().split('\n')
}

describe('request lines for people', () => {
  it('shows the request as one sentence, and says when its answer did not reach the client whole', () => {
    const request = { method: 'GET', path: '/rec/x', ms: 3, service: 'rec', user: 'alice', auth: 'basic' }
    const [whole, left, cut] = pretty(
      { ...request, status: 200 },
      { ...request, status: 499, incomplete: true },
      { ...request, status: 444, incomplete: true, closed_by: 'gateway' },
    )
    assert.match(whole!, /GET \/rec\/x 200 3 ms → rec · alice \(basic\)$/)
    assert.match(left!, /GET \/rec\/x 499 \(incomplete\) 3 ms → rec · alice \(basic\)$/)
    assert.match(cut!, /GET \/rec\/x 444 \(cut by the gateway\) 3 ms → rec · alice \(basic\)$/)
  })

  it('says why a head refused as it arrived has no method or path', () => {
    const [unread] = pretty({ status: 408, ms: 0, service: 'gateway', place: 'gateway', code: 'request_timeout' })
    assert.match(unread!, /\(head not read: request_timeout\) 408 0 ms → gateway · anonymous$/)
  })
})
