import { join } from 'node:path'

/** Where the bundles live: under node_modules, so that they go with the install they were made from. */
export function vendorDirectory(projectRoot: string): string {
  return join(projectRoot, 'node_modules', '.cache', 'gatehouse-vendor')
}

export const MANIFEST = 'manifest.json'

export interface VendoredPackage {
  /** The installed version the bundle was made from: another version installed since is loaded as installed. */
  version: string
  /** Each specifier's files, relative to the vendor directory: an ES module facade and a CommonJS shim. */
  specifiers: Record<string, { import: string; require: string }>
}

export interface Manifest {
  esbuild: string
  node: string
  packages: Record<string, VendoredPackage>
}
