import { Command } from 'commander'
import { z } from 'zod'
import { ConfigError, loadConfigFile } from '../config/load.ts'
import { ConfigSchema } from '../config/schema.ts'
import { addStorageOptions } from './common.ts'
import { checkStartFiles, readableSecretsWarning } from './preflight.ts'

export function configCommand(): Command {
  const config = new Command('config').description('check or describe configuration files')
  config.addCommand(addStorageOptions(new Command('check').description('validate a configuration file and report every problem').argument('<file>', 'YAML file'))
    .action((file: string) => {
      const loaded = loadConfigFile(file)
      const { problems } = checkStartFiles(loaded, { create: false })
      if (problems.length) throw new ConfigError(file, problems)
      const warning = readableSecretsWarning(file, loaded)
      if (warning) process.stderr.write(`gatehouse: ${warning}\n`)
      process.stdout.write(`${file}: OK (${loaded.services.length} service${loaded.services.length === 1 ? '' : 's'}: ${loaded.services.map((s) => s.name).join(', ') || 'none'})\n`)
    }))
  config.addCommand(addStorageOptions(new Command('reference').description('print every option with its default and description (JSON Schema)'))
    .action(() => {
      process.stdout.write(JSON.stringify(z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }), null, 2) + '\n')
    }))
  return config
}
