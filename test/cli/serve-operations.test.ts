import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { selfSignedCertificate } from '../helpers/certificates.ts'
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

describe('serve: ports it cannot listen on', () => {
  it('stops with one line naming the setting: exit 1 for a port another process holds, 2 for an address not of this machine', async () => {
    const dir = tempDir()
    const taken: Server = createServer().listen(0, '127.0.0.1')
    try {
      await once(taken, 'listening')
      const port = (taken.address() as AddressInfo).port
      const tls = selfSignedCertificate(dir, 'gateway')
      const cases: [string, string[], number, RegExp][] = [
        ['', ['--port', String(port)], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(server\\.port, EADDRINUSE\\)\\n$`)],
        ['', ['--host', '192.0.2.1'], 2, /^gatehouse: cannot listen on 192\.0\.2\.1:0: the address is not one of this machine's \(server\.host, EADDRNOTAVAIL\)\n$/],
        [`metrics:\n  port: ${port}\n`, [], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(metrics\\.port, EADDRINUSE\\)\\n$`)],
        [`server:\n  tls: { cert_file: ${tls.cert}, key_file: ${tls.key}, redirect_http_port: ${port} }\n`, [], 1, new RegExp(`^gatehouse: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(server\\.tls\\.redirect_http_port, EADDRINUSE\\)\\n$`)],
      ]
      for (const [yaml, args, status, reason] of cases) {
        const file = join(dir, 'gatehouse.yaml')
        writeFileSync(file, yaml)
        const result = await runCli(['serve', '--config', file, '--data-dir', join(dir, 'data'), '--port', '0', ...args], { env: { GATEHOUSE_ADMIN_PASSWORD: 'admin-test-password' } })
        assert.equal(result.code, status, yaml + args.join(' ') + result.stderr)
        assert.match(result.stderr, reason)
        assert.equal(result.stdout, '', 'nothing says it listens')
      }
    } finally {
      taken.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
