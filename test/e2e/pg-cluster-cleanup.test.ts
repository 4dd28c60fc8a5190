import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'

const helper = new URL('../helpers/pg-cluster.ts', import.meta.url).pathname

describe('a throwaway PostgreSQL cluster of a test file that is killed before it destroys it', () => {
  it('is stopped, though frozen, and its files deleted, once the file\'s process is gone', async () => {
    // A test file's process starts a cluster, freezes it, and is killed (a timeout, a crash) without destroying it.
    const script = `const { startPgCluster } = await import(${JSON.stringify(helper)}); const c = await startPgCluster(); c.freeze(); console.log(JSON.stringify({ port: c.port })); process.kill(process.pid, 'SIGKILL')`
    let printed = ''
    try {
      execFileSync(process.execPath, ['--input-type=module', '--eval', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    } catch (error) {
      printed = String((error as { stdout?: unknown }).stdout)
    }
    const { port } = JSON.parse(printed) as { port: number }
    // The postmaster's command line, while it runs: it names the cluster's directory (-k, its sockets').
    const postmaster = () => {
      try {
        return execFileSync('pgrep', ['-a', '-f', `postgres -D .* -p ${port} `], { encoding: 'utf8' }).trim()
      } catch {
        return ''
      }
    }
    const dir = / -k (\S+) /.exec(postmaster())?.[1]
    assert.ok(dir && existsSync(dir), `the cluster ran when its test file was killed: ${postmaster()}`)
    try {
      const deadline = performance.now() + 30_000
      while ((postmaster() !== '' || existsSync(dir)) && performance.now() < deadline) await sleep(200)
      assert.equal(postmaster(), '', 'the cluster stopped')
      assert.equal(existsSync(dir), false, 'its files deleted')
    } finally {
      // Left running (the assertions failed): stopped here, so that a failure leaves nothing behind either.
      const pid = /^(\d+) /.exec(postmaster())?.[1]
      if (pid) {
        execFileSync('sh', ['-c', 'kill -CONT "$1" $(pgrep -P "$1") 2>/dev/null; kill -QUIT "$1"', 'sh', pid])
        while (postmaster() !== '') await sleep(200)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
