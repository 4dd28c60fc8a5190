import { Command, Option } from 'commander'
import type { App } from '../app.ts'
import { authMethods, type AuthMethod } from '../config/schema.ts'
import { splitTarget } from '../http/request-target.ts'
import { addStorageOptions, UsageError, withApp, type StorageOptions } from './common.ts'

interface CheckOptions extends StorageOptions {
  authMethod: AuthMethod
  scope?: string[]
  address: string
}

/** `access check`: what the running gateway would decide for a user's request, from the same rules engine. */
export function accessCommand(): Command {
  const access = new Command('access').description('explain access decisions')
  access.addCommand(addStorageOptions(new Command('check')
    .description('print whether USER may make the request METHOD PATH, and the rule that decides (exit 1 when refused)')
    .argument('<user>', 'username')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /api/eda/v1/activations/')
    .addOption(new Option('--auth-method <method>', 'how the user signs in').choices(authMethods).default('session'))
    .addOption(new Option('--scope <scope...>', 'token scopes the request carries'))
    .addOption(new Option('--address <ip>', 'the client address').default('127.0.0.1')))
    .action((user: string, method: string, path: string, options: CheckOptions) => withApp(options, (app) => check(app, user, method.toUpperCase(), path, options))))
  return access
}

async function check(app: App, username: string, method: string, target: string, options: CheckOptions): Promise<void> {
  const path = splitTarget(target).path
  const route = app.routes.find((r) => path.startsWith(r.prefix))
  if (!route) throw new UsageError(`no service at ${path}`)
  const found = await app.store.users.findByUsername(username)
  if (!found) throw new UsageError(`no user "${username}"`)
  const user = (await app.accounts.get(found.id))!
  const access = app.access.of(user)
  const list = (items: readonly string[]) => items.join(', ') || '(none)'
  const lines = [
    `service: ${route.name}`,
    `user: ${user.username}${user.isSuperuser ? ' (superuser)' : ''}${user.isActive ? '' : ' (disabled: every request is refused)'}`,
    `  teams: ${list(access.teams.map((t) => t.name))}`,
    `  organizations: ${list(access.organizations.map((o) => o.name))}`,
    `  roles: ${list(access.roles)}`,
  ]
  const rules = app.serviceRules.get(route.name)
  let allowed = user.isActive
  if (route.isPublic(path)) {
    lines.push('decision: allow (a public path: no rules apply)')
  } else if (!rules) {
    lines.push('decision: allow (the service has no access rules: every signed-in caller)')
  } else {
    const scopes = options.scope ? new Set(options.scope) : undefined
    const principal = { userId: user.id, user, method: options.authMethod, ...(scopes ? { scopes } : {}) }
    const decision = rules.decide({ principal, access, method, path, address: options.address })
    allowed &&= decision.allowed
    lines.push(`decision: ${decision.allowed ? 'allow' : 'deny'}${decision.rule === undefined ? ' (no rule matched)' : ` by rule ${decision.rule}: ${decision.description}`}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
  if (!allowed) process.exitCode = 1
}
