/**
 * Preloaded by bin/gatehouse (`node --import`): points the specifiers of the dependencies bundled at install
 * (src/vendor/build.ts) at their bundles, for every importer, so the process holds one copy of each, and the command
 * line's module at the bundle of Gatehouse's own modules (src/vendor/gatehouse-bundle.ts). A package whose bundle
 * holds a package (itself or a dependency) installed since at another version, a source changed since it was
 * bundled, or a missing or unreadable manifest, leaves Node's own resolution alone.
 */
import { realpathSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { holdEarlyHangUps } from '../cli/early-hangups.ts'
import { bundleRunner, codeCacheDirectory } from './code-cache.ts'
import { ENTRY, gatehouseBundleEntry } from './gatehouse-bundle.ts'
import { currentBundles, vendorDirectory } from './manifest.ts'

// First: a SIGHUP while the modules load must not end a starting gateway (src/cli/early-hangups.ts). Workers of
// `serve --workers` are started with the same arguments, and hold it too.
if (process.argv[2] === 'serve') holdEarlyHangUps()

const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

const bundles = currentBundles(projectRoot)
const sourcesEntry = pathToFileURL(join(projectRoot, ENTRY)).href
const bundledEntry = gatehouseBundleEntry(projectRoot)
const bundledDirectory = bundledEntry && new URL('./', bundledEntry).href
// The bundles' own files, as their facades require them (by real path: node_modules may be a link), are compiled with
// the code caches of src/vendor/code-cache.ts while Node's compile cache is on.
const cachedBundles = bundles.size > 0 && codeCacheDirectory() ? bundleDirectoryUrls() : []
if (bundles.size > 0 || bundledEntry) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === sourcesEntry && bundledEntry) return { url: bundledEntry, shortCircuit: true }
      // A file of the bundle importing another (its chunks, each a file the manifest names) by a relative path: Node's
      // own resolution would look every one of them up on the disk (some 30 chunks a start of serve loads).
      if (bundledDirectory && specifier.startsWith('.') && context.parentURL?.startsWith(bundledDirectory)) return { url: new URL(specifier, context.parentURL).href, shortCircuit: true }
      const bundle = bundles.get(specifier)
      if (!bundle) return nextResolve(specifier, context)
      return { url: context.conditions?.includes('require') ? bundle.require : bundle.import, shortCircuit: true }
    },
    // Not short-circuited: hooks registered before these (a test's record of what a start loads) see the bundle too.
    ...(cachedBundles.length > 0 && {
      load(url, context, nextLoad) {
        const loaded = nextLoad(url, context)
        if (!url.endsWith('.bundle.cjs') || !cachedBundles.some((directory) => url.startsWith(directory))) return loaded
        return { ...loaded, format: 'commonjs', source: bundleRunner() }
      },
    }),
  })
}

function bundleDirectoryUrls(): string[] {
  const directory = vendorDirectory(projectRoot)
  try {
    return [...new Set([directory, realpathSync(directory)])].map((path) => `${pathToFileURL(path).href}/`)
  } catch {
    return []
  }
}
