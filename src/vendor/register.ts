/**
 * Preloaded by bin/gatehouse (`node --import`): points the specifiers of the dependencies bundled at install
 * (src/vendor/build.ts) at their bundles, for every importer, so the process holds one copy of each. A package whose
 * installed version is not the one bundled, or a missing or unreadable manifest, leaves Node's own resolution alone.
 */
import { readFileSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { MANIFEST, vendorDirectory, type Manifest } from './manifest.ts'

const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

/** Specifier to the URLs of its facade (for `import`) and shim (for `require`), for the packages still current. */
export function currentBundles(root: string): Map<string, { import: string; require: string }> {
  const directory = vendorDirectory(root)
  const bundles = new Map<string, { import: string; require: string }>()
  let manifest: Manifest
  try {
    manifest = JSON.parse(readFileSync(join(directory, MANIFEST), 'utf8')) as Manifest
  } catch {
    return bundles
  }
  for (const [name, vendored] of Object.entries(manifest.packages)) {
    let installed: string | undefined
    try {
      installed = (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }).version
    } catch {
      continue
    }
    if (installed !== vendored.version) continue
    for (const [specifier, files] of Object.entries(vendored.specifiers)) {
      bundles.set(specifier, { import: pathToFileURL(join(directory, files.import)).href, require: pathToFileURL(join(directory, files.require)).href })
    }
  }
  return bundles
}

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
