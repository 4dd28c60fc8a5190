import type { Command } from 'commander'
import { z } from 'zod'
import { directoryWarnings } from '../config/ldap.ts'
import { ConfigError, demoConfigFile, loadConfigFile } from '../config/load.ts'
import { ConfigSchema } from '../config/schema.ts'
import { misnamed, outOfDate } from '../listener/tls.ts'
import { UsageError, type StorageOptions } from './common.ts'
import { checkStartFiles, demoUpstreamsProblem, missingSecretWarnings, publicUrlWarning, readableSecretsWarning, readableTlsKeyWarnings, sharedServiceClientWarnings } from './preflight.ts'

export function checkConfig(named: string | undefined, options: StorageOptions, command: Command): void {
  const file = fileToCheck(named, options.config || undefined, command.getOptionValueSource('config') === 'env', options.demo === true)
  const loaded = loadConfigFile(file)
  const demoProblem = demoUpstreamsProblem(loaded, options.demo === true)
  const { problems, tls: credentials, clientCertificateWarnings } = checkStartFiles(loaded, { create: false })
  if (demoProblem || problems.length) throw new ConfigError(file, [...(demoProblem ? [demoProblem] : []), ...problems])
  const { host, port, tls } = loaded.server
  const proxyWarning = publicUrlWarning(loaded, `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`)
  const certificateRefused = credentials && (outOfDate(credentials) ?? misnamed(credentials, loaded.server.public_url))
  const warnings = [readableSecretsWarning(file, loaded), ...readableTlsKeyWarnings(loaded), ...missingSecretWarnings(loaded, process.env), ...directoryWarnings(loaded.ldap), ...sharedServiceClientWarnings(loaded), proxyWarning && `WARNING: ${proxyWarning.message}`,
    certificateRefused && `WARNING: server.tls.cert_file: ${certificateRefused}; clients will refuse it`, ...clientCertificateWarnings.map((warning) => `WARNING: ${warning}`)].filter(Boolean)
  for (const warning of warnings) process.stderr.write(`gatehouse: ${warning}\n`)
  process.stdout.write(`${file}: OK (${loaded.services.length} service${loaded.services.length === 1 ? '' : 's'}: ${loaded.services.map((s) => s.name).join(', ') || 'none'})\n`)
}

export function printReference(): void {
  process.stdout.write(JSON.stringify(z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }), null, 2) + '\n')
}

/** The file named, or the one `serve` would read with the same options and environment (a named file wins over that). */
function fileToCheck(named: string | undefined, configured: string | undefined, fromEnvironment: boolean, demo: boolean): string {
  if (named !== undefined && configured !== undefined && named !== configured && !fromEnvironment) {
    throw new UsageError(`name one file to check, got ${named} and --config ${configured}`)
  }
  const file = named ?? configured ?? (demo ? demoConfigFile : undefined)
  if (file === undefined) throw new UsageError('name the file to check: config check FILE, --config FILE, GATEHOUSE_CONFIG or --demo')
  return file
}
