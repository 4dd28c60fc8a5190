import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose'
import { RotatingKeys } from '../../src/oidc/keys.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { ADMIN_PASSWORD, basic, runCli, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const TOKEN_SECONDS = 10
const JWKS_MAX_AGE_SECONDS = 1
const MAX_STALE_SECONDS = 2

/** A GET on a connection of its own: the workers of one `serve` are handed connections in turn. */
function getOnNewConnection(url: string, headers: Record<string, string> = {}): Promise<{ status: number; cacheControl: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => {
        resolve({ status: response.statusCode!, cacheControl: response.headers['cache-control'] ?? '', body })
      })
    }).on('error', reject)
  })
}

interface Storage {
  args: string[]
  open(): Promise<Store>
  cleanup(): Promise<void>
}

/**
 * A service as a careful one is written: it caches the JWKS for its max-age and never longer, and takes a token
 * whose key is not in what it cached as forged (it does not fetch the JWKS again on an unknown key).
 */
class StrictVerifier {
  #cached: { jwks: JSONWebKeySet; until: number } | undefined
  fetches = 0

  readonly jwksUrl: () => string

  constructor(jwksUrl: () => string) {
    this.jwksUrl = jwksUrl
  }

  async verify(token: string): Promise<void> {
    if (!this.#cached || Date.now() >= this.#cached.until) {
      const response = await getOnNewConnection(this.jwksUrl())
      assert.equal(response.status, 200)
      const maxAge = Number(/max-age=(\d+)/.exec(response.cacheControl)?.[1])
      assert.equal(maxAge, JWKS_MAX_AGE_SECONDS)
      this.#cached = { jwks: JSON.parse(response.body) as JSONWebKeySet, until: Date.now() + maxAge * 1000 }
      this.fetches++
    }
    await jwtVerify(token, createLocalJWKSet(this.#cached.jwks), { audience: 'app', algorithms: ['ES256'] })
  }
}

function backendSuite(backend: string, newStorage: () => Promise<Storage>): void {
  describe(`the identity key of gateway processes sharing ${backend}`, () => {
    let upstream: RecordingUpstream
    let dir: string
    let configFile: string
    const running: GatewayProcess[] = []
    const cleanups: (() => Promise<void>)[] = []

    before(async () => {
      upstream = await startRecordingUpstream()
      dir = tempDir()
      configFile = join(dir, 'gatehouse.yaml')
      writeFileSync(configFile, [
        'services:',
        '  - name: app',
        '    prefix: /app/',
        `    upstream: ${upstream.url}`,
        '    accepts: [basic]',
        'auth:',
        `  identity_token_seconds: ${TOKEN_SECONDS}`,
        `  identity_jwks_max_age_seconds: ${JWKS_MAX_AGE_SECONDS}`,
        `  max_stale_seconds: ${MAX_STALE_SECONDS}`,
        '',
      ].join('\n'))
    })
    after(async () => {
      await Promise.all(running.map((gw) => gw.stop()))
      for (const cleanup of cleanups) await cleanup()
      await upstream?.close()
      rmSync(dir, { recursive: true, force: true })
    })

    async function storage(): Promise<Storage> {
      const made = await newStorage()
      cleanups.push(made.cleanup)
      return made
    }
    async function serve(storageArgs: string[]): Promise<GatewayProcess> {
      const gw = await spawnGateway(['--config', configFile, ...storageArgs])
      running.push(gw)
      return gw
    }

    /** The identity token the gateway sent the service for one request of the admin. */
    async function identityVia(gw: GatewayProcess | string): Promise<string> {
      const url = typeof gw === 'string' ? gw : gw.url
      const before = upstream.seen.length
      let response = await getOnNewConnection(`${url}/app/x`, admin)
      // The short max_stale_seconds that keeps this file's key changes quick can lapse on a loaded machine between
      // two of a process's heartbeats: it then fails closed for a moment (503 database_unavailable), as it should.
      for (let retry = 0; retry < 5 && response.status === 503 && response.body.includes('database_unavailable'); retry++) {
        await new Promise((resolve) => setTimeout(resolve, 500))
        response = await getOnNewConnection(`${url}/app/x`, admin)
      }
      assert.equal(response.status, 200, response.body)
      const token = upstream.seen.slice(before).at(-1)?.headers['x-gatehouse-identity']
      assert.equal(typeof token, 'string')
      return token as string
    }
    const kidOf = (token: string) => decodeProtectedHeader(token).kid!
    const jwksOf = async (gw: GatewayProcess | string) => JSON.parse((await getOnNewConnection(`${typeof gw === 'string' ? gw : gw.url}/api/gateway/v1/jwks/`)).body) as JSONWebKeySet
    const publishedBy = async (gw: GatewayProcess | string) => (await jwksOf(gw)).keys.map((k) => k.kid!).sort()

    /** Both processes sign with one key and publish the same keys, at the latest after `withinMs`. */
    async function assertAgree(a: GatewayProcess, b: GatewayProcess, withinMs = 3000): Promise<string> {
      const deadline = Date.now() + withinMs
      for (;;) {
        const [kidA, kidB] = [kidOf(await identityVia(a)), kidOf(await identityVia(b))]
        const [keysA, keysB] = [await publishedBy(a), await publishedBy(b)]
        const agree = kidA === kidB && JSON.stringify(keysA) === JSON.stringify(keysB) && keysA.includes(kidA)
        if (agree) return kidA
        if (Date.now() > deadline) assert.fail(`processes disagree: A signs with ${kidA} and publishes ${keysA}, B signs with ${kidB} and publishes ${keysB}`)
        await sleep(100)
      }
    }

    it('started together on an empty database, processes sign with one key and publish the same keys', async () => {
      const { args } = await storage()
      const [a, b] = await Promise.all([serve(args), serve(args)])
      await assertAgree(a, b)
    })

    it('takes up a key another process created while this one created its own', async () => {
      const { args, open } = await storage()
      const a = await serve(args)
      const own = kidOf(await identityVia(a))
      // What a process starting at the same moment leaves: its own first key, written after this one read none.
      const store = await open()
      let racing: string
      try {
        racing = (await new RotatingKeys(store, { purpose: 'identity', alg: 'ES256', rotationSeconds: 86400, graceSeconds: 70 }).rotate()).kid
      } finally {
        await store.close()
      }
      const b = await serve(args)
      const kid = await assertAgree(a, b)
      assert.equal(kid, racing)
      assert.deepEqual(await publishedBy(a), [own, racing].sort())
    })

    /**
     * Rotates with the command while requests go to each of `urls` in turn, each on a connection of its own, and a
     * service verifies every token; until the new key has signed the last requests.
     */
    async function rotateUnderLoad(urls: string[], storageArgs: string[], old: string): Promise<void> {
      let turn = 0
      const verifier = new StrictVerifier(() => `${urls[turn % urls.length]}/api/gateway/v1/jwks/`)
      const seen: { token: string; kid: string }[] = []
      let sinceSwitch = 0
      const rotating = runCli(['keys', 'rotate', '--identity', '--config', configFile, ...storageArgs])
      let rotated: Awaited<typeof rotating> | undefined
      void rotating.then((result) => (rotated = result))
      const deadline = Date.now() + 30_000
      // Until every process has signed with the new key: four requests in a row, over two processes.
      while (!(rotated && seen.length > 1 && sinceSwitch >= 4)) {
        assert.ok(Date.now() < deadline, 'the new key never signed')
        const token = await identityVia(urls[turn++ % urls.length]!)
        await verifier.verify(token)
        if (seen.at(-1)?.kid !== kidOf(token)) {
          seen.push({ token, kid: kidOf(token) })
          sinceSwitch = 0
        } else {
          seen[seen.length - 1]!.token = token
        }
        sinceSwitch++
        await sleep(50)
      }
      assert.equal(rotated.code, 0, rotated.stderr)
      const next = rotated.stdout.trim()
      assert.deepEqual(seen.map((s) => s.kid), [old, next], 'one switch, from the old key to the new')
      assert.ok(verifier.fetches > 2, 'the service fetched the JWKS again as its max-age passed')
      // The last token the old key signed still verifies until it expires, with the keys every process publishes.
      const lastOld = seen[0]!.token
      assert.ok(decodeJwt(lastOld).exp! * 1000 > Date.now(), 'the old token is still valid')
      for (const url of [...urls, ...urls]) {
        assert.deepEqual(await publishedBy(url), [old, next].sort())
        await jwtVerify(lastOld, createLocalJWKSet(await jwksOf(url)), { audience: 'app', algorithms: ['ES256'] })
      }
    }

    it('rotates on request with no token failing at a service that caches the JWKS', async () => {
      const { args } = await storage()
      // One after the other, so that one key is published: processes started together may each publish their own.
      const a = await serve(args)
      const b = await serve(args)
      // A rotation that does not name its key is refused while the processes settle on theirs; it changes nothing.
      const [old, unnamed] = await Promise.all([assertAgree(a, b), runCli(['keys', 'rotate', '--config', configFile, ...args])])
      assert.equal(unnamed.code, 2)
      assert.match(unnamed.stderr, /give --identity/)
      assert.deepEqual(await publishedBy(a), [old])
      await rotateUnderLoad([a.url, b.url], args, old)
    })

    it('the workers of one serve sign with one key, and rotate together', async () => {
      const { args } = await storage()
      const gw = await serve([...args, '--workers', '2'])
      // Each request on a connection of its own reaches the workers in turn.
      const kids = new Set<string>()
      const published = new Set<string>()
      for (let i = 0; i < 6; i++) {
        kids.add(kidOf(await identityVia(gw)))
        published.add(JSON.stringify(await publishedBy(gw)))
      }
      assert.equal(kids.size, 1)
      assert.deepEqual([...published], [JSON.stringify([...kids])])
      await rotateUnderLoad([gw.url], args, [...kids][0]!)
    })
  })
}

backendSuite('an SQLite data directory', async () => {
  const data = tempDir()
  return {
    args: ['--data-dir', data],
    open: () => openStore({ dataDir: data }),
    cleanup: async () => rmSync(data, { recursive: true, force: true }),
  }
})
backendSuite('a PostgreSQL database', async () => {
  const database = await createTestDatabase()
  return { args: ['--database', database.url], open: () => openStore({ url: database.url, dataDir: '' }), cleanup: database.drop }
})
