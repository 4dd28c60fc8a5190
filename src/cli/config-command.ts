import { Command } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the config commands do (config.ts), loaded when one of them runs. */
const actions = () => import('./config.ts')

export function configCommand(): Command {
  const config = new Command('config').description('check or describe configuration files')
  config.addCommand(addStorageOptions(new Command('check').description('validate a configuration file and report every problem, as serve would at start')
    .argument('[file]', 'YAML file (default: --config, GATEHOUSE_CONFIG, or with --demo the demo configuration)')
    .option('--demo', 'accept builtin:demo upstreams, as serve --demo does'))
    .action(lazyAction(actions, 'checkConfig')))
  config.addCommand(addStorageOptions(new Command('reference').description('print every option with its default and description (JSON Schema)'))
    .action(lazyAction(actions, 'printReference')))
  return config
}
