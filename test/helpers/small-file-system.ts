import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import type { TestContext } from 'node:test'
import { tempDir } from './gateway.ts'

/**
 * Runs `use` on a file system of `size` (tmpfs: `64k`, `1m`) mounted at a directory of its own, unmounted and removed
 * after: a disk that fills. Skips the test where a mount is not allowed (not root).
 */
export async function onSmallFileSystem(t: TestContext, size: string, use: (dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir()
  try {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    } catch {
      t.skip('a small file system needs mount (root)')
      return
    }
    try {
      await use(dir)
    } finally {
      execFileSync('umount', [dir])
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
