/**
 * Preloaded by bin/gatehouse (`node --import`): points the specifiers of the dependencies bundled at install
 * (src/vendor/build.ts) at their bundles, for every importer, so the process holds one copy of each. A package
 * whose bundle holds a package (itself or a dependency) installed since at another version, or a missing or
 * unreadable manifest, leaves Node's own resolution alone.
 */
import { registerHooks } from 'node:module'
import { fileURLToPath } from 'node:url'
import { currentBundles } from './manifest.ts'

const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

const bundles = currentBundles(projectRoot)
if (bundles.size > 0) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const bundle = bundles.get(specifier)
      if (!bundle) return nextResolve(specifier, context)
      return { url: context.conditions?.includes('require') ? bundle.require : bundle.import, shortCircuit: true }
    },
  })
}
