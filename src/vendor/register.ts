/**
 * Preloaded by bin/gatehouse (`node --import`): points the specifiers of the dependencies bundled at install
 * (src/vendor/build.ts) at their bundles, for every importer, so the process holds one copy of each, and the command
 * line's module at the bundle of Gatehouse's own modules (src/vendor/gatehouse-bundle.ts). A package whose bundle
 * holds a package (itself or a dependency) installed since at another version, a source changed since it was
 * bundled, or a missing or unreadable manifest, leaves Node's own resolution alone.
 */
import { registerHooks } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ENTRY, gatehouseBundleEntry } from './gatehouse-bundle.ts'
import { currentBundles } from './manifest.ts'

const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

const bundles = currentBundles(projectRoot)
const sourcesEntry = pathToFileURL(join(projectRoot, ENTRY)).href
const bundledEntry = gatehouseBundleEntry(projectRoot)
if (bundles.size > 0 || bundledEntry) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === sourcesEntry && bundledEntry) return { url: bundledEntry, shortCircuit: true }
      const bundle = bundles.get(specifier)
      if (!bundle) return nextResolve(specifier, context)
      return { url: context.conditions?.includes('require') ? bundle.require : bundle.import, shortCircuit: true }
    },
  })
}
