import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { buildGatehouseBundle, currentGatehouseBundle, gatehouseBundleEntry } from '../../src/vendor/gatehouse-bundle.ts'
import { repoRoot } from '../helpers/gateway.ts'

const node = join(repoRoot, 'node_modules/.bin/node')

/** A directory for a bundle, under node_modules as the real one is, so that its imports of the dependencies resolve. */
function bundleDirectory(): string {
  return mkdtempSync(join(repoRoot, 'node_modules', '.cache', 'gatehouse-bundle-test-'))
}

describe('the bundle of Gatehouse\'s own modules', () => {
  it('runs the command line from one file, keeps lazily loaded modules in chunks of their own, and reads files beside the sources', async () => {
    const directory = bundleDirectory()
    try {
      const manifest = await buildGatehouseBundle(repoRoot, directory)
      assert.equal(manifest.root, repoRoot)
      for (const source of ['src/cli/main.ts', 'src/cli/serve.ts', 'src/api/register.ts', 'src/oidc/provider.ts']) assert.ok(source in manifest.sources, source)
      // Loaded when first used, as from the sources: a realm's provider, the directory's code, the migrations.
      for (const lazy of ['src/oidc/provider.ts', 'src/directory/ldap.ts', 'src/store/migrations/001_core.ts']) {
        assert.ok(!manifest.outputs['main.js']!.includes(lazy), `${lazy} is not in the entry`)
      }
      // The commands' definitions are in the entry, which `--help` loads alone; what each command does is in chunks,
      // loaded when it runs.
      for (const definitions of ['src/cli/program.ts', 'src/cli/users-command.ts', 'src/cli/serve-command.ts']) {
        assert.ok(manifest.outputs['main.js']!.includes(definitions), `${definitions} is in the entry`)
      }
      for (const action of ['src/cli/users.ts', 'src/cli/serve.ts', 'src/cli/actions.ts', 'src/app.ts', 'src/server.ts', 'src/config/schema.ts']) {
        assert.ok(!manifest.outputs['main.js']!.includes(action), `${action} is not in the entry`)
      }
      // Each module in one file: an error class a chunk throws is the one the entry matches it against (src/cli/main.ts).
      const bundled = Object.values(manifest.outputs).flat()
      assert.deepEqual(bundled.filter((source, index) => bundled.indexOf(source) !== index), [])
      // Its own modules' import.meta.url is their source's: the version is read from package.json beside src/.
      const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }
      // Declared an ES module, not found to be one by parsing it first (which the flag turns off).
      assert.equal(execFileSync(node, ['--no-experimental-detect-module', join(directory, 'main.js'), '--version'], { encoding: 'utf8' }).trim(), version)
      assert.equal(gatehouseBundleEntry(repoRoot, directory), pathToFileURL(realpathSync(join(directory, 'main.js'))).href)
      // No name-setting wrappers around the closures each request makes (esbuild's keepNames: docs/performance.md).
      const files = readdirSync(directory, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js'))
      assert.ok(files.length > 10)
      for (const file of files) assert.doesNotMatch(readFileSync(join(directory, file), 'utf8'), /\b__name\(/, file)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('is replaced whole: while it is built again, the manifest and every file it names are there, and nothing is left beside it', async () => {
    const directory = bundleDirectory()
    try {
      await buildGatehouseBundle(repoRoot, directory)
      const missing: string[] = []
      const check = setInterval(() => {
        let outputs: string[]
        try {
          outputs = Object.keys((JSON.parse(readFileSync(join(directory, 'manifest.json'), 'utf8')) as { outputs: Record<string, string[]> }).outputs)
        } catch (error) {
          missing.push(`manifest.json: ${(error as Error).message}`)
          return
        }
        for (const output of outputs) if (!existsSync(join(directory, output))) missing.push(output)
      }, 5)
      try {
        await buildGatehouseBundle(repoRoot, directory)
      } finally {
        clearInterval(check)
      }
      assert.deepEqual(missing.slice(0, 5), [], 'a start during the build would have found these missing')
      assert.ok(currentGatehouseBundle(repoRoot, directory))
      const name = directory.split('/').at(-1)!
      assert.deepEqual(readdirSync(join(directory, '..')).filter((entry) => entry.startsWith(`${name}.`)), [])
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('is not used once a source in it changed, went missing, or for another checkout, nor without a readable manifest or its entry', async () => {
    const directory = bundleDirectory()
    try {
      const manifest = await buildGatehouseBundle(repoRoot, directory)
      assert.ok(currentGatehouseBundle(repoRoot, directory))
      const rewrite = (change: (copy: typeof manifest) => void) => {
        const copy = structuredClone(manifest)
        change(copy)
        writeFileSync(join(directory, 'manifest.json'), JSON.stringify(copy))
      }
      // Edited since: its time or its size differs from the one bundled (an older time too: a file copied back).
      rewrite((copy) => { copy.sources['src/cli/serve.ts']!.mtimeMs -= 1000 })
      assert.equal(currentGatehouseBundle(repoRoot, directory), undefined)
      rewrite((copy) => { copy.sources['src/api/users.ts']!.size += 1 })
      assert.equal(currentGatehouseBundle(repoRoot, directory), undefined)
      rewrite((copy) => { copy.sources['src/no-longer-there.ts'] = { mtimeMs: 0, size: 0 } })
      assert.equal(currentGatehouseBundle(repoRoot, directory), undefined)
      // Another checkout sharing the install loads its own sources.
      rewrite((copy) => { copy.root = '/elsewhere/' })
      assert.equal(currentGatehouseBundle(repoRoot, directory), undefined)
      writeFileSync(join(directory, 'manifest.json'), '{ not json')
      assert.equal(gatehouseBundleEntry(repoRoot, directory), undefined)
      rmSync(join(directory, 'manifest.json'))
      assert.equal(gatehouseBundleEntry(repoRoot, directory), undefined)
      rewrite(() => {})
      assert.ok(gatehouseBundleEntry(repoRoot, directory))
      // Its entry gone, the manifest left: the sources, not a start that fails.
      rmSync(join(directory, 'main.js'))
      assert.equal(gatehouseBundleEntry(repoRoot, directory), undefined)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })
})
