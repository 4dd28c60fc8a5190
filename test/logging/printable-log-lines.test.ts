import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { prettyLogStream } from '../../src/logging/pretty.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** What a terminal acts on rather than shows: C1 controls (U+009B starts an escape sequence), DEL, the bidirectional overrides and isolates, the line and paragraph separators. */
const ACTING = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/
/** Text a directory entry or a provider could hold and the log repeats (an e-mail address, a reason). */
const HOSTILE = 'eve\u009b2J\u001b]0;owned\u0007\u202egnp.exe\u2028fake line\u007f'

describe('log lines hold no character a terminal would act on', () => {
  let gateway: TestGateway
  const lines: string[] = []
  before(async () => {
    gateway = await startGateway({ rawLogLines: lines, logLevel: 'warn' })
  })
  after(() => gateway.close())

  it('writes each such character of a JSON line as its escape, which reads back as the same text', () => {
    gateway.server.log.warn({ email: HOSTILE }, 'directory address not stored')
    const line = lines.find((written) => written.includes('directory address not stored'))
    assert.ok(line, 'the line was written')
    assert.doesNotMatch(line, ACTING)
    assert.match(line, /eve\\u009b2J\\u001b\]0;owned\\u0007\\u202egnp\.exe\\u2028fake line\\u007f/)
    assert.equal(JSON.parse(line).email, HOSTILE)
    assert.equal(line.split('\n').length, 2, 'one line, ended')
  })

  it('writes them escaped in the readable lines too, but for the line feeds that lay out a stack trace', () => {
    let written = ''
    const stream = prettyLogStream({ write: (text: string) => { written += text; return true } } as unknown as NodeJS.WritableStream, false)
    stream.write(JSON.stringify({ level: 40, time: 0, msg: `about ${HOSTILE}`, email: HOSTILE, err: { stack: 'Error: x\n    at here' } }) + '\n')
    assert.doesNotMatch(written, ACTING)
    assert.doesNotMatch(written, /[\u0000-\u0008\u000b-\u001f]/)
    assert.match(written, /about eve\\u009b2J\\u001b\]0;owned\\u0007\\u202egnp\.exe\\u2028fake line\\u007f/)
    assert.match(written, /Error: x\n\s+at here/)
  })
})
