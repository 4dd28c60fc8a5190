import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { SSO } from '../helpers/sso.ts'

const TIMEOUT_SECONDS = 2

/** A provider that answers discovery in a way a real one never should. */
async function startMisbehavingProvider(answer: (response: ServerResponse) => void): Promise<{ issuer: string; close(): Promise<void> }> {
  const server: Server = createServer((_request, response) => answer(response))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    issuer,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** What a provider's discovery answers: every endpoint a sign-in uses. */
function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  }
}

describe('single sign-on through a provider that hangs or floods', () => {
  let silent: Awaited<ReturnType<typeof startMisbehavingProvider>>
  let endless: Awaited<ReturnType<typeof startMisbehavingProvider>>
  let gw: TestGateway
  let endlessBytes = 0

  before(async () => {
    silent = await startMisbehavingProvider((response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"issuer":')
    })
    const chunk = Buffer.alloc(1 << 20, 0x20)
    endless = await startMisbehavingProvider((response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"issuer":"')
      const more = () => {
        while (!response.destroyed) {
          endlessBytes += chunk.length
          if (!response.write(chunk)) return void response.once('drain', more)
        }
      }
      more()
    })
    const provider = (name: string, issuer: string) => ({ name, label: name, issuer, client_id: 'x', allow_insecure_http: true, timeout_seconds: TIMEOUT_SECONDS })
    gw = await startGateway({ config: { sso: [provider('silent', silent.issuer), provider('endless', endless.issuer)] } })
  })
  after(async () => {
    await gw?.close()
    await silent?.close()
    await endless?.close()
  })

  it('answers 503 within the timeout when discovery sends headers and then nothing', async () => {
    const started = Date.now()
    const response = await gw.fetch(`${SSO}silent/`, { headers: { accept: 'application/json' } })
    const elapsed = Date.now() - started
    assert.equal(response.status, 503)
    assert.equal((await json(response)).code, 'sso_provider_unavailable')
    assert.ok(elapsed < TIMEOUT_SECONDS * 1000 + 1500, `took ${elapsed} ms`)
  })

  it('stops reading an answer larger than a provider ever sends, answers 502, and holds nothing of it', async () => {
    const rssBefore = process.memoryUsage().rss
    const response = await gw.fetch(`${SSO}endless/`, { headers: { accept: 'application/json' } })
    assert.equal(response.status, 502)
    const body = await json(response)
    assert.equal(body.code, 'sso_response_invalid')
    assert.match(body.detail, /larger than 1 MiB/)
    assert.ok(endlessBytes < 64 << 20, `the provider sent ${endlessBytes >> 20} MiB before the gateway stopped reading`)
    assert.ok(process.memoryUsage().rss - rssBefore < 64 << 20, `memory grew by ${(process.memoryUsage().rss - rssBefore) >> 20} MiB`)
  })
})

describe('single sign-on through a provider whose discovery hangs, started again and again', () => {
  let hanging: Awaited<ReturnType<typeof startMisbehavingProvider>>
  let discoveries = 0
  let gw: TestGateway

  before(async () => {
    hanging = await startMisbehavingProvider((response) => {
      discoveries++
      response.writeHead(200, { 'content-type': 'application/json' })
      response.write('{"issuer":')
    })
    gw = await startGateway({ config: { sso: [{ name: 'hanging', label: 'Hanging', issuer: hanging.issuer, client_id: 'x', allow_insecure_http: true, timeout_seconds: TIMEOUT_SECONDS }] } })
  })
  after(async () => {
    await gw?.close()
    await hanging?.close()
  })

  /** Starts a sign-in; its answer (which must be 503) and how long it took. */
  async function start(): Promise<number> {
    const started = Date.now()
    const response = await gw.fetch(`${SSO}hanging/`, { headers: { accept: 'application/json' } })
    assert.equal(response.status, 503)
    assert.equal((await json(response)).code, 'sso_provider_unavailable')
    return Date.now() - started
  }

  it('holds the failure back for five seconds, so sign-ins meanwhile answer 503 at once, then asks the provider again', async () => {
    assert.ok(await start() >= TIMEOUT_SECONDS * 1000 - 100, 'the first waits for the timeout')
    const failedAt = Date.now()
    for (let i = 0; i < 3; i++) {
      const elapsed = await start()
      assert.ok(elapsed < 500, `a sign-in within the gap answers at once (took ${elapsed} ms)`)
    }
    assert.equal(discoveries, 1, 'the provider is not asked again within the gap')
    await new Promise((resolve) => setTimeout(resolve, failedAt + 5_200 - Date.now()))
    assert.ok(await start() >= TIMEOUT_SECONDS * 1000 - 100, 'after the gap the provider is asked again')
    assert.equal(discoveries, 2)
  })
})

describe('single sign-on through a provider that hangs at the token exchange', () => {
  let provider: Server
  let gw: TestGateway

  before(async () => {
    // Discovery answered, the sign-in code never exchanged: the token endpoint takes the request and says nothing.
    provider = createServer((request, response) => {
      if (request.url === '/.well-known/openid-configuration') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(discoveryDocument(issuer)))
      } else if (request.url !== '/token') response.writeHead(404).end()
    })
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve))
    const issuer = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`
    gw = await startGateway({ config: { sso: [{ name: 'stalls', label: 'stalls', issuer, client_id: 'x', allow_insecure_http: true, timeout_seconds: TIMEOUT_SECONDS }] } })
  })
  after(async () => {
    await gw?.close()
    provider?.closeAllConnections()
    await new Promise<void>((resolve) => provider ? provider.close(() => resolve()) : resolve())
  })

  it('answers the way back 503 within the timeout, and keeps no sign-in', async () => {
    const start = await gw.fetch(`${SSO}stalls/`, { redirect: 'manual' })
    assert.equal(start.status, 302)
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!
    const cookie = start.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ')
    const started = Date.now()
    const back = await gw.fetch(`${SSO}stalls/callback/?${new URLSearchParams({ state, code: 'a-code' })}`, { headers: { cookie, accept: 'application/json' } })
    const elapsed = Date.now() - started
    assert.equal(back.status, 503)
    assert.equal((await json(back)).code, 'sso_provider_unavailable')
    assert.ok(elapsed >= TIMEOUT_SECONDS * 1000 - 100 && elapsed < TIMEOUT_SECONDS * 1000 + 1500, `took ${elapsed} ms`)
  })
})

describe('single sign-on through a provider whose discovery document lacks what a sign-in needs', () => {
  let provider: Awaited<ReturnType<typeof startMisbehavingProvider>>
  let gw: TestGateway
  let spoiled: Record<string, unknown> = {}

  before(async () => {
    provider = await startMisbehavingProvider((response) => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...discoveryDocument(provider.issuer), ...spoiled }))
    })
    gw = await startGateway({ config: { sso: [{ name: 'broken', label: 'Broken', issuer: provider.issuer, client_id: 'x', allow_insecure_http: true, timeout_seconds: TIMEOUT_SECONDS }] } })
  })
  after(async () => {
    await gw?.close()
    await provider?.close()
  })

  it('answers 502 sso_response_invalid before sending anyone to the provider, and reads the document again at the next sign-in', async () => {
    const documents = [
      { authorization_endpoint: undefined }, { authorization_endpoint: 42 }, { authorization_endpoint: 'authorize' },
      { authorization_endpoint: 'javascript:alert(1)' }, { authorization_endpoint: 'ftp://127.0.0.1/auth' },
      // allow_insecure_http lets the loopback issuer name http endpoints on loopback hosts only: the client secret, the
      // code and the tokens would otherwise cross the network in clear.
      { authorization_endpoint: 'http://idp.example/auth' }, { token_endpoint: 'http://192.0.2.1/token' },
      { jwks_uri: 'http://localhost.example.com/keys' }, { userinfo_endpoint: 'http://[2001:db8::1]/me' },
      { token_endpoint: undefined }, { token_endpoint: 42 }, { jwks_uri: undefined }, { jwks_uri: 'keys' },
    ]
    for (const document of documents) {
      spoiled = document
      const spoilt = Object.entries(document).map(([name, value]) => `${name} ${String(value)}`).join()
      const response = await gw.fetch(`${SSO}broken/`, { headers: { accept: 'application/json' }, redirect: 'manual' })
      assert.equal(response.status, 502, spoilt)
      assert.equal((await json(response)).code, 'sso_response_invalid', spoilt)
      assert.deepEqual(response.headers.getSetCookie(), [], 'no sign-in is started')
    }
    const page = await gw.fetch(`${SSO}broken/`, { headers: { accept: 'text/html' } })
    assert.equal(page.status, 502)
    assert.match(await page.text(), /has no usable jwks_uri/, 'a browser gets the login page with the reason')
    // An empty UserInfo endpoint is none, as a sign-in reads it: the document is usable.
    spoiled = { userinfo_endpoint: '' }
    const fixed = await gw.fetch(`${SSO}broken/`, { redirect: 'manual' })
    assert.equal(fixed.status, 302, 'the corrected document is read at once, not an hour later')
    const location = new URL(fixed.headers.get('location')!)
    assert.equal(location.origin + location.pathname, `${provider.issuer}/auth`)
  })
})

describe('single sign-on through a provider whose certificate no trusted CA signed', () => {
  const dir = tempDir()
  let provider: HttpsServer
  let answered = 0
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    const certificate = selfSignedCertificate(dir, 'provider')
    provider = createHttpsServer({ cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) }, (_request, response) => {
      answered++
      response.end()
    })
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve))
    const issuer = `https://127.0.0.1:${(provider.address() as AddressInfo).port}`
    gw = await startGateway({ logLines, logLevel: 'warn', config: { sso: [{ name: 'untrusted', label: 'Untrusted', issuer, client_id: 'x', timeout_seconds: TIMEOUT_SECONDS }] } })
  })
  after(async () => {
    await gw?.close()
    provider?.closeAllConnections()
    await new Promise((resolve) => provider?.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })

  it('answers 503 without reading its answers, and logs that its certificate was refused', async () => {
    const response = await gw.fetch(`${SSO}untrusted/`, { headers: { accept: 'application/json' } })
    assert.equal(response.status, 503)
    assert.equal((await json(response)).code, 'sso_provider_unavailable')
    assert.equal(answered, 0)
    const line = logLines.find((entry) => entry.msg === 'single sign-on refused' && entry.sso === 'untrusted')
    assert.equal((line?.reason as { code?: string } | undefined)?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', JSON.stringify(line))
  })
})
