import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, basic, spawnGateway, tempDir, type GatewayProcess } from './helpers/gateway.ts'

describe('the request log', () => {
  let gateway: GatewayProcess
  let dir: string
  before(async () => {
    dir = tempDir()
    gateway = await spawnGateway(['--demo', '--data-dir', dir], { GATEHOUSE_LOG_LEVEL: 'info' })
  })
  after(async () => {
    await gateway?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const requestLines = () => gateway.output().split('\n').filter((line) => line.includes('"msg":"request"')).map((line) => JSON.parse(line))

  it('writes one structured line per request, with its id, route and principal, and no credentials', async () => {
    assert.equal((await fetch(`${gateway.url}/api/controller/v2/hosts/?page=2`, { headers: adminAuth })).status, 200)
    assert.equal((await fetch(`${gateway.url}/api/controller/v2/hosts/`, { headers: { authorization: basic('admin', 'wrong-password') } })).status, 401)
    // The line is written once the response has been sent, and reaches this process through a pipe.
    for (let i = 0; i < 200 && !requestLines().some((line) => line.status === 401); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const [granted, refused] = requestLines().slice(-2)
    assert.equal(typeof granted.reqId, 'string')
    assert.notEqual(granted.reqId, refused.reqId)
    assert.deepEqual(
      { method: granted.method, path: granted.path, status: granted.status, service: granted.service, user: granted.user, auth: granted.auth },
      { method: 'GET', path: '/api/controller/v2/hosts/', status: 200, service: 'controller', user: 'admin', auth: 'basic' },
    )
    assert.equal(typeof granted.ms, 'number')
    assert.equal(refused.status, 401)
    assert.equal(refused.user, undefined)
    const output = gateway.output()
    for (const secret of [ADMIN_PASSWORD, 'wrong-password', adminAuth.authorization.slice('Basic '.length)]) {
      assert.equal(output.includes(secret), false, 'no credential reaches the log')
    }
  })
})
