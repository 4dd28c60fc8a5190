import { existsSync, renameSync, rmSync } from 'node:fs'

/**
 * Builds into a directory beside `directory` and then puts it in its place, so that a gateway or command starting
 * while `npm install` runs finds the previous build or the new one, whole: removing a build first and writing it
 * again in place left a start a manifest and none of its files, or a running gateway without the chunk a lazy
 * import asks for, for the seconds a build takes. A failed build leaves the previous one as it was.
 */
export async function builtBeside<T>(directory: string, build: (staging: string) => Promise<T>): Promise<T> {
  const staging = `${directory}.building-${process.pid}`
  rmSync(staging, { recursive: true, force: true })
  try {
    const built = await build(staging)
    const previous = `${directory}.previous-${process.pid}`
    if (existsSync(directory)) renameSync(directory, previous)
    renameSync(staging, directory)
    rmSync(previous, { recursive: true, force: true })
    return built
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
}
