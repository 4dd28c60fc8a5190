import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { getCompileCacheDir } from 'node:module'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { codeCacheDirectory } from '../../src/vendor/code-cache.ts'
import { adminAuth, repoRoot, spawnGateway, tempDir } from '../helpers/gateway.ts'

const dir = tempDir()
const compileCache = join(dir, 'compile-cache')
after(() => rmSync(dir, { recursive: true, force: true }))

const codeCache = join(repoRoot, 'src/vendor/code-cache.ts')

/**
 * Runs a CommonJS file through runBundle in a process of its own (V8 keeps what a process compiled, and would not
 * read a cache for the same source twice), as the load hook has Node do, then saves the caches: what `report`, an
 * expression of the bundle's exports, gives.
 */
function run(file: string, report: string): string {
  const script = `
    import { createRequire } from 'node:module'
    import { runBundle, saveCodeCaches } from ${JSON.stringify(codeCache)}
    const module = { exports: {} }
    runBundle(module, createRequire(${JSON.stringify(file)}), ${JSON.stringify(file)})
    const exported = module.exports
    saveCodeCaches()
    process.stdout.write(JSON.stringify(await (${report})))`
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_COMPILE_CACHE: compileCache }, encoding: 'utf8' })
}

/** Node's compile cache keeps its entries in a directory of its own below the one it is given: so do these caches. */
function cacheDirectory(): string {
  const [versioned] = readdirSync(compileCache)
  return join(compileCache, versioned!, 'gatehouse-bundles')
}

function cacheFiles(): string[] {
  try {
    return readdirSync(cacheDirectory()).sort()
  } catch {
    return []
  }
}

describe('code caches of the dependencies\' bundles', () => {
  it('compiles nothing of its own while Node\'s compile cache is off', () => {
    assert.equal(getCompileCacheDir(), undefined)
    assert.equal(codeCacheDirectory(), undefined)
  })

  it('runs a bundle as Node would, saves its cache once it ran, uses it the next time, and replaces a cache V8 refuses', () => {
    const bundle = join(dir, 'example.bundle.cjs')
    // Line 3 throws: a stack trace names the bundle's own lines, as Node's loader would.
    writeFileSync(bundle, [
      'exports.self = this === module.exports; exports.file = __filename; exports.dir = __dirname',
      'exports.double = (n) => n * 2; exports.path = require("node:path").basename(__filename)',
      'exports.fail = () => { throw new Error("from the bundle") }',
      'exports.load = () => import("node:os").then((os) => typeof os.cpus)',
    ].join('\n'))
    const everything = '(async () => { let stack; try { exported.fail() } catch (error) { stack = error.stack } return [exported.self, exported.file, exported.dir, exported.path, exported.double(21), /example\\.bundle\\.cjs:3:/.test(stack), await exported.load()] })()'
    assert.deepEqual(JSON.parse(run(bundle, everything)), [true, bundle, dir, 'example.bundle.cjs', 42, true, 'function'])
    const [saved] = cacheFiles()
    assert.match(saved ?? '', /^example\.bundle\.cjs-[0-9a-f]{32}\.v8$/)
    const cacheFile = join(cacheDirectory(), saved!)
    const written = readFileSync(cacheFile)

    // Taken: nothing saved again.
    assert.equal(run(bundle, 'exported.double(2)'), '4')
    assert.deepEqual(readFileSync(cacheFile), written)

    // Refused (here, not a cache at all): the bundle still runs, and a good cache replaces the bad one.
    writeFileSync(cacheFile, 'not a code cache')
    assert.equal(run(bundle, 'exported.double(3)'), '6')
    assert.notEqual(readFileSync(cacheFile, 'utf8'), 'not a code cache')

    // Another bundle of the same name: its own cache, which takes the old one's place.
    writeFileSync(bundle, 'exports.double = (n) => n * 3\n')
    assert.equal(run(bundle, 'exported.double(3)'), '9')
    assert.equal(cacheFiles().length, 1)
    assert.notEqual(cacheFiles()[0], saved)
  })

  it('lets a gateway restart on the caches its first start saved, and serve as before', async () => {
    const compileCache = join(dir, 'gateway-compile-cache')
    mkdirSync(compileCache)
    const args = ['--data-dir', join(dir, 'data')]
    const env = { NODE_COMPILE_CACHE: compileCache }
    const caches = () => readdirSync(compileCache, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.v8')).sort()
    const first = await spawnGateway(args, env)
    try {
      // Saved just after the listening line: waited for.
      for (let i = 0; i < 200 && caches().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    } finally {
      await first.stop()
    }
    const saved = caches()
    for (const name of ['fastify', 'zod', 'yaml', 'kysely']) assert.ok(saved.some((file) => file.includes(`${name}.bundle.cjs-`)), `${name}: ${saved.join(', ')}`)
    const mtimes = saved.map((file) => statSync(join(compileCache, file)).mtimeMs)

    const second = await spawnGateway(args, env)
    try {
      const response = await fetch(`${second.url}/api/gateway/v1/me/`, { headers: adminAuth })
      assert.equal(response.status, 200)
      assert.equal((await response.json() as { results: { username: string }[] }).results[0]?.username, 'admin')
    } finally {
      await second.stop()
    }
    assert.deepEqual(caches(), saved)
    assert.deepEqual(saved.map((file) => statSync(join(compileCache, file)).mtimeMs), mtimes, 'the second start took the caches, and saved none')
  })
})
