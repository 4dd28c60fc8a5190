import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { repoRoot, runCli, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { holdLock } from '../helpers/sqlite-lock.ts'

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

describe('serve: ports it cannot listen on', () => {
  it('stops with one line naming the setting: exit 1 for a port another process holds, 2 for an address not of this machine', async () => {
    const dir = tempDir()
    const taken: Server = createServer().listen(0, '127.0.0.1')
    try {
      await once(taken, 'listening')
      const port = (taken.address() as AddressInfo).port
      const vacated = createServer().listen(0, '127.0.0.1')
      await once(vacated, 'listening')
      const free = (vacated.address() as AddressInfo).port
      await new Promise((resolve) => vacated.close(resolve))
      const tls = selfSignedCertificate(dir, 'gateway')
      const cases: [string, string[], number, RegExp][] = [
        ['', ['--port', String(port)], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(server\\.port, EADDRINUSE\\)\\n$`)],
        ['', ['--host', '192.0.2.1'], 2, /^gatehouse: cannot listen on 192\.0\.2\.1:0: the address is not one of this machine's \(server\.host, EADDRNOTAVAIL\)\n$/],
        [`metrics:\n  port: ${port}\n`, [], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(metrics\\.port, EADDRINUSE\\)\\n$`)],
        [`server:\n  tls: { cert_file: ${tls.cert}, key_file: ${tls.key}, redirect_http_port: ${port} }\n`, [], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(server\\.tls\\.redirect_http_port, EADDRINUSE\\)\\n$`)],
        // The schema compares metrics.port with the file's server.port; --port gives another.
        [`metrics:\n  port: ${free}\n`, ['--port', String(free)], 2, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${free}: metrics\\.port names the port server\\.port listens on\\n$`)],
        // --port on the redirect's port: this start would hold it twice, which no retry mends.
        [`server:\n  tls: { cert_file: ${tls.cert}, key_file: ${tls.key}, redirect_http_port: ${free} }\n`, ['--port', String(free)], 2, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${free}: server\\.tls\\.redirect_http_port names the port server\\.port listens on\\n$`)],
      ]
      for (const [yaml, args, status, reason] of cases) {
        const file = join(dir, 'gatehouse.yaml')
        writeFileSync(file, yaml)
        const result = await runCli(['serve', '--config', file, '--data-dir', join(dir, 'data'), '--port', '0', ...args], { env: { GATEHOUSE_ADMIN_PASSWORD: 'admin-test-password' } })
        assert.equal(result.code, status, yaml + args.join(' ') + result.stderr)
        assert.match(result.stderr, reason)
        assert.equal(result.stdout, '', 'nothing says it listens')
        // Found before anything is made: no database, no superuser.
        assert.equal(existsSync(join(dir, 'data')), false, `no data directory was made (${yaml}${args.join(' ')})`)
        assert.doesNotMatch(result.stderr, /created superuser/)
        rmSync(join(dir, 'data'), { recursive: true, force: true })
      }
    } finally {
      taken.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('serve: a first start that cannot start', () => {
  it('makes no database and no superuser for a port another process holds or a secret\'s variable that is unset', async () => {
    const dir = tempDir()
    const taken: Server = createServer().listen(0, '127.0.0.1')
    try {
      await once(taken, 'listening')
      const port = (taken.address() as AddressInfo).port
      const dataDir = join(dir, 'data')
      const held = await runCli(['serve', '--data-dir', dataDir, '--port', String(port)], { env: { GATEHOUSE_ADMIN_PASSWORD: '' } })
      assert.equal(held.code, 1, held.stderr)
      assert.equal(held.stderr, `gatehouse: cannot listen on 127.0.0.1:${port}: address already in use (server.port, EADDRINUSE)\n`)
      assert.equal(existsSync(dataDir), false, 'no data directory was made')

      const file = join(dir, 'gatehouse.yaml')
      writeFileSync(file, ['ldap:', '  servers: [ldap://127.0.0.1:389]', '  bind_dn: cn=gatehouse,dc=example,dc=com', '  bind_password_env: GATEHOUSE_TEST_UNSET_BIND_PASSWORD',
        '  user_search: { base: "dc=example,dc=com" }', ''].join('\n'))
      const unset = await runCli(['serve', '--config', file, '--data-dir', dataDir, '--port', '0'], { env: { GATEHOUSE_ADMIN_PASSWORD: '', GATEHOUSE_TEST_UNSET_BIND_PASSWORD: '' } })
      assert.equal(unset.code, 2, unset.stderr)
      assert.equal(unset.stderr, 'gatehouse: ldap.bind_password_env: the environment variable GATEHOUSE_TEST_UNSET_BIND_PASSWORD is not set or empty\n')
      assert.equal(existsSync(dataDir), false, 'no data directory was made')
    } finally {
      taken.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** Whether a process has a handler of its own for SIGHUP (bit 0 of SigCgt), rather than the default, which ends it. */
function catchesHangUp(pid: number): boolean {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0'
    return (BigInt(`0x${mask}`) & 1n) === 1n
  } catch {
    return false
  }
}

describe('serve: output no one reads', () => {
  it('stops on SIGTERM once the pipe it logs to is closed (a `| head`, a log shipper that died), rather than hang', async () => {
    const dir = tempDir()
    const child = spawn(join(repoRoot, 'bin/gatehouse'), ['serve', '--demo', '--data-dir', join(dir, 'data'), '--port', '0'], {
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json', GATEHOUSE_ADMIN_PASSWORD: 'a-long-enough-admin-passphrase' },
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    try {
      let output = ''
      for await (const chunk of child.stdout!) {
        output += chunk
        if (output.includes('"msg":"started"')) break
      }
      // The loop's end closed the pipe: every line from here on fails to be written.
      assert.ok(child.stdout!.destroyed)
      child.kill('SIGTERM')
      const ended = await Promise.race([exited, sleep(8000).then(() => undefined)])
      assert.deepEqual(ended, [0, null], 'exited, with status 0')
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('serve: SIGHUP', () => {
  it('is not ended by a SIGHUP while it starts (a certificate renewal\'s hook, a terminal closed), and answers it once it listens', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const file = join(dir, 'gatehouse.yaml')
    writeFileSync(file, 'storage:\n  timeouts:\n    query_seconds: 60\n')
    assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
    // Another process holds the write lock: the start waits at its first write, long enough to be signalled there.
    const lock = await holdLock(join(data, 'gatehouse.sqlite'), 15_000)
    const child = spawn(join(repoRoot, 'bin/gatehouse'), ['serve', '--config', file, '--data-dir', data, '--port', '0'], {
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (d) => (output += d))
    child.stderr!.on('data', (d) => (output += d))
    const exited = once(child, 'exit')
    try {
      for (let i = 0; i < 200 && !catchesHangUp(child.pid!); i++) await sleep(50)
      assert.doesNotMatch(output, /listening on/, 'still starting')
      child.kill('SIGHUP')
      await lock.exited
      for (let i = 0; i < 600 && !(/SIGHUP/.test(output) && /Gatehouse listening on/.test(output)) && child.exitCode === null && child.signalCode === null; i++) await sleep(50)
      assert.equal(child.signalCode, null, `ended by the signal:\n${output}`)
      assert.equal(child.exitCode, null, output)
      assert.match(output, /Gatehouse listening on/)
      assert.match(output, /"msg":"SIGHUP: configuration file read again/)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
