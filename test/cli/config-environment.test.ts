import assert from 'node:assert/strict'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'

/** Values that must reach the configuration and no output. */
const CLIENT_SECRET = 'client-secret-from-the-environment-7f3a'
const DEFAULT_SECRET = 'default-secret-written-in-the-file-91c2'

/** A confidential realm client whose secret, and the realm's name, come from the environment. */
const CONFIG_LINES = [
  'realms:',
  '  - name: ${REALM_NAME:-platform}',
  '    clients:',
  '      - client_id: reports',
  '        public_client: false',
  '        service_accounts: true',
  '        secret: ${REPORTS_CLIENT_SECRET}',
]

function configFile(lines: string[], mode = 0o600): string {
  const file = join(tempDir(), 'gatehouse.yaml')
  writeFileSync(file, lines.join('\n') + '\n')
  chmodSync(file, mode)
  return file
}

describe('environment variables in the configuration file', () => {
  it('config check and serve stop on a variable that is not set, naming it and its setting', async () => {
    const file = configFile(CONFIG_LINES)
    const expected = `${file}: realms.0.clients.0.secret: the environment variable REPORTS_CLIENT_SECRET is not set or empty (\${REPORTS_CLIENT_SECRET:-default} would give a default)`
    for (const env of [{ REPORTS_CLIENT_SECRET: '', REALM_NAME: '' }, { REPORTS_CLIENT_SECRET: '', REALM_NAME: 'other' }]) {
      const checked = await runCli(['config', 'check', file], { env })
      assert.equal(checked.code, 2, checked.stderr)
      assert.equal(checked.stdout, '')
      assert.equal(checked.stderr, `gatehouse: ${expected}\n`)
      const served = await runCli(['serve', '--port', '0', '--config', file, '--data-dir', join(tempDir(), 'data')], { env })
      assert.equal(served.code, 2, served.stderr)
      assert.equal(served.stderr, `gatehouse: ${expected}\n`)
    }
  })

  it('config check takes the values from the environment and checks them, not the references', async () => {
    const file = configFile(CONFIG_LINES)
    const checked = await runCli(['config', 'check', file], { env: { REPORTS_CLIENT_SECRET: CLIENT_SECRET, REALM_NAME: '' } })
    assert.equal(checked.code, 0, checked.stderr)
    assert.equal(checked.stderr, '')
    assert.equal(checked.stdout, `${file}: OK (0 services: none)\n`)
    // The value, not the reference, is what the schema checks: a secret shorter than 16 characters is refused.
    const short = await runCli(['config', 'check', file], { env: { REPORTS_CLIENT_SECRET: 'short-7f3a' } })
    assert.equal(short.code, 2)
    assert.match(short.stderr, /realms\.0\.clients\.0\.secret: Too small/)
    assert.doesNotMatch(short.stdout + short.stderr, /short-7f3a/)
  })

  it('serve uses the values: a client authenticates with the secret from the environment', async () => {
    const file = configFile(CONFIG_LINES)
    const gateway = await spawnGateway(['--config', file, '--data-dir', join(tempDir(), 'data')], { REPORTS_CLIENT_SECRET: CLIENT_SECRET, REALM_NAME: 'automation', GATEHOUSE_LOG_LEVEL: 'trace' })
    try {
      const token = async (secret: string) => fetch(`${gateway.url}/realms/automation/protocol/openid-connect/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'reports', client_secret: secret }),
      })
      const granted = await token(CLIENT_SECRET)
      assert.equal(granted.status, 200, await granted.clone().text())
      assert.equal(typeof ((await granted.json()) as { access_token?: unknown }).access_token, 'string')
      assert.equal((await token('${REPORTS_CLIENT_SECRET}')).status, 401)
    } finally {
      await gateway.stop()
    }
    assert.doesNotMatch(gateway.output(), new RegExp(CLIENT_SECRET))
  })

  it('warns of a readable file only for the secrets written in it, not those the environment gives whole', async () => {
    const env = { REPORTS_CLIENT_SECRET: CLIENT_SECRET }
    const fromEnvironment = await runCli(['config', 'check', configFile(CONFIG_LINES, 0o644)], { env })
    assert.equal(fromEnvironment.code, 0, fromEnvironment.stderr)
    assert.equal(fromEnvironment.stderr, '')
    const withDefault = configFile([...CONFIG_LINES.slice(0, -1), `        secret: \${REPORTS_CLIENT_SECRET:-${DEFAULT_SECRET}}`], 0o644)
    for (const variables of [env, {}]) {
      const checked = await runCli(['config', 'check', withDefault], { env: { REPORTS_CLIENT_SECRET: '', ...variables } })
      assert.equal(checked.code, 0, checked.stderr)
      assert.match(checked.stderr, /^gatehouse: WARNING: .*gatehouse\.yaml holds secrets \(realms\.0\.clients\.0\.secret\) and other users of this machine may read it \(mode 644\)/)
      assert.doesNotMatch(checked.stdout + checked.stderr, new RegExp(`${CLIENT_SECRET}|${DEFAULT_SECRET}`))
    }
  })

  it('warns of a readable file that holds a client\'s previous secret, which still authenticates, though its secret comes from the environment', async () => {
    const previous = [...CONFIG_LINES, '        previous_secret:', `          secret: ${DEFAULT_SECRET}`, '          expires: "2099-01-01T00:00:00Z"']
    const checked = await runCli(['config', 'check', configFile(previous, 0o644)], { env: { REPORTS_CLIENT_SECRET: CLIENT_SECRET } })
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stderr, /^gatehouse: WARNING: .*gatehouse\.yaml holds secrets \(realms\.0\.clients\.0\.previous_secret\.secret\) and other users of this machine may read it \(mode 644\)/)
    assert.doesNotMatch(checked.stdout + checked.stderr, new RegExp(`${CLIENT_SECRET}|${DEFAULT_SECRET}`))
    const fromEnvironment = [...CONFIG_LINES, '        previous_secret:', '          secret: ${REPORTS_PREVIOUS_SECRET}', '          expires: "2099-01-01T00:00:00Z"']
    const quiet = await runCli(['config', 'check', configFile(fromEnvironment, 0o644)], { env: { REPORTS_CLIENT_SECRET: CLIENT_SECRET, REPORTS_PREVIOUS_SECRET: DEFAULT_SECRET } })
    assert.equal(quiet.code, 0, quiet.stderr)
    assert.equal(quiet.stderr, '')
  })

  it('warns of a readable file that holds the forward-auth secret, as of the other secrets written in it', async () => {
    const secret = `forward-auth-${DEFAULT_SECRET}`
    const checked = await runCli(['config', 'check', configFile(['forward_auth:', `  secret: ${secret}`], 0o644)])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stderr, /^gatehouse: WARNING: .*gatehouse\.yaml holds secrets \(forward_auth\.secret\) and other users of this machine may read it \(mode 644\)/)
    assert.doesNotMatch(checked.stdout + checked.stderr, new RegExp(secret))
    const fromEnvironment = await runCli(['config', 'check', configFile(['forward_auth:', '  secret: ${FORWARD_AUTH_SECRET}'], 0o644)], { env: { FORWARD_AUTH_SECRET: secret } })
    assert.equal(fromEnvironment.code, 0, fromEnvironment.stderr)
    assert.equal(fromEnvironment.stderr, '')
  })

  it('warns of a readable file whose database URL holds a password, unless the environment gives the password', async () => {
    const written = configFile(['storage:', `  database: postgres://gatehouse:${DEFAULT_SECRET}@db.internal/gatehouse`], 0o644)
    const inQuery = configFile(['storage:', `  database: postgres://gatehouse@db.internal/gatehouse?sslmode=require&password=${DEFAULT_SECRET}`], 0o644)
    for (const file of [written, inQuery]) {
      const checked = await runCli(['config', 'check', file])
      assert.equal(checked.code, 0, checked.stderr)
      assert.match(checked.stderr, /^gatehouse: WARNING: .*gatehouse\.yaml holds secrets \(storage\.database\) and other users of this machine may read it \(mode 644\)/)
      assert.doesNotMatch(checked.stdout + checked.stderr, new RegExp(DEFAULT_SECRET))
    }
    const env = { DB_PASSWORD: CLIENT_SECRET, DATABASE_URL: `postgres://gatehouse:${CLIENT_SECRET}@db.internal/gatehouse` }
    for (const value of ['postgres://gatehouse:${DB_PASSWORD}@db.internal/gatehouse', '${DATABASE_URL}', 'postgres://gatehouse@db.internal/gatehouse']) {
      const checked = await runCli(['config', 'check', configFile(['storage:', `  database: "${value}"`], 0o644)], { env })
      assert.equal(checked.code, 0, checked.stderr)
      assert.equal(checked.stderr, '', value)
    }
  })
})
