import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runCli, tempDir } from '../helpers/gateway.ts'

describe('serve: metrics and audit files', () => {
  it('stops with a one-line reason and exit 2 when the metrics token file or the audit file cannot be used', async () => {
    const dir = tempDir()
    try {
      const cases: [string, RegExp][] = [
        [`metrics:\n  bearer_token_file: ${join(dir, 'missing-token')}\n`, /^gatehouse: metrics\.bearer_token_file .*missing-token: ENOENT\n$/],
        [`metrics:\n  bearer_token_file: ${join(dir, 'short-token')}\n`, /^gatehouse: metrics\.bearer_token_file .*at least 16 characters\n$/],
        [`audit:\n  output: file\n  file: ${join(dir, 'no-such-dir', 'audit.jsonl')}\n`, /^gatehouse: audit\.file .*: ENOENT\n$/],
        ['audit:\n  output: file\n', /audit\.file: name the file for output: file/],
      ]
      writeFileSync(join(dir, 'short-token'), 'short\n')
      for (const [yaml, reason] of cases) {
        const file = join(dir, 'gatehouse.yaml')
        writeFileSync(file, yaml)
        const result = await runCli(['serve', '--config', file, '--data-dir', join(dir, 'data'), '--port', '0'])
        assert.equal(result.code, 2, yaml + result.stderr)
        assert.match(result.stderr, reason)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
