import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'

const LOOKUP_SECONDS = 2

describe('a directory that is down or slow', () => {
  let directory: TestDirectory
  let gw: TestGateway
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({
      config: {
        ldap: directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: LOOKUP_SECONDS } }),
        auth: { basic_cache_seconds: 60 },
      },
    })
  })
  after(async () => {
    directory?.resume()
    await gw?.close()
    await directory?.close()
  })

  const me = (username: string, password: string) => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } })

  it('serves a recently verified directory credential from the cache, without asking the directory', async () => {
    assert.equal((await me('alice', PASSWORDS.alice!)).status, 200)
    await directory.stop()
    try {
      assert.equal((await me('alice', PASSWORDS.alice!)).status, 200)
    } finally {
      await directory.start()
    }
  })

  it('fails a directory login at once with 503 directory_unavailable when the directory is down; local accounts keep working', async () => {
    await directory.stop()
    try {
      const started = Date.now()
      const response = await me('bob', PASSWORDS.bob!)
      assert.equal(response.status, 503)
      assert.equal((await json(response)).code, 'directory_unavailable')
      assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
      assert.equal(await gw.store.users.findByUsername('bob'), undefined)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })).status, 200)
    } finally {
      await directory.start()
    }
    assert.equal((await me('bob', PASSWORDS.bob!)).status, 200, 'works again once the directory is back')
  })

  it('fails a directory login within the configured timeout when the directory hangs; local accounts keep working', async () => {
    directory.pause()
    try {
      const started = Date.now()
      const [directoryLogin, localLogin] = await Promise.all([
        me('carol', PASSWORDS.carol!),
        gw.fetch('/api/gateway/v1/me/', { headers: adminAuth }),
      ])
      const elapsed = Date.now() - started
      assert.equal(localLogin.status, 200)
      assert.equal(directoryLogin.status, 503)
      assert.equal((await json(directoryLogin)).code, 'directory_unavailable')
      assert.ok(elapsed >= LOOKUP_SECONDS * 1000 - 100 && elapsed < LOOKUP_SECONDS * 1000 + 1500, `took ${elapsed} ms`)
    } finally {
      directory.resume()
    }
    assert.equal((await me('carol', PASSWORDS.carol!)).status, 200)
  })
})

describe('a service account the directory refuses', () => {
  let directory: TestDirectory
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []
  const wrongServicePassword = 'not-the-service-password'
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ bind_password: wrongServicePassword }) }, logLines })
  })
  after(async () => {
    await gw?.close()
    await directory?.close()
  })

  it('answers 503 rather than 401, and logs why for the operator, without a password', async () => {
    for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
      const response = await gw.fetch(path, { headers: { authorization: basic('alice', PASSWORDS.alice!) } })
      assert.equal(response.status, 503, path)
      assert.equal((await json(response)).code, 'directory_unavailable', path)
    }
    const reasons = logLines.filter((line) => line.code === 'directory_unavailable' && /ldap\.bind_dn/.test(String(line.reason)))
    assert.equal(reasons.length, 2, JSON.stringify(logLines))
    const logged = JSON.stringify(logLines)
    assert.ok(!logged.includes(wrongServicePassword))
    assert.ok(!logged.includes(PASSWORDS.alice!))
  })
})
