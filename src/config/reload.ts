import type { Config } from './schema.ts'

/** The part of the configuration file a running gateway applies when it reads the file again (SIGHUP). */
export const RELOADED_SETTINGS: ReadonlySet<string> = new Set(['services'])

/**
 * The settings that differ between the running configuration and one read again, other than those a reload applies:
 * each by its path (`server.port`, `realms`, `ldap.url`), one level into a section, as `config check` names them.
 */
export function* restartOnlyChanges(running: Config, next: Config): Generator<string> {
  const sections = new Set([...Object.keys(running), ...Object.keys(next)])
  for (const section of sections) {
    if (RELOADED_SETTINGS.has(section)) continue
    const was = (running as Record<string, unknown>)[section]
    const now = (next as Record<string, unknown>)[section]
    if (same(was, now)) continue
    if (!isSection(was) || !isSection(now)) {
      yield section
      continue
    }
    for (const setting of new Set([...Object.keys(was), ...Object.keys(now)])) {
      if (!same(was[setting], now[setting])) yield `${section}.${setting}`
    }
  }
}

function isSection(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Values as the schema gives them: JSON's, the same written in any key order. */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, sortedKeys) === JSON.stringify(b, sortedKeys)
}

function sortedKeys(_key: string, value: unknown): unknown {
  return isSection(value) ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : value
}

/** The services a reload adds, removes and changes, by name. */
export function serviceChanges(running: Config, next: Config): { added: string[]; removed: string[]; changed: string[] } {
  const before = new Map(running.services.map((service) => [service.name, JSON.stringify(service)]))
  const after = new Map(next.services.map((service) => [service.name, JSON.stringify(service)]))
  return {
    added: [...after.keys()].filter((name) => !before.has(name)),
    removed: [...before.keys()].filter((name) => !after.has(name)),
    changed: [...after].filter(([name, service]) => before.has(name) && before.get(name) !== service).map(([name]) => name),
  }
}
