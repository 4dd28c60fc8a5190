import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { runCli, tempDir } from '../helpers/gateway.ts'

/** A service, and a comment whose letter outside ASCII (é) is one byte in Latin-1, two in UTF-8. */
const SERVICE = '# Café\nservices:\n  - name: echo\n    prefix: /echo/\n    upstream: http://127.0.0.1:9\n'

describe('the text of a configuration file', () => {
  const dir = tempDir()
  after(() => rmSync(dir, { recursive: true, force: true }))
  const check = (name: string, content: string | Buffer) => {
    const file = join(dir, name)
    writeFileSync(file, content)
    return { file, result: runCli(['config', 'check', file]) }
  }

  it('refuses a file that is not UTF-8, Latin-1 or UTF-16, rather than read its letters as U+FFFD, and reads one with a byte-order mark', async () => {
    for (const [bytes, said] of [
      [Buffer.from(SERVICE, 'latin1'), ''],
      [Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(SERVICE, 'utf16le')]), ' (it is UTF-16)'],
    ] as const) {
      const { file, result } = check('encoded.yaml', bytes)
      const refused = await result
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr, `gatehouse: ${file}: not UTF-8${said}: save it as UTF-8\n`)
      assert.equal(refused.stdout, '')
    }
    const withMark = await check('marked.yaml', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(SERVICE)])).result
    assert.equal(withMark.code, 0, withMark.stderr)
    assert.match(withMark.stdout, /OK \(1 service: echo\)/)
  })
})
