import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { repoRoot } from '../helpers/gateway.ts'

/** Every TypeScript file under `directory`, recursively. */
function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

describe('dependencies whose internal files Gatehouse imports', () => {
  it('are pinned to the exact version the code that imports them was written against', () => {
    const { dependencies } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    const deepImport = /['"]((?:@[\w.-]+\/)?[\w.-]+)\/lib\/[^'"]+['"]/g
    const packages = new Set<string>()
    for (const file of sourceFiles(join(repoRoot, 'src'))) {
      for (const [, name] of readFileSync(file, 'utf8').matchAll(deepImport)) packages.add(name!)
    }
    // The token lanes mirror oidc-provider's grants with its own helpers, and the lean proxy takes undici's
    // connection pool alone: a minor release may change either without notice.
    for (const expected of ['oidc-provider', 'undici']) assert.ok(packages.has(expected), `${expected} is imported by its internal files`)
    for (const name of packages) {
      const range = dependencies[name]
      assert.ok(range, `${name} is a dependency`)
      assert.match(range, /^\d+\.\d+\.\d+$/, `${name} is pinned to one version, not "${range}"`)
      const installed = JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
      assert.equal(installed.version, range, `${name} is installed at its pinned version`)
    }
  })
})
