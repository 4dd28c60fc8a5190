import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** Where the bundles live: under node_modules, so that they go with the install they were made from. */
export function vendorDirectory(projectRoot: string): string {
  return join(projectRoot, 'node_modules', '.cache', 'gatehouse-vendor')
}

export const MANIFEST = 'manifest.json'

export interface VendoredPackage {
  /** The installed version the bundle was made from: another version installed since is loaded as installed. */
  version: string
  /**
   * Every package whose files went into the bundle (the package itself and its dependencies), by directory relative
   * to the project, with the version it had: a dependency updated since, under a package of the same version, makes
   * the bundle stale too.
   */
  contents: Record<string, string>
  /** Each specifier's files, relative to the vendor directory: an ES module facade and a CommonJS shim. */
  specifiers: Record<string, { import: string; require: string }>
}

export interface Manifest {
  esbuild: string
  node: string
  packages: Record<string, VendoredPackage>
}

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
  for (const vendored of Object.values(manifest.packages)) {
    if (!isCurrent(root, vendored)) continue
    for (const [specifier, files] of Object.entries(vendored.specifiers)) {
      bundles.set(specifier, { import: pathToFileURL(join(directory, files.import)).href, require: pathToFileURL(join(directory, files.require)).href })
    }
  }
  return bundles
}

/**
 * Whether every package that went into a bundle is still installed at the version it was bundled from (a manifest
 * that does not say which packages those were is not trusted).
 */
function isCurrent(root: string, vendored: VendoredPackage): boolean {
  if (!vendored.contents || typeof vendored.contents !== 'object' || Object.keys(vendored.contents).length === 0) return false
  for (const [directory, version] of Object.entries(vendored.contents)) {
    try {
      if ((JSON.parse(readFileSync(join(root, directory, 'package.json'), 'utf8')) as { version?: string }).version !== version) return false
    } catch {
      return false
    }
  }
  return true
}
