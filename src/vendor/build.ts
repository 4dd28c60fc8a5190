/**
 * Bundles the dependencies every start loads, each into one file, after `npm install` (the `postinstall` script).
 *
 * Node loads a package file by file: kysely is some 280 files, zod 120, Fastify with its dependencies 150, and each
 * costs a resolution, a read and a compile-cache lookup. The same code as one file per package loads in a third to
 * two thirds of the time: about 130 ms of every start on a 2-core machine. src/vendor/register.ts points the
 * packages' specifiers at these files when the gateway runs; anything missing or stale falls back to node_modules.
 *
 * Each package becomes one CommonJS bundle holding every specifier of its export map, so that all of them share one
 * copy of the package's modules, plus, per specifier, an ES module facade (named exports computed here, from the
 * bundle itself) and a CommonJS shim. Building never fails an install: on any error it says so, and the gateway
 * loads the packages as installed.
 */
import type { PluginBuild } from 'esbuild'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildGatehouseBundle } from './gatehouse-bundle.ts'
import { builtBeside } from './built-beside.ts'
import { MANIFEST, vendorDirectory, type Manifest, type VendoredPackage } from './manifest.ts'

/** The packages a start loads whose file count costs the most; each was measured to load faster bundled. */
export const VENDORED_PACKAGES = ['kysely', 'zod', 'yaml', 'fastify', 'jose']

const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

/**
 * A package's public specifiers: every subpath of its export map but package.json, with each pattern (`./jwt/*`)
 * expanded to the files it matches, or the bare name. All of them are bundled so that no importer of a subpath ends
 * up with a second copy of the package (and classes that fail `instanceof` against the first).
 */
function specifiersOf(name: string, packageDirectory: string, packageJson: { exports?: unknown }): string[] {
  const exportMap = packageJson.exports
  if (!exportMap || typeof exportMap !== 'object' || Object.keys(exportMap).every((key) => !key.startsWith('.'))) return [name]
  const subpaths: string[] = []
  for (const [subpath, target] of Object.entries(exportMap as Record<string, unknown>)) {
    if (subpath === './package.json') continue
    if (!subpath.includes('*')) {
      subpaths.push(subpath)
      continue
    }
    // A pattern that names whole files (zod's `./v4/locales/*`, for `zod/v4/locales/en.js`) leaves the choice of
    // build to the importer; bundling both builds would double the bundle for files no start loads.
    const pattern = nodeTarget(target)
    const [prefix, suffix] = pattern?.slice(2).split('*') ?? []
    if (prefix === undefined || !suffix) continue
    for (const file of filesUnder(join(packageDirectory, prefix))) {
      if (file.endsWith(suffix)) subpaths.push(subpath.replace('*', file.slice(0, file.length - suffix.length)))
    }
  }
  return subpaths.map((subpath) => (subpath === '.' ? name : `${name}/${subpath.slice(2)}`))
}

/** The file an export map entry gives Node's `require`, through nested conditions. */
function nodeTarget(target: unknown): string | undefined {
  if (typeof target === 'string') return target
  if (!target || typeof target !== 'object') return undefined
  for (const condition of ['node', 'require', 'default']) {
    const chosen = nodeTarget((target as Record<string, unknown>)[condition])
    if (chosen) return chosen
  }
  return undefined
}

/** Paths of the files below a directory, relative to it. */
function filesUnder(directory: string): string[] {
  try {
    return readdirSync(directory, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => relative(directory, join(entry.parentPath, entry.name)))
  } catch {
    return []
  }
}

/**
 * The packages some of `inputs` (paths relative to the project) belong to, by directory, with their installed
 * versions: `node_modules/ajv/node_modules/fast-uri/index.js` belongs to `node_modules/ajv/node_modules/fast-uri`.
 */
function packagesIn(inputs: string[]): Record<string, string> {
  const contents: Record<string, string> = {}
  for (const input of inputs) {
    const directory = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1]
    if (!directory || directory in contents) continue
    contents[directory] = (JSON.parse(readFileSync(join(projectRoot, directory, 'package.json'), 'utf8')) as { version: string }).version
  }
  return contents
}

/**
 * Modules that only re-export what they require, whose requires wait for the first read of an export: zod's `locales`
 * requires each of its 60-odd translations when zod loads (half of its bundle), where Gatehouse uses the English one
 * alone, which zod loads by itself.
 */
const LAZY_RE_EXPORTS = [/\/node_modules\/zod\/v4\/locales\/index\.cjs$/]

/**
 * Turns each `var name = require("file");` of a re-exporting module into a require run when `name` is first read, as
 * TypeScript writes such modules (`get: function () { return __importDefault(name).default; }`, which already waits
 * for the read). zod then seals the module's exports, reading every getter to make each a plain value
 * (`// seal-cjs-exports`); here they are frozen as they are, getters that read the same values. A module that uses such
 * a name any other way, or whose seal is not the one known, is left as it is.
 */
const lazyReExports = {
  name: 'lazy-re-exports',
  setup(build: PluginBuild) {
    build.onLoad({ filter: /\.c?js$/ }, (args) => {
      if (!LAZY_RE_EXPORTS.some((pattern) => pattern.test(args.path))) return undefined
      const text = readFileSync(args.path, 'utf8')
      const seal = text.indexOf('\n// seal-cjs-exports\n')
      if (seal !== -1 && !/^\(function \(\) \{[^]*Object\.freeze\(exports\);\n\}\)\(\);\s*$/.test(text.slice(seal + 21))) return undefined
      const source = seal === -1 ? text : `${text.slice(0, seal)}\nObject.freeze(exports);\n`
      const required = [...source.matchAll(/^var (\w+) = require\(("[^"]+")\);$/gm)]
      let lazy = source
      for (const [statement, name, file] of required) {
        lazy = lazy.replace(statement, `var ${name} = () => require(${file});`).replaceAll(`__importDefault(${name})`, `__importDefault(${name}())`)
      }
      const readOtherwise = required.some(([, name]) => new RegExp(`\\b${name}\\b(?!\\(\\)| = \\(\\) => require)`).test(lazy))
      return required.length === 0 || readOtherwise ? undefined : { contents: lazy, loader: 'js' as const, resolveDir: dirname(args.path) }
    })
  },
}

/**
 * Node's modules that a bundled file requires at its top level for what Gatehouse never asks of it: Fastify's
 * lib/server.js requires node:https and node:http2 to make a server itself, where Gatehouse hands it its own (a
 * `serverFactory`, src/server.ts). node:http2 alone costs about 16 ms of CPU at every start.
 */
const LAZY_BUILTINS = [{ file: /\/node_modules\/fastify\/lib\/server\.js$/, modules: ['node:https', 'node:http2'] }]

/**
 * Turns each `const name = require('node:...')` of those files into an object that requires the module at the first
 * read of one of its properties, which is all these files do with it. A file where one of the statements is not
 * found as written is left as it is.
 */
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(build: PluginBuild) {
    build.onLoad({ filter: new RegExp(LAZY_BUILTINS.map(({ file }) => file.source).join('|')) }, (args) => {
      const lazy = LAZY_BUILTINS.find(({ file }) => file.test(args.path))
      if (!lazy) return undefined
      let source = readFileSync(args.path, 'utf8')
      for (const name of lazy.modules) {
        const statement = new RegExp(`^const (\\w+) = require\\('${name}'\\)$`, 'm')
        if (!statement.test(source)) return undefined
        source = source.replace(statement, (_, variable: string) =>
          `let ${variable}Loaded\nconst ${variable} = new Proxy({}, { get: (_, key) => (${variable}Loaded ??= require('${name}'))[key] })`)
      }
      return { contents: source, loader: 'js' as const, resolveDir: dirname(args.path) }
    })
  },
}

/** A file name for a specifier: `zod/v4/core` becomes `zod__v4__core`. */
function fileStem(specifier: string): string {
  return specifier.replace(/^@/, '').replaceAll('/', '__')
}

/**
 * The ES module facade of one specifier: its default export as Node would give it (a transpiled module's `default`,
 * else the whole `module.exports`; none where the package's own ES module has none, as kysely's), every other key
 * as a named export, and, as Node gives a CommonJS module's namespace, `module.exports` where the installed one has
 * it. `installed` names what importing the installed package gives.
 */
function facadeSource(bundleFile: string, specifier: string, exported: Record<string, unknown>, installed: Set<string>): string {
  const names = Object.keys(exported).filter((key) => key !== 'default' && key !== '__esModule')
  const transpiledDefault = exported.__esModule === true && 'default' in exported
  const lines = [
    // Required, not imported: an import would have Node scan the whole bundle for the names of its exports.
    `import { createRequire } from 'node:module'`,
    `const bundle = createRequire(import.meta.url)('./${bundleFile}')`,
    `const exported = bundle[${JSON.stringify(specifier)}]`,
    ...(installed.has('default') ? [`export default ${transpiledDefault ? 'exported.default' : 'exported'}`] : []),
    ...(installed.has('module.exports') ? ['export { exported as "module.exports" }'] : []),
    ...names.map((name, index) => `const _${index} = exported[${JSON.stringify(name)}]`),
  ]
  if (names.length > 0) lines.push(`export { ${names.map((name, index) => `_${index} as ${JSON.stringify(name)}`).join(', ')} }`)
  return lines.join('\n') + '\n'
}

/** Builds the bundles beside `directory`, then puts them in its place (see builtBeside). */
export async function buildVendor(directory = vendorDirectory(projectRoot)): Promise<Manifest> {
  return builtBeside(directory, buildVendorInto)
}

async function buildVendorInto(directory: string): Promise<Manifest> {
  const { build, version: esbuildVersion } = await import('esbuild')
  mkdirSync(directory, { recursive: true })
  const packages: Record<string, VendoredPackage> = {}
  for (const name of VENDORED_PACKAGES) {
    // Read where src/vendor/register.ts reads it (not every package exports its package.json).
    const packageDirectory = join(projectRoot, 'node_modules', name)
    const packageJson = JSON.parse(readFileSync(join(packageDirectory, 'package.json'), 'utf8')) as { version: string; exports?: unknown }
    const specifiers = specifiersOf(name, packageDirectory, packageJson)
    const bundleFile = `${fileStem(name)}.bundle.cjs`
    const { metafile } = await build({
      stdin: {
        // Getters: a specifier's modules run when it is first imported (zod's v3 and mini never, here).
        contents: specifiers.map((specifier) => `Object.defineProperty(exports, ${JSON.stringify(specifier)}, { enumerable: true, get: () => require(${JSON.stringify(specifier)}) })`).join('\n'),
        resolveDir: projectRoot,
        loader: 'js',
      },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      outfile: join(directory, bundleFile),
      logLevel: 'error',
      // Names stay as written: Fastify and its plugins read functions' names (plugin names, hook names in errors).
      keepNames: true,
      // A third less to read and hash at every start; names and the code's shape stay as written.
      minifyWhitespace: true,
      metafile: true,
      absWorkingDir: projectRoot,
      plugins: [lazyReExports, lazyBuiltins],
    })
    const bundle = createRequire(join(directory, bundleFile))(`./${bundleFile}`) as Record<string, Record<string, unknown>>
    const files: VendoredPackage['specifiers'] = {}
    for (const specifier of specifiers) {
      const stem = fileStem(specifier)
      // The package as an importer gets it (this process has no resolve hook).
      const installed = new Set(Object.keys(await import(specifier) as object))
      writeFileSync(join(directory, `${stem}.mjs`), facadeSource(bundleFile, specifier, bundle[specifier]!, installed))
      writeFileSync(join(directory, `${stem}.cjs`), `module.exports = require('./${bundleFile}')[${JSON.stringify(specifier)}]\n`)
      files[specifier] = { import: `${stem}.mjs`, require: `${stem}.cjs` }
    }
    packages[name] = { version: packageJson.version, specifiers: files, contents: packagesIn(Object.keys(metafile.inputs)) }
  }
  const manifest: Manifest = { esbuild: esbuildVersion, node: process.versions.node, packages }
  writeFileSync(join(directory, MANIFEST), JSON.stringify(manifest, null, 2) + '\n')
  return manifest
}

if (import.meta.main) {
  try {
    const manifest = await buildVendor()
    process.stdout.write(`gatehouse: bundled ${Object.keys(manifest.packages).join(', ')} for a faster start\n`)
  } catch (error) {
    // An install must not fail for want of a faster start: the gateway then loads these packages as installed.
    process.stderr.write(`gatehouse: could not bundle dependencies (${(error as Error).message}); starts will load them as installed\n`)
  }
  try {
    await buildGatehouseBundle(projectRoot)
    process.stdout.write('gatehouse: bundled its own modules for a faster start\n')
  } catch (error) {
    process.stderr.write(`gatehouse: could not bundle its own modules (${(error as Error).message}); starts will load the sources\n`)
  }
}
