/**
 * V8 code caches of the dependencies' bundles (src/vendor/build.ts) that hold the code a start runs, not only their
 * top levels.
 *
 * Node's compile cache (NODE_COMPILE_CACHE) keeps what V8 compiled when a module was first compiled: its top level.
 * Every function a start then calls (Fastify registering routes, zod building schemas, the YAML parser) is compiled
 * again at every start, when first called. A cache made from a script after the start has run holds those functions
 * too, and a start that uses it compiles none of them: a tenth to a fifth of a start's CPU time. So each bundle is
 * compiled here, from its file, with the cache `serve` saved once it listened (`saveCodeCaches`); without one (a
 * first start, another bundle, or a cache V8 refuses: another Node or other V8 flags) it compiles as Node would,
 * and `serve` saves a new one. The caches live in Node's compile cache directory, named after the bundle's content,
 * and only while that directory is set (bin/gatehouse sets it): otherwise Node loads the bundles itself.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { getCompileCacheDir } from 'node:module'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { constants, Script } from 'node:vm'

/** Where the caches go: beside Node's compile cache, when it is on; undefined when it is off. */
export function codeCacheDirectory(): string | undefined {
  const compileCache = getCompileCacheDir()
  return compileCache ? join(compileCache, 'gatehouse-bundles') : undefined
}

interface Unsaved {
  readonly script: Script
  readonly file: string
}

/** Bundles compiled without a cache V8 took: saved by the next `saveCodeCaches`. */
const unsaved: Unsaved[] = []

/**
 * The source Node is given instead of a bundle's (src/vendor/register.ts's load hook): a CommonJS module that has
 * the bundle run by `runBundle`, in its own place.
 */
export function bundleRunner(): string {
  return `require(${JSON.stringify(fileURLToPath(import.meta.url))}).runBundle(module, require, __filename)\n`
}

/**
 * Compiles and runs a CommonJS bundle as Node would (the same wrapper, file name and lines), with the cache saved for
 * its content when there is one.
 */
export function runBundle(module: NodeJS.Module, require: NodeJS.Require, filename: string): void {
  const source = readFileSync(filename, 'utf8')
  const directory = codeCacheDirectory()
  const file = directory && join(directory, `${basename(filename)}-${createHash('sha256').update(source).digest('hex').slice(0, 32)}.v8`)
  let cachedData: Buffer | undefined
  try {
    if (file) cachedData = readFileSync(file)
  } catch {
    cachedData = undefined
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {\n${source}\n})`, {
    filename,
    lineOffset: -1,
    cachedData,
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  })
  if (file && (!cachedData || script.cachedDataRejected)) unsaved.push({ script, file })
  const run = script.runInThisContext() as (...args: unknown[]) => void
  run.call(module.exports, module.exports, require, module, filename, dirname(filename))
}

/**
 * Writes the cache of each bundle compiled without one, as its code is now: with every function run so far. Called by
 * `serve` once it listens. A cache that cannot be written is left unwritten (the next start compiles as Node would),
 * and another bundle's caches of the same name go.
 */
export function saveCodeCaches(): void {
  for (const { script, file } of unsaved.splice(0)) {
    try {
      mkdirSync(dirname(file), { recursive: true })
      const prefix = basename(file).replace(/-[0-9a-f]+\.v8$/, '-')
      for (const old of readdirSync(dirname(file))) if (old.startsWith(prefix) && join(dirname(file), old) !== file) rmSync(join(dirname(file), old), { force: true })
      const partial = `${file}.${process.pid}`
      writeFileSync(partial, script.createCachedData())
      renameSync(partial, file)
    } catch {
      // A read-only or full disk costs the next start its cache, nothing else.
    }
  }
}
