import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, repoRoot, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'

/** `bin/gatehouse serve` on a pseudo-terminal, as a person starting it in a terminal would: Debian's `script`. */
interface TerminalGateway {
  process: ChildProcess
  /** Everything the terminal showed, without colours and carriage returns. */
  screen(): string
  waitFor(pattern: RegExp): Promise<RegExpExecArray>
  /** Types a character on the terminal (\x03 is Ctrl-C). */
  type(text: string): void
}

function inTerminal(args: string[], env: Record<string, string | undefined>): TerminalGateway {
  // `exec`, so the shell `script` starts (whatever $SHELL is) does not stay between the terminal and the gateway:
  // a shell that waits on its child dies of Ctrl-C itself, and `script` reports that instead of the gateway's exit.
  const command = `exec ${[join(repoRoot, 'bin/gatehouse'), 'serve', '--port', '0', ...args].map((arg) => `'${arg}'`).join(' ')}`
  const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { ...process.env, TERM: 'xterm', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let raw = ''
  child.stdout!.on('data', (chunk) => (raw += chunk))
  child.stderr!.on('data', (chunk) => (raw += chunk))
  // eslint-disable-next-line no-control-regex
  const screen = () => raw.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '')
  return {
    process: child,
    screen,
    async waitFor(pattern) {
      for (let i = 0; i < 400; i++) {
        const match = pattern.exec(screen())
        if (match) return match
        if (child.exitCode !== null) break
        await sleep(50)
      }
      assert.fail(`the terminal never showed ${pattern}:\n${screen()}`)
    },
    type: (text) => child.stdin!.write(text),
  }
}

const withoutAdminPassword = { GATEHOUSE_ADMIN_PASSWORD: undefined, GATEHOUSE_LOG_FORMAT: undefined, GATEHOUSE_LOG_LEVEL: undefined }

describe('serve output', () => {
  it('on a terminal, prints a start-up summary and one readable line per request, and drains on Ctrl-C', async () => {
    const dir = tempDir()
    const terminal = inTerminal(['--demo', '--data-dir', dir], withoutAdminPassword)
    try {
      const [, url] = await terminal.waitFor(/^Gatehouse listening on (http:\/\/127\.0\.0\.1:\d+) \(sqlite\)$/m)
      const [, password] = await terminal.waitFor(/^ {2}admin {7}created superuser "admin" with password: (\S+) \(shown once; set GATEHOUSE_ADMIN_PASSWORD to choose it\)$/m)
      const screen = terminal.screen()
      assert.match(screen, /^Gatehouse listening on /, 'the first line on the terminal')
      assert.match(screen, /^ {2}version {5}\d+\.\d+\.\d+$/m)
      assert.match(screen, new RegExp(`^ {2}listening {3}${url}$`, 'm'))
      assert.match(screen, new RegExp(`^ {2}database {4}sqlite:${dir}/gatehouse\\.sqlite$`, 'm'))
      assert.match(screen, /^ {2}services {4}controller {2}\/api\/controller\/ {2}→ http:\/\/127\.0\.0\.1:\d+\/ \(built-in demo\)$/m)
      assert.match(screen, /^ {14}demo-app {4}\/demo-app\/ {8}→ http:\/\/127\.0\.0\.1:\d+\/ \(built-in demo\)$/m)
      assert.match(screen, /^ {2}realms {6}platform \(clients: end-users\)$/m)
      assert.match(screen, /^ {2}LDAP {8}off$/m)
      assert.match(screen, /^ {2}SSO {9}none$/m)

      assert.equal((await fetch(`${url}/api/controller/v2/hosts/`, { headers: { authorization: basic('admin', password!) } })).status, 200)
      assert.equal((await fetch(`${url}/api/gateway/v1/me/`, { headers: { authorization: basic('admin', 'wrong') } })).status, 401)
      await terminal.waitFor(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/api\/controller\/v2\/hosts\/ 200 [\d.]+ ms → controller · admin \(basic\)$/m)
      await terminal.waitFor(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/api\/gateway\/v1\/me\/ 401 [\d.]+ ms → gateway · anonymous$/m)
      assert.doesNotMatch(terminal.screen(), /^\{"level"/m)
      assert.doesNotMatch(terminal.screen(), /wrong/)

      terminal.type('\x03')
      const [code] = await once(terminal.process, 'exit')
      assert.equal(code, 0)
      assert.match(terminal.screen(), /INFO: shutting down: no new connections; finishing the requests in flight\n {4}signal: "SIGINT"/)
      assert.match(terminal.screen(), /INFO: stopped$/m)
    } finally {
      terminal.process.kill()
    }
  })

  it('writes JSON lines when the output is not a terminal, the start-up facts in one of them', async () => {
    const gateway = await spawnGateway(['--demo', '--data-dir', tempDir()], { GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      assert.equal((await fetch(`${gateway.url}/api/gateway/v1/me/`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 200)
      for (let i = 0; i < 100 && !gateway.output().includes('"msg":"request"'); i++) await sleep(50)
      const lines = gateway.output().trim().split('\n')
      assert.match(lines[0]!, /^Gatehouse listening on http:\/\/127\.0\.0\.1:\d+ \(sqlite\)$/, 'the first line')
      const logged = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
      const started = logged.find((line) => line.msg === 'started')
      assert.equal(started.listening[0], gateway.url)
      assert.match(started.database, /^sqlite:.*gatehouse\.sqlite$/)
      assert.deepEqual(started.services.map((s: { name: string }) => s.name), ['controller', 'galaxy', 'eda', 'demo-app'])
      assert.deepEqual(started.realms, [{ name: 'platform', clients: ['end-users'] }])
      assert.equal(started.admin, 'created')
      const request = logged.find((line) => line.msg === 'request')
      assert.deepEqual([request.method, request.path, request.status, request.user, request.auth], ['GET', '/api/gateway/v1/me/', 200, 'admin', 'basic'])
      assert.doesNotMatch(gateway.output(), new RegExp(ADMIN_PASSWORD))
    } finally {
      await gateway.stop()
    }
  })

  it('writes JSON on a terminal when asked with GATEHOUSE_LOG_FORMAT=json', async () => {
    const terminal = inTerminal(['--demo', '--data-dir', tempDir()], { GATEHOUSE_LOG_FORMAT: 'json', GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD, GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      await terminal.waitFor(/^Gatehouse listening on http:\/\/127\.0\.0\.1:\d+ \(sqlite\)$/m)
      await terminal.waitFor(/^\{"level":30,.*"msg":"started"\}$/m)
      assert.doesNotMatch(terminal.screen(), /^ {2}version/m)
      terminal.type('\x03')
      assert.deepEqual(await once(terminal.process, 'exit'), [0, null])
    } finally {
      terminal.process.kill()
    }
  })

  it('writes readable lines to a pipe when asked with --log-format pretty, without colours', async () => {
    const gateway = await spawnGateway(['--demo', '--data-dir', tempDir(), '--log-format', 'pretty'], { GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      await fetch(`${gateway.url}/api/gateway/v1/ping/`)
      for (let i = 0; i < 100 && !gateway.output().includes('GET /api/gateway/v1/ping/'); i++) await sleep(50)
      assert.match(gateway.output(), /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/api\/gateway\/v1\/ping\/ 200 [\d.]+ ms → gateway · anonymous$/m)
      assert.match(gateway.output(), /^ {2}admin {7}created superuser "admin" with the password in GATEHOUSE_ADMIN_PASSWORD$/m)
      assert.doesNotMatch(gateway.output(), /\x1b\[/)
      assert.doesNotMatch(gateway.output(), /^\{"level"/m)
    } finally {
      await gateway.stop()
    }
  })

  it('says, on a later start with GATEHOUSE_ADMIN_PASSWORD, that the variable changed no password', async () => {
    const dir = tempDir()
    const first = await spawnGateway(['--demo', '--data-dir', dir, '--log-format', 'pretty'])
    await first.stop()
    assert.match(first.output(), /^ {2}admin {7}created superuser "admin" with the password in GATEHOUSE_ADMIN_PASSWORD$/m)
    const later = await spawnGateway(['--demo', '--data-dir', dir, '--log-format', 'pretty'], { GATEHOUSE_ADMIN_PASSWORD: 'another-long-admin-passphrase' })
    try {
      assert.match(later.output(), /^ {2}admin {7}existing accounts: GATEHOUSE_ADMIN_PASSWORD is used only on a first start, with no accounts; reset a password with: gatehouse users set-password NAME --password-stdin$/m)
      assert.doesNotMatch(later.output(), /another-long-admin-passphrase/)
      assert.equal((await fetch(`${later.url}/api/gateway/v1/me/`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 200, 'the first password still signs in')
    } finally {
      await later.stop()
    }
    // And in the JSON summary a container's log gets.
    const json = await spawnGateway(['--demo', '--data-dir', dir, '--log-format', 'json'], { GATEHOUSE_ADMIN_PASSWORD: 'another-long-admin-passphrase', GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      for (let i = 0; i < 100 && !json.output().includes('"started"'); i++) await sleep(50)
      const started = json.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).find((line) => line.msg === 'started')
      assert.equal(started?.admin, 'existing', json.output())
      assert.equal(started.admin_password_ignored, 'GATEHOUSE_ADMIN_PASSWORD is used only on a first start, with no accounts')
      assert.doesNotMatch(json.output(), /another-long-admin-passphrase/)
    } finally {
      await json.stop()
    }
    const unset = await spawnGateway(['--demo', '--data-dir', dir, '--log-format', 'pretty'], { GATEHOUSE_ADMIN_PASSWORD: '' })
    try {
      assert.match(unset.output(), /^ {2}admin {7}existing accounts; reset a password with: gatehouse users set-password NAME --password-stdin$/m)
    } finally {
      await unset.stop()
    }
  })

  it('warns at start, once, that behind trusted proxies without public_url the realms\' issuer is the listening address', async () => {
    const dir = tempDir()
    const proxied = join(dir, 'proxied.yaml')
    writeFileSync(proxied, 'server:\n  trusted_proxies: [127.0.0.1]\n')
    const published = join(dir, 'published.yaml')
    writeFileSync(published, 'server:\n  trusted_proxies: [127.0.0.1]\n  public_url: https://gateway.example.com\n')
    const warnings = (output: string) => output.split('\n').filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line)).filter((line) => line.setting === 'server.public_url')

    const gateway = await spawnGateway(['--config', proxied, '--data-dir', join(dir, 'data')])
    try {
      await gateway.stop()
      const [warning, ...more] = warnings(gateway.output())
      assert.equal(more.length, 0, gateway.output())
      assert.equal(warning.level, 40, 'at warn')
      assert.equal(warning.issuer, `${gateway.url}/realms/{realm}`, 'names the issuer tokens will carry')
      assert.ok(warning.msg.includes('server.public_url'), warning.msg)
      assert.equal(warning.msg.includes('\n'), false, 'one line')
    } finally {
      await gateway.stop()
    }

    const pretty = await spawnGateway(['--config', proxied, '--data-dir', join(dir, 'data'), '--log-format', 'pretty'])
    await pretty.stop()
    assert.match(pretty.output(), /WARN: .*server\.public_url/)

    const quiet = await spawnGateway(['--config', published, '--data-dir', join(dir, 'data')])
    await quiet.stop()
    assert.deepEqual(warnings(quiet.output()), [], 'no warning once public_url is set')
    assert.match(quiet.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the first line names the address listened on, not the public URL')

    const checked = await runCli(['config', 'check', proxied])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stderr, /^gatehouse: WARNING: server\.trusted_proxies is set but server\.public_url is not/m)
    assert.equal((await runCli(['config', 'check', published])).stderr, '')

    // Several processes on one PostgreSQL database are one gateway: without public_url each names its own issuer.
    const shared = join(dir, 'shared.yaml')
    writeFileSync(shared, 'storage:\n  database: postgres://gatehouse@127.0.0.1:1/gatehouse\nrealms:\n  - name: platform\n    clients:\n      - { client_id: cli, public_client: true }\n')
    const sharedCheck = await runCli(['config', 'check', shared])
    assert.equal(sharedCheck.code, 0, sharedCheck.stderr)
    assert.match(sharedCheck.stderr, /^gatehouse: WARNING: storage\.database is set but server\.public_url is not: each gateway process on that database names its realms' issuer by its own address/m)
    writeFileSync(shared, 'storage:\n  database: postgres://gatehouse@127.0.0.1:1/gatehouse\nserver:\n  public_url: https://gateway.example.com\nrealms:\n  - name: platform\n    clients:\n      - { client_id: cli, public_client: true }\n')
    assert.equal((await runCli(['config', 'check', shared])).stderr, '')
  })

  it('writes the listening line first, the start\'s warnings after it, for scripts that read the first line', async () => {
    const dir = tempDir()
    const proxied = join(dir, 'proxied.yaml')
    writeFileSync(proxied, 'server:\n  trusted_proxies: [127.0.0.1]\n')
    for (const format of ['json', 'pretty']) {
      const gateway = await spawnGateway(['--config', proxied, '--data-dir', join(dir, 'data'), '--log-format', format])
      await gateway.stop()
      const lines = gateway.output().split('\n')
      assert.match(lines[0]!, /^Gatehouse listening on http:\/\/127\.0\.0\.1:\d+ \(sqlite\)$/, `the first line (${format}):\n${gateway.output()}`)
      assert.ok(lines.some((line) => line.includes('server.public_url')), `the warning follows (${format})`)
    }
  })

  it('takes the log level from --log-level before GATEHOUSE_LOG_LEVEL', async () => {
    const gateway = await spawnGateway(['--demo', '--data-dir', tempDir(), '--log-level', 'info'], { GATEHOUSE_LOG_LEVEL: 'warn' })
    try {
      await fetch(`${gateway.url}/api/gateway/v1/ping/`)
      for (let i = 0; i < 100 && !gateway.output().includes('"msg":"request"'); i++) await sleep(50)
      assert.match(gateway.output(), /"path":"\/api\/gateway\/v1\/ping\/".*"msg":"request"/)
    } finally {
      await gateway.stop()
    }
  })

  it('refuses an unknown log level with exit code 2 and a one-line reason, before it touches the database', async () => {
    const dir = tempDir()
    for (const [args, env, reason] of [
      [['--log-level', 'verbose'], {}, /^gatehouse: option '--log-level <level>' argument 'verbose' is invalid\. Allowed choices are trace, debug, info, warn, error, fatal, silent\.\n$/],
      [[], { GATEHOUSE_LOG_LEVEL: 'verbose' }, /^gatehouse: option '--log-level <level>' value 'verbose' from env 'GATEHOUSE_LOG_LEVEL' is invalid\. Allowed choices are trace, debug, info, warn, error, fatal, silent\.\n$/],
    ] as const) {
      const result = await runCli(['serve', '--port', '0', ...args, '--data-dir', join(dir, 'data')], { env: { ...env, GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD } })
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, reason)
      assert.equal(existsSync(join(dir, 'data')), false, 'no database was made')
    }
  })

  it('refuses an unknown --log-format with exit code 2 and a one-line reason', async () => {
    const result = await runCli(['serve', '--log-format', 'xml', '--data-dir', tempDir()])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /^gatehouse: option '--log-format <format>' argument 'xml' is invalid\. Allowed choices are auto, pretty, json\.\n$/)
  })
})
