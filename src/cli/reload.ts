import { ConfigError, configFileIsEmpty } from '../config/load.ts'
import type { Config } from '../config/schema.ts'
import { resolveConfig } from './actions.ts'
import type { StorageOptions } from './common.ts'
import { checkStartFiles, demoUpstreamsProblem, missingSecrets } from './preflight.ts'

/**
 * The configuration file read again as `serve` read it at start (its options and environment), and checked as
 * `config check` checks it, the files it names included: the configuration, or every problem found. `started` is the
 * configuration the gateway started with.
 */
export function readConfigAgain(options: StorageOptions & { demo?: boolean }, started: Config): { config: Config } | { problems: string[] } {
  // At start an empty file means the defaults; read again, it is one emptied (an editor that truncates the file
  // before writing it anew, a copy that wrote nothing yet), and taking it would remove every service at once.
  if (options.config !== undefined && configFileIsEmpty(options.config)) {
    return { problems: [`${options.config}: the file is empty; a reload takes a file that names its settings (restart to run on the defaults)`] }
  }
  let config: Config
  try {
    config = resolveConfig(options)
  } catch (error) {
    return { problems: error instanceof ConfigError ? error.problems : [(error as Error).message] }
  }
  const problems = checkStartFiles(config, { create: false }).problems
  const demoProblem = demoUpstreamsProblem(config, options.demo === true)
  if (demoProblem) problems.push(demoProblem)
  problems.push(...missingSecrets(config, process.env))
  // The demo's upstreams are started with the gateway, for the services that name them then, and run until it stops:
  // a service moved to another upstream by a reload may move back to its own.
  config.services.forEach((service, i) => {
    if (service.upstream === 'builtin:demo' && !started.services.some((kept) => kept.name === service.name && kept.upstream === 'builtin:demo')) {
      problems.push(`services.${i}.upstream: builtin:demo upstreams start with the gateway: restart to add the service "${service.name}"`)
    }
  })
  return problems.length ? { problems } : { config }
}
