import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, basic, json, refusalBody, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { exchange } from '../helpers/raw-client.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'

describe('basic authorization', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })
  })
  after(() => gw.close())

  it('lets `curl --user` read the users list, as the platform documents', async () => {
    const response = await gw.fetch('/api/gateway/v1/users/', { headers: adminAuth })
    assert.equal(response.status, 200)
    const body = await json(response)
    assert.ok(body.results.some((u: { username: string }) => u.username === 'admin'))
    // No password, nor its hash: only whether there is one, as the platform shows it.
    assert.ok(body.results.every((u: { password?: unknown }) => ['$encrypted$', 'Password Disabled'].includes(u.password as string) && !('password_hash' in u)))
  })

  it('forwards a basic-authenticated request with the verified identity and without the credential', async () => {
    const response = await gw.fetch('/api/controller/v2/hosts/?page=2', { headers: { authorization: basic('alice', 'alice-password') } })
    assert.equal(response.status, 200)
    const seen = await json(response)
    assert.equal(seen.service, 'controller')
    assert.equal(seen.path, '/api/controller/v2/hosts/')
    assert.deepEqual(seen.query, { page: '2' })
    assert.equal(seen.identity.username, 'alice')
    assert.equal(seen.identity.auth_method, 'basic')
    assert.equal(seen.identity.verified, true)
    assert.equal(seen.headers.authorization, null)
  })

  it('answers a wrong password and an unknown user the same way', async () => {
    const wrong = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', 'nope') } })
    const unknown = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('nobody', 'nope') } })
    assert.equal(wrong.status, 401)
    assert.equal(unknown.status, 401)
    assert.deepEqual(await refusalBody(wrong), await refusalBody(unknown))
    assert.match(wrong.headers.get('www-authenticate') ?? '', /Basic realm="Gatehouse"/)
  })

  it('spends about as long on an unknown user as on a wrong password', async () => {
    const time = async (authorization: string) => {
      const started = performance.now()
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization } })).status, 401)
      return performance.now() - started
    }
    await time(basic('warm-up', 'x'))
    // The least of several, taken in turns: on a busy machine any one request can wait for a CPU much longer than its hash.
    const wrongs: number[] = []
    const unknowns: number[] = []
    for (let i = 0; i < 4; i++) {
      wrongs.push(await time(basic('alice', `wrong-${i}`)))
      unknowns.push(await time(basic(`nobody-${i}`, 'x')))
    }
    const wrong = Math.min(...wrongs)
    const unknown = Math.min(...unknowns)
    assert.ok(unknown > wrong / 3 && unknown < wrong * 3, `wrong password ${wrong} ms, unknown user ${unknown} ms`)
  })

  it('refuses malformed basic headers with a clear code', async () => {
    // Base64 without its padding, as Django REST framework refuses it (Python's b64decode: "Incorrect padding").
    const padded = Buffer.from('alice:alice-password').toString('base64')
    assert.match(padded, /=$/)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Basic ${padded}` } })).status, 200)
    for (const header of ['Basic', 'Basic !!!', 'Basic ' + Buffer.from('no-colon').toString('base64'), 'Basic a', 'Basic ' + 'A'.repeat(5000), `Basic ${padded.replace(/=+$/, '')}`]) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: header } })
      assert.equal(response.status, 401, header.slice(0, 30))
      assert.equal((await json(response)).code, 'malformed_credentials')
    }
  })

  it('refuses credentials holding NUL as malformed, and the audit trail goes on recording what follows', async () => {
    for (const pair of ['x\u0000y:pw', 'admin:pass\u0000word', '\u0000:\u0000']) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Basic ${Buffer.from(pair).toString('base64')}` } })
      assert.equal(response.status, 401, JSON.stringify(pair))
      assert.equal((await json(response)).code, 'malformed_credentials')
    }
    const wrong = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('after-nul', 'wrong-password') } })
    assert.equal(wrong.status, 401)
    await gw.app.audit.flush()
    const recorded = await json(await gw.fetch('/api/gateway/v1/activitystream/?order_by=-id&page_size=5', { headers: adminAuth }))
    assert.ok(recorded.results.some((entry: { object_name?: string; summary_fields?: unknown }) => JSON.stringify(entry).includes('after-nul')), JSON.stringify(recorded.results))
  })

  it('reads credentials that are not UTF-8 as ISO-8859-1, as the platform does, never as a replacement character', async () => {
    const latin1 = (pair: string) => ({ authorization: `Basic ${Buffer.from(pair, 'latin1').toString('base64')}` })
    await gw.app.accounts.create({ username: 'dora', password: 'dora-pass\uFFFDword' })
    await gw.app.accounts.create({ username: 'emil', password: 'emil-päss-word' })
    // Any byte that is not UTF-8 would otherwise stand for the password's U+FFFD.
    for (const byte of ['\xff', '\xfe', '\x80']) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: latin1(`dora:dora-pass${byte}word`) })
      assert.equal(response.status, 401, `byte ${byte.charCodeAt(0)}`)
      assert.equal((await json(response)).code, 'invalid_credentials')
    }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-pass\uFFFDword') } })).status, 200)
    for (const headers of [latin1('emil:emil-päss-word'), { authorization: basic('emil', 'emil-päss-word') }]) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers })
      assert.equal(response.status, 200)
      assert.equal((await json(response)).results[0].username, 'emil')
    }
  })

  it('refuses a request with two Authorization headers, whichever comes first', async () => {
    const host = new URL(gw.url).host
    const twice = (first: string, second: string, path: string) =>
      exchange(gw.url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nAuthorization: ${first}\r\nAuthorization: ${second}\r\n\r\n`)
    const wrong = basic('alice', 'not-her-password')
    for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
      for (const [first, second] of [[adminAuth.authorization, wrong], [wrong, adminAuth.authorization], [adminAuth.authorization, adminAuth.authorization]]) {
        const answer = await twice(first!, second!, path)
        assert.match(answer, /^HTTP\/1\.1 401 /, `${path}: ${answer.slice(0, 200)}`)
        assert.match(answer, /"code":"malformed_credentials"/)
        assert.doesNotMatch(answer, /"username":"admin"/)
      }
    }
  })

  it('refuses a disabled user at once, although the credential was cached', async () => {
    const bob = await gw.app.accounts.create({ username: 'bob', password: 'bob-password' })
    const auth = { authorization: basic('bob', 'bob-password') }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 200)
    const patch = await gw.fetch(`/api/gateway/v1/users/${bob.id}/`, {
      method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }),
    })
    assert.equal(patch.status, 200)
    const refused = await gw.fetch('/api/gateway/v1/me/', { headers: auth })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'account_disabled')
  })

  it('stops accepting the old password as soon as it changes', async () => {
    const carol = await gw.app.accounts.create({ username: 'carol', password: 'first-password' })
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', 'first-password') } })).status, 200)
    await gw.fetch(`/api/gateway/v1/users/${carol.id}/`, {
      method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'second-password' }),
    })
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', 'first-password') } })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', 'second-password') } })).status, 200)
  })

  it('rejects basic credentials once basic auth is switched off, without a restart', async () => {
    const off = await gw.fetch('/api/gateway/v1/settings/', {
      method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ gateway_basic_auth_enabled: false }),
    })
    assert.equal(off.status, 200)
    assert.equal((await json(off)).gateway_basic_auth_enabled, false)
    for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
      const response = await gw.fetch(path, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'basic_auth_disabled')
    }
    await gw.app.settings.update({ gateway_basic_auth_enabled: true })
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })).status, 200)
  })

  it('refuses a wrong password sent after the right one was remembered, and any other header for that user', async () => {
    const right = basic('alice', 'alice-password')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: right } })).status, 200)
    for (const authorization of [basic('alice', 'alice-passwordx'), basic('alice', 'alice-passwor'), basic('alice', ''), `${right}=`, `${right}x`, right.replace('Basic ', 'Basic !')]) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization } })
      assert.equal(response.status, 401, authorization)
    }
    // The same pair spelled otherwise (the scheme in lower case, more spaces) is verified on its own, and holds.
    for (const authorization of [right.replace('Basic', 'basic'), right.replace('Basic ', 'Basic   ')]) {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization } })).status, 200, authorization)
    }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: right } })).status, 200)
  })

  it('verifies argon2id only once while the credential stays cached', async () => {
    // Counted, not timed: each verification is one `gatehouse_logins_total{method="basic",outcome="success"}`, and a
    // cached credential is one hit of the `basic_credentials` cache (a loaded machine can make 20 cached requests slow).
    const auth = { authorization: basic('alice', 'alice-password') }
    await gw.fetch('/api/gateway/v1/me/', { headers: auth })
    const counts = async () => {
      const scrape = parseScrape(await (await fetch(gw.url + '/metrics')).text())
      return {
        verified: sampleValue(scrape, 'gatehouse_logins_total', { method: 'basic', outcome: 'success', code: '' }),
        hits: sampleValue(scrape, 'gatehouse_cache_lookups_total', { cache: 'basic_credentials', result: 'hit' }),
      }
    }
    const start = await counts()
    for (let i = 0; i < 20; i++) assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 200)
    const end = await counts()
    assert.equal(end.verified - start.verified, 0, 'no argon2id verification while the credential is cached')
    assert.equal(end.hits - start.hits, 20)
  })
})
