/**
 * Texts a configuration file is read as instead of its bytes (src/config/load.ts): a replacement worker of
 * `serve --workers` starts on the configuration its siblings run (src/cli/workers.ts), not on a file edited since, or
 * broken by an edit a SIGHUP refused. A module of its own: the workers' module is loaded for `--help`, without the
 * configuration's schema.
 */
const pinnedTexts = new Map<string, string>()

/** Reads `file` as `text` from now on; undefined: as its bytes again. */
export function pinConfigText(file: string, text: string | undefined): void {
  if (text === undefined) pinnedTexts.delete(file)
  else pinnedTexts.set(file, text)
}

/** The text `file` is read as instead of its bytes, if any. */
export function pinnedConfigText(file: string): string | undefined {
  return pinnedTexts.get(file)
}
