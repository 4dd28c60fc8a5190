import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'

/** Two gateway processes sharing one database, behind one public URL, as behind a load balancer. */
describe('OIDC across gateway processes', () => {
  let dir: string
  let first: GatewayProcess
  let second: GatewayProcess
  let firstUrl: string
  let secondUrl: string

  before(async () => {
    dir = tempDir()
    // The public URL names the first process's port, so the ports are picked before the processes start; a port
    // found free can be taken (by another test's connection) before a process listens on it: then new ones are picked.
    for (let attempt = 1; ; attempt++) {
      const [portA, portB] = [await freePort(), await freePort()]
      firstUrl = `http://127.0.0.1:${portA}`
      secondUrl = `http://127.0.0.1:${portB}`
      const config = readFileSync(demoConfigFile, 'utf8').replace(/^server:\n/m, `server:\n  public_url: ${firstUrl}\n`)
      writeFileSync(join(dir, 'gatehouse.yaml'), config)
      const args = ['--demo', '--config', join(dir, 'gatehouse.yaml'), '--data-dir', join(dir, 'data')]
      try {
        first = await spawnGateway([...args, '--port', String(portA)])
        second = await spawnGateway([...args, '--port', String(portB)])
        return
      } catch (error) {
        await first?.stop()
        if (attempt === 3 || !/EADDRINUSE/.test(String(error))) throw error
      }
    }
  })
  after(async () => {
    await Promise.all([first?.stop(), second?.stop()])
    rmSync(dir, { recursive: true, force: true })
  })

  async function login(): Promise<{ access_token: string; refresh_token: string }> {
    const response = await fetch(`${firstUrl}/realms/platform/protocol/openid-connect/token`, {
      method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }),
    })
    assert.equal(response.status, 200)
    return response.json() as Promise<{ access_token: string; refresh_token: string }>
  }

  const logout = (refreshToken: string) => fetch(`${firstUrl}/realms/platform/protocol/openid-connect/logout`, {
    method: 'POST', body: new URLSearchParams({ client_id: 'end-users', refresh_token: refreshToken }),
  })
  const callSecond = (token: string) => fetch(`${secondUrl}/demo-app/x`, { headers: { authorization: `Bearer ${token}` } })

  it('refuses in one process, on its next request, a token logged out in the other', async () => {
    const tokens = await login()
    assert.equal((await callSecond(tokens.access_token)).status, 200)
    assert.equal((await logout(tokens.refresh_token)).status, 204)
    assert.equal((await callSecond(tokens.access_token)).status, 401)
  })

  it('refuses a token logged out before the other process ever saw it', async () => {
    const tokens = await login()
    assert.equal((await logout(tokens.refresh_token)).status, 204)
    assert.equal((await callSecond(tokens.access_token)).status, 401)
  })

  it('serves the same keys from both processes', async () => {
    const [a, b] = await Promise.all([firstUrl, secondUrl].map(async (url) => (await fetch(`${url}/realms/platform/protocol/openid-connect/certs`)).json()))
    assert.deepEqual(a, b)
  })
})
