import { accessSync, closeSync, constants, existsSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Config } from '../config/schema.ts'
import { readTlsFiles, TlsFilesUnusable, type TlsCredentials } from '../listener/tls.ts'
import { metricsAccess, MetricsTokenUnusable } from '../metrics/access.ts'

export interface StartFiles {
  tls?: TlsCredentials
  /** One line each, naming the setting: nothing can start while there is one. */
  problems: string[]
}

/**
 * The files a configuration names that `serve` reads or opens before it touches the database (the TLS files, the
 * metrics token, the audit file), each checked as it will be used: `serve` stops on what is found here, and
 * `config check` reports it with the schema's problems. `create` opens the audit file, as `serve` will append to it;
 * without it nothing is created, and only whether it could be is checked.
 */
export function checkStartFiles(config: Config, { create }: { create: boolean }): StartFiles {
  const problems: string[] = []
  let tls: TlsCredentials | undefined
  try {
    if (config.server.tls) tls = readTlsFiles(config.server.tls)
  } catch (error) {
    if (!(error instanceof TlsFilesUnusable)) throw error
    problems.push(error.message)
  }
  try {
    if (config.metrics.enabled) metricsAccess(config.metrics)
  } catch (error) {
    if (!(error instanceof MetricsTokenUnusable)) throw error
    problems.push(error.message)
  }
  const auditFile = config.audit.output === 'file' ? config.audit.file! : undefined
  try {
    if (auditFile && create) closeSync(openSync(auditFile, 'a', 0o600))
    else if (auditFile) accessSync(existsSync(auditFile) ? auditFile : dirname(auditFile), constants.W_OK)
  } catch (error) {
    problems.push(`audit.file ${auditFile}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be written'}`)
  }
  return { tls, problems }
}
