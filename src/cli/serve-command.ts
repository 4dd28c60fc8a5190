import { Command, Option } from 'commander'
import { logFormats, logLevels } from '../logging/format.ts'
import { addStorageOptions, lazyAction, UsageError } from './common.ts'
import { parseWorkers } from './workers.ts'

/** What the serve command does (serve.ts), loaded when it runs. */
const actions = () => import('./serve.ts')

export function serveCommand(): Command {
  return addStorageOptions(new Command('serve')
    .description('run the gateway')
    .option('--demo', 'use the demo configuration (unless --config is given) and start the built-in demo upstreams')
    .addOption(new Option('--host <address>', 'address to listen on (default: from the config, 127.0.0.1)').argParser(parseHost))
    .addOption(new Option('--port <port>', 'port to listen on (default: from the config, 8080)').argParser(parsePort))
    .addOption(new Option('--workers <count>', 'processes sharing the port and the database: a number, or auto for one per CPU (default 1)').argParser(parseWorkers).env('GATEHOUSE_WORKERS'))
    .addOption(new Option('--log-format <format>', 'auto: readable lines on a terminal, JSON lines otherwise').choices(logFormats).default('auto').env('GATEHOUSE_LOG_FORMAT'))
    .addOption(new Option('--log-level <level>', 'info: one line per request; warn and above: none').choices(logLevels).default('info').env('GATEHOUSE_LOG_LEVEL')))
    .action(lazyAction(actions, 'serve'))
}

/** An empty address would make Node listen on every interface, the opposite of what was asked. */
function parseHost(value: string): string {
  if (!value.trim()) throw new UsageError(`--host must be an address to listen on, got "${value}"`)
  return value
}

function parsePort(value: string): string {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got "${value}"`)
  return value
}
