import assert from 'node:assert/strict'
import { chownSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { VENDORED_PACKAGES } from '../../src/vendor/build.ts'
import { currentGatehouseBundle, gatehouseBundleDirectory, gatehouseBundleEntry } from '../../src/vendor/gatehouse-bundle.ts'
import { adminAuth, migratedDataDir, repoRoot, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'

const recorder = join(repoRoot, 'test/fixtures/record-loaded-modules.mjs')

interface Loaded {
  /** Every module's URL. */
  urls: string[]
  /** The files below node_modules. */
  dependencies: string[]
  /** Gatehouse's own modules, by their path below src/. */
  own: string[]
  /** Node's own modules (`process.moduleLoadList`: `NativeModule internal/...`, `Internal Binding ...`). */
  internal: string[]
}

/** What a gateway process loaded from its start to its stop, with `use` run against it. */
async function modulesLoaded(dir: string, config: string, use: (url: string) => Promise<void>): Promise<Loaded> {
  const record = join(dir, 'loaded.json')
  const gateway = await spawnGateway(['--config', config, '--data-dir', join(dir, 'data')], { NODE_OPTIONS: `--import=${recorder}`, RECORD_LOADED_MODULES: record })
  try {
    await use(gateway.url.replace(/\/$/, ''))
  } finally {
    await gateway.stop()
  }
  return recorded(record)
}

/** What the process that wrote `record` (test/fixtures/record-loaded-modules.mjs) loaded. */
function recorded(record: string): Loaded {
  const { modules, internal } = JSON.parse(readFileSync(record, 'utf8')) as { modules: string[]; internal: string[] }
  const ownPrefix = `file://${join(repoRoot, 'src')}/`
  return {
    urls: modules,
    dependencies: modules.flatMap((url) => /\/node_modules\/(?!\.cache\/gatehouse-bundle\/)(.*)$/.exec(url)?.[1] ?? []),
    own: modules.flatMap((url) => (url.startsWith(ownPrefix) ? [url.slice(ownPrefix.length)] : bundledSources(url))),
    internal,
  }
}

/** The sources in a file of the bundle of Gatehouse's own modules (src/vendor/gatehouse-bundle.ts), by their path below src/. */
function bundledSources(url: string): string[] {
  const bundle = currentGatehouseBundle(repoRoot)
  const directory = pathToFileURL(realpathSync(gatehouseBundleDirectory(repoRoot))).href + '/'
  if (!bundle || !url.startsWith(directory)) return []
  return (bundle.outputs[url.slice(directory.length)] ?? []).map((source) => source.replace(/^src\//, ''))
}

async function dependenciesLoaded(dir: string, config: string, use: (url: string) => Promise<void>): Promise<string[]> {
  return (await modulesLoaded(dir, config, use)).dependencies
}

function missing(loaded: string[], expected: string[]): string[] {
  return expected.filter((prefix) => !loaded.some((file) => file.startsWith(prefix)))
}

describe('serve: what a start loads', () => {
  it('leaves out what the configuration does not use and what waits for its first request, and loads that then', async () => {
    const dir = tempDir()
    try {
      const config = join(dir, 'gatehouse.yaml')
      writeFileSync(config, [
        'services:',
        '  - { name: app, prefix: /app/, upstream: "http://127.0.0.1:9", accepts: [basic, oidc], oidc: { realm: platform, client_id: app } }',
        'realms:',
        '  - { name: platform, clients: [{ client_id: app, public_client: true }] }',
      ].join('\n'))
      // Used only on a realm's first request: oidc-provider (with Koa), and the certificate writer of its first keys.
      const realmOnly = ['oidc-provider/lib/provider.js', 'koa/', '@peculiar/asn1-x509/']
      // Gatehouse's own modules that build a realm's provider, and its login step (with a browser's first login).
      const ownRealmOnly = ['oidc/provider.ts', 'oidc/app-initiated-actions.ts']
      const ownLoginOnly = ['oidc/interactions.ts']
      // Gatehouse's own code for a directory, which this configuration does not have.
      const ownUnused = ['directory/ldap.ts', 'directory/ldap-check.ts', 'directory/ldap-sync.ts']
      // Used only on a visit of the API document or reference: what makes the document, swagger-ui and its static file server.
      const referenceOnly = ['@fastify/swagger/', 'fastify-type-provider-zod/', 'json-schema-resolver/', '@fastify/swagger-ui/', '@fastify/static/']
      // Used only when /metrics is first scraped: prom-client, and what its process metrics need.
      const scrapeOnly = ['prom-client/', '@opentelemetry/api/']
      // Not used by this configuration at all: LDAP, PostgreSQL, the demo upstreams' WebSockets, single sign-on.
      const unused = ['ldapts/', 'pg/', 'ws/', 'openid-client/', 'oauth4webapi/']
      // Never on the event loop's thread: the hashing threads load it (src/directory/hashing-threads.ts), which start
      // when a password is first hashed or verified.
      const passwordOnly = ['@node-rs/argon2']
      // The packages bundled at install (src/vendor/): their bundles are loaded, not their files one by one.
      const bundled = VENDORED_PACKAGES.map((name) => `${name}/`)
      // Fastify's own schema compilers: the API validates with zod and no route has a response schema.
      const noRouteNeeds = ['@fastify/ajv-compiler/', 'ajv/', '@fastify/fast-json-stringify-compiler/']

      // undici's index (fetch, WebSockets, caches, mocks): the proxy uses its connection pool only.
      const poolOnly = ['undici/index.js']

      const notAtStart = [...realmOnly, ...referenceOnly, ...scrapeOnly, ...unused, ...bundled, ...noRouteNeeds, ...poolOnly]
      const created = await dependenciesLoaded(dir, config, async () => {})
      assert.deepEqual(missing(created, [...notAtStart, ...passwordOnly]), [...notAtStart, ...passwordOnly], 'not even by the first start, which makes the first superuser')

      const { urls: idleUrls, dependencies: idle, own: idleOwn, internal: idleInternal } = await modulesLoaded(dir, config, async () => {})
      assert.ok(idle.some((file) => file.startsWith('undici/')), 'the record holds what a start loads')
      // jose is used at start too: the gateway's identity key.
      const bundles = VENDORED_PACKAGES.map((name) => `.cache/gatehouse-vendor/${name}.bundle.cjs`)
      assert.deepEqual(missing(idle, bundles), [])
      assert.deepEqual(missing(idle, [...notAtStart, ...passwordOnly]), [...notAtStart, ...passwordOnly])
      // Node's own copy of undici (its fetch and WebSocket), which an ES module import of node:http loads (about 10 MB).
      assert.ok(idleInternal.includes('NativeModule http'), 'the record holds Node\'s own modules')
      assert.deepEqual(idleInternal.filter((name) => name.includes('internal/deps/undici')), [])
      assert.ok(idleOwn.includes('cli/serve.ts'), 'the record holds Gatehouse\'s own modules')
      // Their bundle when it is current (made by `npm install` from these sources), else the sources themselves.
      const bundleEntry = gatehouseBundleEntry(repoRoot)
      assert.equal(bundleEntry !== undefined && idleUrls.includes(bundleEntry), currentGatehouseBundle(repoRoot) !== undefined)
      assert.deepEqual(missing(idleOwn, [...ownRealmOnly, ...ownLoginOnly, ...ownUnused]), [...ownRealmOnly, ...ownLoginOnly, ...ownUnused])

      const { dependencies: used, own: usedOwn } = await modulesLoaded(dir, config, async (url) => {
        assert.equal((await fetch(`${url}/realms/platform/.well-known/openid-configuration`)).status, 200)
        assert.equal((await fetch(`${url}/api/gateway/v1/docs/`)).status, 200)
        assert.equal((await fetch(`${url}/metrics`)).status, 200)
        assert.equal((await fetch(`${url}/api/gateway/v1/me/`, { headers: adminAuth })).status, 200)
      })
      assert.deepEqual(missing(used, [...realmOnly, ...referenceOnly, ...scrapeOnly]), [])
      assert.deepEqual(missing(used, [...unused, ...bundled, ...passwordOnly]), [...unused, ...bundled, ...passwordOnly])
      assert.deepEqual(missing(usedOwn, ownRealmOnly), [])
      assert.deepEqual(missing(usedOwn, ownUnused), ownUnused)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('hands the compile cache entries of the modules it loaded back to Node before it starts, writing them out then', async () => {
    // Node holds each entry in memory until it exits, and writes those it made then; a flush frees them at once. So a
    // start with an empty cache directory has written its entries while it is still running.
    const dir = tempDir()
    const cache = join(dir, 'compile-cache')
    const gateway = await spawnGateway(['--data-dir', join(dir, 'data')], { NODE_COMPILE_CACHE: cache })
    try {
      const entries = readdirSync(cache, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile())
      // One per module or bundle file: some 80 with Gatehouse's own modules bundled, 250 without.
      assert.ok(entries.length > 50, `compile cache entries written while serving: ${entries.length}`)
    } finally {
      await gateway.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps its compile caches in the user\'s own cache directory, and runs without them where another user owns it', async () => {
    // The caches hold code the gateway runs as found: a directory in a shared /tmp, which any user could create first
    // and fill, would let them run code as the gateway's user.
    const dir = tempDir()
    const environOf = (pid: number) => new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]))
    const own = join(dir, 'own-cache-home')
    const others = join(dir, 'others-cache-home')
    mkdirSync(join(others, 'gatehouse', 'compile-cache'), { recursive: true })
    const otherUser = process.getuid!() === 0 ? 65534 : undefined
    if (otherUser !== undefined) chownSync(join(others, 'gatehouse', 'compile-cache'), otherUser, otherUser)
    // Empty counts as unset, whatever the environment running the tests has.
    const [inOwn, inOthers] = await Promise.all([
      spawnGateway(['--data-dir', join(dir, 'own')], { NODE_COMPILE_CACHE: '', XDG_CACHE_HOME: own }),
      spawnGateway(['--data-dir', join(dir, 'others')], { NODE_COMPILE_CACHE: '', XDG_CACHE_HOME: others }),
    ])
    try {
      assert.equal(environOf(inOwn.process.pid!).get('NODE_COMPILE_CACHE'), join(own, 'gatehouse', 'compile-cache'))
      assert.ok(readdirSync(join(own, 'gatehouse', 'compile-cache')).length > 0, 'entries written in the user\'s own directory')
      if (otherUser !== undefined) {
        assert.equal(environOf(inOthers.process.pid!).has('NODE_COMPILE_CACHE'), false)
        assert.equal(environOf(inOthers.process.pid!).get('NODE_DISABLE_COMPILE_CACHE'), '1')
        assert.deepEqual(readdirSync(join(others, 'gatehouse', 'compile-cache')), [], 'nothing written to, or read from, another user\'s directory')
      }
      for (const gateway of [inOwn, inOthers]) assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200)
    } finally {
      await Promise.all([inOwn.stop(), inOthers.stop()])
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('runs with glibc\'s malloc held to two arenas, unless the environment chose a number', async () => {
    const dir = tempDir()
    const environOf = (pid: number) => new Map(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]))
    const [chosen, unset] = await Promise.all([
      spawnGateway(['--data-dir', join(dir, 'chosen')], { MALLOC_ARENA_MAX: '4' }),
      // Empty counts as unset, whatever the environment running the tests has.
      spawnGateway(['--data-dir', join(dir, 'unset')], { MALLOC_ARENA_MAX: '' }),
    ])
    try {
      assert.equal(environOf(chosen.process.pid!).get('MALLOC_ARENA_MAX'), '4')
      assert.equal(environOf(unset.process.pid!).get('MALLOC_ARENA_MAX'), '2')
    } finally {
      await Promise.all([chosen.stop(), unset.stop()])
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the other commands: what a run loads', () => {
  it('loads the commands\' definitions alone for --help and a mistake in the arguments, and for users list what it runs, without the HTTP server', async () => {
    const dir = tempDir()
    try {
      const data = await migratedDataDir(dir)
      const record = join(dir, 'loaded.json')
      const run = async (args: string[], status: number) => {
        const { code, stderr } = await runCli(args, { env: { NODE_OPTIONS: `--import=${recorder}`, RECORD_LOADED_MODULES: record } })
        assert.equal(code, status, stderr)
        return recorded(record)
      }
      // The server's side: Fastify (its bundle, or its files when the bundles are stale) with its logger, the provider.
      const server = ['.cache/gatehouse-vendor/fastify', 'fastify/', 'pino/', 'oidc-provider/lib/provider.js']
      const ownServer = ['server.ts', 'api/register.ts', 'oidc/provider.ts', 'cli/serve.ts', 'cli/start.ts']
      // What any command that acts loads: the configuration's schema, the database, the app.
      const anyAction = ['.cache/gatehouse-vendor/zod', 'zod/', '.cache/gatehouse-vendor/kysely', 'kysely/']
      const ownAnyAction = ['app.ts', 'config/schema.ts', 'store/database.ts', 'cli/actions.ts', 'cli/users.ts']
      for (const args of [['--help'], ['users', 'list', '--help'], ['users', 'list', '--no-such-option']]) {
        const { own, dependencies } = await run(args, args.includes('--help') ? 0 : 2)
        assert.ok(own.includes('cli/users-command.ts'), `${args.join(' ')} loads the commands' definitions`)
        assert.deepEqual(missing(own, [...ownServer, ...ownAnyAction]), [...ownServer, ...ownAnyAction], args.join(' '))
        assert.deepEqual(missing(dependencies, [...server, ...anyAction]), [...server, ...anyAction], args.join(' '))
      }
      const { own, dependencies } = await run(['users', 'list', '--data-dir', data], 0)
      assert.deepEqual(missing(own, ownAnyAction), [])
      assert.deepEqual(missing(own, ownServer), ownServer)
      assert.deepEqual(missing(dependencies, server), server)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
