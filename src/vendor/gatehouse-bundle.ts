/**
 * Gatehouse's own modules as one ES module bundle, made at `npm install` beside the dependencies' bundles
 * (src/vendor/build.ts), and the check that decides at every start whether it may run instead of the sources.
 *
 * Node loads the sources module by module: some 200 of them at every start, each resolved, read, its types
 * stripped and its compiled code looked up in the compile cache. The bundle is one file for what every start
 * loads, and one chunk for each module loaded lazily today (a realm's provider, the migrations, the directory's
 * code...), which stay lazy. Dependencies are not in it: they are imported as the sources import them, so the
 * dependencies' bundles still apply.
 *
 * Developers edit the sources and run the tests without reinstalling: they must never run stale code. The bundle
 * records the time and size of every source it holds, and runs only while each is as recorded and the bundle was
 * made from this checkout; otherwise, or without it, Node loads the sources. Stack traces name the bundle's file
 * and line, under a comment naming each module's source; with `NODE_OPTIONS=--enable-source-maps`, the sources'.
 */
import { mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

/** The command line's module: the bundle's entry, which the resolve hook (src/vendor/register.ts) hands out instead. */
export const ENTRY = 'src/cli/main.ts'

/**
 * Modules that must stay the one copy Node loads from the sources: the provider's clock hands oidc-provider its own
 * URL as oidc-provider's `epoch_time.js`, and a bundled copy beside it would hold another clock; the code caches
 * of the dependencies' bundles are kept by the copy the preloaded hooks load (src/vendor/register.ts).
 */
const LOADED_FROM_SOURCES = ['src/oidc/provider-clock.ts', 'src/vendor/code-cache.ts']

const MANIFEST = 'manifest.json'

export interface GatehouseBundleManifest {
  /** The checkout the bundle was made from: another one (sharing the install) loads its own sources. */
  root: string
  /** The entry's file, relative to the bundle's directory. */
  entry: string
  /** Every source in the bundle, relative to the root, with the modification time and size it had. */
  sources: Record<string, { mtimeMs: number; size: number }>
  /** Each output file (relative to the bundle's directory) and the sources in it, for tests of what a start loads. */
  outputs: Record<string, string[]>
}

/** Under node_modules, as the dependencies' bundles, so that a fresh clone has none. */
export function gatehouseBundleDirectory(root: string): string {
  return join(root, 'node_modules', '.cache', 'gatehouse-bundle')
}

/**
 * The manifest of the bundle made from `root`, if it may run: made from this checkout, and every source in it of
 * the time and size recorded. A stat per source (some 250) at every start: a tenth of what the bundle saves.
 */
export function currentGatehouseBundle(root: string, directory = gatehouseBundleDirectory(root)): GatehouseBundleManifest | undefined {
  let manifest: GatehouseBundleManifest
  try {
    manifest = JSON.parse(readFileSync(join(directory, MANIFEST), 'utf8')) as GatehouseBundleManifest
  } catch {
    return undefined
  }
  if (manifest.root !== root || !manifest.sources || typeof manifest.entry !== 'string') return undefined
  for (const [source, recorded] of Object.entries(manifest.sources)) {
    // A source that cannot be read (gone, or its directory closed to this user) makes the bundle as stale.
    let stats
    try {
      stats = statSync(join(root, source))
    } catch {
      return undefined
    }
    if (stats.mtimeMs !== recorded.mtimeMs || stats.size !== recorded.size) return undefined
  }
  return manifest
}

/**
 * The URL of the bundle's entry, for the sources' entry (`ENTRY`) when the bundle is current. Its real path, as Node
 * resolves the chunks it imports (node_modules may be a link), so that every file of the bundle has one URL.
 */
export function gatehouseBundleEntry(root: string, directory = gatehouseBundleDirectory(root)): string | undefined {
  const manifest = currentGatehouseBundle(root, directory)
  if (!manifest) return undefined
  try {
    return pathToFileURL(realpathSync(join(directory, manifest.entry))).href
  } catch {
    return undefined
  }
}

/**
 * Bundles the sources from `ENTRY` on. Each module's `import.meta.url` is written as its source's URL, so that what
 * it reads beside itself (the demo configuration, the interface's static files, a worker's module) is found where
 * it is. A source changed while bundling leaves no manifest: the sources then load, until the next build.
 */
export async function buildGatehouseBundle(root: string, directory = gatehouseBundleDirectory(root)): Promise<GatehouseBundleManifest> {
  // Imported here, not by the module: every start loads this one, to find the bundle.
  const { builtBeside } = await import('./built-beside.ts')
  return builtBeside(directory, (staging) => buildGatehouseBundleInto(root, staging))
}

/** Built where it will not run: the source maps and the manifest name nothing by this directory's path. */
async function buildGatehouseBundleInto(root: string, directory: string): Promise<GatehouseBundleManifest> {
  const { build } = await import('esbuild')
  mkdirSync(directory, { recursive: true })
  const began = Date.now()
  const external = new Set(LOADED_FROM_SOURCES.map((source) => join(root, source)))
  const { metafile } = await build({
    entryPoints: [join(root, ENTRY)],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    packages: 'external',
    outdir: directory,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    // Not keepNames: it wraps every function and class made inside another in a call that sets its `name`, which
    // the proxied path paid for each request's closures (docs/performance.md). Names stay as written without it,
    // but for a top-level function that shares its name with another module's (`refuse2`: stack traces only;
    // errors carry their `name` as a field, and nothing looks a function or class up by its name).
    keepNames: false,
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'error',
    absWorkingDir: root,
    plugins: [{
      name: 'gatehouse-sources',
      setup(bundler) {
        bundler.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => {
          const path = join(args.resolveDir, args.path)
          return external.has(path) ? { path: pathToFileURL(path).href, external: true } : undefined
        })
        bundler.onLoad({ filter: /\.ts$/ }, (args) => ({
          contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
          loader: 'ts',
        }))
      },
    }],
  })
  const sources: GatehouseBundleManifest['sources'] = {}
  for (const source of Object.keys(metafile.inputs)) {
    const { mtimeMs, size } = statSync(join(root, source))
    if (mtimeMs >= began) throw new Error(`${source} changed while it was bundled`)
    sources[source] = { mtimeMs, size }
  }
  const outputs: GatehouseBundleManifest['outputs'] = {}
  for (const [output, { inputs }] of Object.entries(metafile.outputs)) {
    if (output.endsWith('.map')) absoluteSources(join(root, output))
    else outputs[relative(directory, join(root, output))] = Object.keys(inputs)
  }
  // Under node_modules, the bundle's `.js` files have no package to say they are ES modules: Node would parse each one
  // it loads twice, first to find out (about 25 ms of a start's CPU).
  writeFileSync(join(directory, 'package.json'), '{ "type": "module" }\n')
  const manifest: GatehouseBundleManifest = { root, entry: 'main.js', sources, outputs }
  writeFileSync(join(directory, MANIFEST), JSON.stringify(manifest, null, 2) + '\n')
  return manifest
}

/**
 * Names a source map's sources by their URLs: relative, they would be taken from where the map really is, which is
 * another checkout's when node_modules is a link to its install.
 */
function absoluteSources(mapFile: string): void {
  const map = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[] }
  map.sources = map.sources.map((source) => pathToFileURL(resolve(dirname(mapFile), source)).href)
  writeFileSync(mapFile, JSON.stringify(map))
}
