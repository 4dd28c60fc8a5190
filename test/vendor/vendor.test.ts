import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { buildVendor, VENDORED_PACKAGES } from '../../src/vendor/build.ts'
import { currentBundles, MANIFEST, vendorDirectory } from '../../src/vendor/manifest.ts'
import { repoRoot, tempDir } from '../helpers/gateway.ts'

const require = createRequire(import.meta.url)

describe('vendor: the dependencies bundled at install', () => {
  it('gives every specifier the exports the installed package gives, to import and to require', async () => {
    const directory = tempDir()
    try {
      const manifest = await buildVendor(directory)
      assert.deepEqual(Object.keys(manifest.packages), VENDORED_PACKAGES)
      for (const [name, vendored] of Object.entries(manifest.packages)) {
        assert.equal(vendored.version, JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')).version)
        // The package and each dependency bundled with it, at its installed version.
        assert.equal(vendored.contents[`node_modules/${name}`], vendored.version)
        for (const [directory, version] of Object.entries(vendored.contents)) {
          assert.equal(version, JSON.parse(readFileSync(join(repoRoot, directory, 'package.json'), 'utf8')).version, directory)
        }
      }
      for (const dependency of ['node_modules/find-my-way', 'node_modules/avvio', 'node_modules/pino']) assert.ok(dependency in manifest.packages.fastify!.contents, dependency)
      const specifiers = Object.values(manifest.packages).flatMap((vendored) => Object.entries(vendored.specifiers))
      // Subpaths (zod/v4/core), and the files of export patterns (jose's jwt/*), not only the packages' names.
      for (const expected of ['zod/v4/core', 'jose/jwt/verify', 'kysely/helpers/postgres']) {
        assert.ok(specifiers.some(([specifier]) => specifier === expected), expected)
      }
      for (const [specifier, files] of specifiers) {
        // This test process runs without the hook: these are the packages as installed.
        const installed = await import(specifier) as Record<string, unknown>
        const facade = await import(pathToFileURL(join(directory, files.import)).href) as Record<string, unknown>
        assert.deepEqual(Object.keys(facade).sort(), Object.keys(installed).sort(), `${specifier}: the names it exports`)
        assert.equal(typeof facade.default, typeof installed.default, `${specifier}: its default export`)
        const shim = require(join(directory, files.require)) as Record<string, unknown>
        const installedForRequire = require(specifier) as Record<string, unknown>
        assert.deepEqual(Object.keys(shim).sort(), Object.keys(installedForRequire).sort(), `${specifier}: what require gives`)
      }
      // One copy per package: the facades of a package's subpaths share the bundle's modules.
      const zod = await import(pathToFileURL(join(directory, manifest.packages.zod!.specifiers.zod!.import)).href) as typeof import('zod')
      const core = await import(pathToFileURL(join(directory, manifest.packages.zod!.specifiers['zod/v4/core']!.import)).href) as typeof import('zod/v4/core')
      assert.ok(zod.string() instanceof core.$ZodType)
      assert.equal(zod.globalRegistry, core.globalRegistry)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('runs zod\'s translations of its messages only when one is asked for, and gives each as installed', async () => {
    // Half of zod's bundle is its 60-odd translations, which zod's `locales` required when it loaded, each module's
    // top level run at every start; Gatehouse uses the English one alone, which zod loads by itself.
    const directory = tempDir()
    try {
      const manifest = await buildVendor(directory)
      const shim = join(directory, manifest.packages.zod!.specifiers.zod!.require)
      const coverage = join(directory, 'coverage')
      const probe = [
        `const z = require(${JSON.stringify(shim)})`,
        'z.object({ name: z.string() }).safeParse({ name: 1 })',
      ].join('\n')
      execFileSync(process.execPath, ['-e', probe], { env: { ...process.env, NODE_V8_COVERAGE: coverage } })
      const runs = new Map<string, number>()
      for (const file of readdirSync(coverage)) {
        const { result } = JSON.parse(readFileSync(join(coverage, file), 'utf8')) as { result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[] }
        for (const script of result.filter((entry) => entry.url.includes('zod.bundle.cjs'))) {
          for (const fn of script.functions) runs.set(fn.functionName, fn.ranges[0]!.count)
        }
      }
      assert.equal(runs.get('node_modules/zod/v4/locales/en.cjs'), 1, 'the English messages, which zod configures itself')
      const translations = [...runs].filter(([name]) => /^node_modules\/zod\/v4\/locales\/(?!en\.cjs|index\.cjs)/.test(name))
      assert.ok(translations.length > 30, `the translations seen in the bundle (${translations.length})`)
      assert.deepEqual(translations.filter(([, count]) => count > 0), [])

      const bundled = require(shim) as typeof import('zod')
      const installed = require('zod') as typeof import('zod')
      assert.deepEqual(Object.keys(bundled.locales).sort(), Object.keys(installed.locales).sort())
      assert.equal(Object.isFrozen(bundled.locales), Object.isFrozen(installed.locales))
      assert.equal(bundled.locales.de, bundled.locales.de)
      for (const name of ['de', 'fr', 'ja', 'ptBR'] as const) {
        const issue = { code: 'too_small', origin: 'string', minimum: 3, inclusive: true, input: 'ab' } as const
        assert.equal(bundled.locales[name]().localeError!(issue as never), installed.locales[name]().localeError!(issue as never), name)
      }
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('replaces the bundles whole: while they are built again, the manifest and every file it names are there', async () => {
    const directory = tempDir()
    try {
      await buildVendor(directory)
      const missing: string[] = []
      const check = setInterval(() => {
        let manifest: { packages: Record<string, { specifiers: Record<string, { import: string; require: string }> }> }
        try {
          manifest = JSON.parse(readFileSync(join(directory, MANIFEST), 'utf8'))
        } catch (error) {
          missing.push(`${MANIFEST}: ${(error as Error).message}`)
          return
        }
        const files = Object.values(manifest.packages).flatMap((vendored) => Object.values(vendored.specifiers).flatMap((named) => [named.import, named.require]))
        for (const file of files) if (!existsSync(join(directory, file))) missing.push(file)
      }, 5)
      try {
        await buildVendor(directory)
      } finally {
        clearInterval(check)
      }
      assert.deepEqual(missing.slice(0, 5), [], 'a start during the build would have found these missing')
      assert.deepEqual(readdirSync(join(directory, '..')).filter((name) => name.startsWith(`${directory.split('/').at(-1)}.`)), [], 'nothing left beside it')
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('leaves to Node a package whose installed version, or a bundled dependency\'s, is not the one bundled, and everything without a manifest', () => {
    const root = tempDir()
    try {
      assert.equal(currentBundles(root).size, 0)
      const directory = vendorDirectory(root)
      mkdirSync(directory, { recursive: true })
      writeFileSync(join(directory, MANIFEST), '{ not json')
      assert.equal(currentBundles(root).size, 0)
      const installed = [
        ['current', '1.0.0'], ['current/node_modules/nested', '3.0.0'], ['@scope/helper', '1.2.0'],
        ['upgraded', '2.0.0'],
        ['same-version', '1.0.0'], ['updated-dependency', '1.5.0'],
        ['unlisted', '1.0.0'],
      ]
      for (const [name, version] of installed) {
        mkdirSync(join(root, 'node_modules', name!), { recursive: true })
        writeFileSync(join(root, 'node_modules', name!, 'package.json'), JSON.stringify({ name, version }))
      }
      const manifest = {
        esbuild: '0',
        node: process.versions.node,
        packages: {
          current: {
            version: '1.0.0',
            specifiers: { current: { import: 'current.mjs', require: 'current.cjs' }, 'current/sub': { import: 'current__sub.mjs', require: 'current__sub.cjs' } },
            contents: { 'node_modules/current': '1.0.0', 'node_modules/current/node_modules/nested': '3.0.0', 'node_modules/@scope/helper': '1.2.0' },
          },
          upgraded: { version: '1.0.0', specifiers: { upgraded: { import: 'upgraded.mjs', require: 'upgraded.cjs' } }, contents: { 'node_modules/upgraded': '1.0.0' } },
          removed: { version: '1.0.0', specifiers: { removed: { import: 'removed.mjs', require: 'removed.cjs' } }, contents: { 'node_modules/removed': '1.0.0' } },
          // The package as bundled, one of its dependencies updated since (npm update, a security fix).
          'same-version': {
            version: '1.0.0',
            specifiers: { 'same-version': { import: 'same-version.mjs', require: 'same-version.cjs' } },
            contents: { 'node_modules/same-version': '1.0.0', 'node_modules/updated-dependency': '1.4.0' },
          },
          // A manifest from before it listed what a bundle holds.
          unlisted: { version: '1.0.0', specifiers: { unlisted: { import: 'unlisted.mjs', require: 'unlisted.cjs' } } },
        },
      }
      writeFileSync(join(directory, MANIFEST), JSON.stringify(manifest))
      let bundles = currentBundles(root)
      assert.deepEqual([...bundles.keys()], ['current', 'current/sub'])
      assert.equal(bundles.get('current/sub')!.import, pathToFileURL(join(directory, 'current__sub.mjs')).href)

      // A dependency nested under the package, changed: the package's bundle is stale.
      writeFileSync(join(root, 'node_modules', 'current/node_modules/nested', 'package.json'), JSON.stringify({ name: 'nested', version: '3.0.1' }))
      bundles = currentBundles(root)
      assert.deepEqual([...bundles.keys()], [])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
