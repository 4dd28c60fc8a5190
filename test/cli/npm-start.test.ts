import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../helpers/free-port.ts'
import { repoRoot, tempDir } from '../helpers/gateway.ts'

/** Whether anything accepts a connection on the port now. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

/**
 * `npm start` as a process manager runs it (a container's command, a systemd unit): the manager stops it with SIGTERM
 * to npm, which hands the signal on to its script's process. The gateway is that process, not a child of a shell npm
 * started (which would die of the signal and leave the gateway running, still holding the port, never drained).
 */
describe('npm start', () => {
  it('stops the gateway when npm is sent SIGTERM', async () => {
    const dir = tempDir()
    const port = await freePort()
    const npm = spawn('npm', ['start', '--', '--port', String(port), '--data-dir', join(dir, 'data'), '--log-format', 'json'], {
      cwd: repoRoot,
      env: { ...process.env, GATEHOUSE_ADMIN_PASSWORD: 'npm-start-admin-passphrase' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    npm.stdout.on('data', (chunk) => (output += chunk))
    npm.stderr.on('data', (chunk) => (output += chunk))
    try {
      for (let waited = 0; !output.includes('"msg":"started"'); waited += 100) {
        assert.ok(waited < 30_000, `not started: ${output}`)
        await sleep(100)
      }
      assert.equal(await listening(port), true)
      npm.kill('SIGTERM')
      await once(npm, 'exit')
      for (let waited = 0; await listening(port); waited += 100) {
        assert.ok(waited < 10_000, `still listening 10 s after npm was stopped: ${output}`)
        await sleep(100)
      }
      assert.match(output, /"msg":"stopped"/, 'drained and stopped, not killed')
    } finally {
      npm.kill('SIGKILL')
      // A gateway left behind (the failure this looks for) is found by its data directory, unique to this test.
      spawnSync('pkill', ['-KILL', '-f', join(dir, 'data')])
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
