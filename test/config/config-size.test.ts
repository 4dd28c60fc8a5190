import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigError, loadConfigFile } from '../../src/config/load.ts'
import { repoRoot, runCli, tempDir } from '../helpers/gateway.ts'

const LIMIT = /larger than 1 MiB/

/** Runs the CLI from bash, so that a file may be a process substitution (`<(...)`): a pipe. */
function runInBash(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { env: { ...process.env, GATEHOUSE: join(repoRoot, 'bin/gatehouse') } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

describe('the size of a configuration file', () => {
  it('refuses a file larger than 1 MiB, naming the file and the limit', () => {
    const file = join(tempDir(), 'huge.yaml')
    writeFileSync(file, '')
    truncateSync(file, 2 * 1024 * 1024)
    assert.throws(() => loadConfigFile(file), (error: unknown) => error instanceof ConfigError && error.message.startsWith(`${file}: `) && LIMIT.test(error.problems[0]!))
  })

  it('still reads a file of just under 1 MiB', () => {
    const file = join(tempDir(), 'large.yaml')
    const comment = '# ' + 'x'.repeat(1021) + '\n'
    writeFileSync(file, comment.repeat(1023) + 'server:\n  port: 9999\n')
    assert.equal(loadConfigFile(file).server.port, 9999)
  })

  it('config check and serve stop at once on /dev/zero, with status 2', async () => {
    const started = Date.now()
    for (const args of [['config', 'check', '/dev/zero'], ['serve', '--port', '0', '--config', '/dev/zero', '--data-dir', join(tempDir(), 'data')]]) {
      const result = await runCli(args)
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, /^gatehouse: \/dev\/zero: .*larger than 1 MiB/)
      assert.equal(result.stderr.split('\n').length, 2)
    }
    assert.ok(Date.now() - started < 30_000)
  })

  it('reads a configuration given as a pipe (process substitution), and refuses one that goes on past the limit', async () => {
    const read = await runInBash(`"$GATEHOUSE" config check <(printf 'services:\\n  - name: echo\\n    prefix: /echo/\\n    upstream: http://127.0.0.1:9\\n')`)
    assert.equal(read.code, 0, read.stderr)
    assert.match(read.stdout, /: OK \(1 service: echo\)/)
    const endless = await runInBash(`"$GATEHOUSE" config check <(yes '# endless')`)
    assert.equal(endless.code, 2, endless.stderr)
    assert.match(endless.stderr, LIMIT)
  })
})
