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

  it('refuses a file nested deeper than 64 levels, in one line with where, however deep, and takes 64', async () => {
    const deep = 100_000
    for (const [name, text, at] of [
      ['flow.yaml', `services: ${'['.repeat(deep)}${']'.repeat(deep)}\n`, 'line 1, column 74'],
      ['block.yaml', `services:\n  - ${'- '.repeat(deep)}x\n`, 'line 2, column 129'],
      ['mapping.yaml', Array.from({ length: 70 }, (_, i) => `${' '.repeat(i)}k${i}:\n`).join('') + `${' '.repeat(70)}x\n`, 'line 65, column 65'],
    ] as const) {
      const { file, result } = check(name, text)
      const refused = await result
      assert.equal(refused.code, 2, refused.stderr.slice(0, 300))
      assert.equal(refused.stderr, `gatehouse: ${file}: YAML, ${at}: nested more than 64 levels deep; a configuration needs a few\n`)
    }
    const deepest = await check('deepest.yaml', `x-deep: ${'['.repeat(63)}${']'.repeat(63)}\n${SERVICE}`).result
    assert.equal(deepest.code, 0, deepest.stderr)
  })

  it('refuses aliases that nest values deeper than 64 levels, in one pass however often each is repeated', { timeout: 60_000 }, async () => {
    const chain = Array.from({ length: 2_000 }, (_, i) => `x-${i}: &a${i} [${i ? `*a${i - 1}, *a${i - 1}` : '1'}]\n`).join('')
    const { file, result } = check('aliases.yaml', chain + SERVICE)
    const started = Date.now()
    const refused = await result
    assert.equal(refused.code, 2, refused.stderr.slice(0, 300))
    assert.equal(refused.stderr, `gatehouse: ${file}: nested more than 64 levels deep, counting what its aliases (*name) repeat; a configuration needs a few\n`)
    assert.ok(Date.now() - started < 20_000)
    const shallow = await check('shallow.yaml', `x-defaults: &defaults\n  prefix: /echo/\n  upstream: http://127.0.0.1:9\nservices:\n  - name: one\n    <<: *defaults\n`).result
    assert.equal(shallow.code, 0, shallow.stderr)
  })
})
