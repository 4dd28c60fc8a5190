import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { codeBlocks } from '../helpers/docs.ts'
import { repoRoot, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'

// The sign-in commands of the README and docs/ are run as a new administrator runs them: in a shell (Python for the
// Python example), with the real curl, against `serve --demo` started with the README's own admin password. Only
// the address, and what an earlier command printed (the placeholders `<token>`, `<session_ID>`, `<your_token>` and
// `$ACCESS_TOKEN`, `$REFRESH_TOKEN`), are filled in, so a command that stops working as written, or a flow the
// README no longer shows, fails here.

const run = promisify(execFile)
const DOCUMENTED_ADDRESS = 'http://127.0.0.1:8080'

interface Command {
  /** The command as written, its continuation lines joined. */
  text: string
  /** The comments after it (on its line, then the lines that are only a comment), which say what it prints. */
  says: string[]
}

/** The commands of a page's `sh` blocks under a heading, with the comments that follow them. */
function pageCommands(page: string, section: string): Command[] {
  const blocks = codeBlocks(page, 'sh').filter((block) => block.section === section)
  assert.ok(blocks.length > 0, `${page} has shell commands under "${section}"`)
  return blocks.flatMap(({ code }) => {
    const commands: Command[] = []
    let text = ''
    let says: string[] = []
    for (const line of code.split('\n')) {
      if (/^\s*#/.test(line)) {
        commands.at(-1)?.says.push(line.replace(/^\s*#\s*/, ''))
        continue
      }
      const [, body, comment] = /^(.*?)(?:\s+#\s*(.*))?$/.exec(line)!
      text += ` ${body!.replace(/\\$/, '')}`
      if (comment) says.push(comment)
      if (body!.endsWith('\\')) continue
      if (text.trim()) commands.push({ text: text.trim(), says })
      text = ''
      says = []
    }
    return commands
  })
}

const readmeCommands = (section: string) => pageCommands('README.md', section)

/** The admin password the README's quick start starts the demo with. */
function readmeAdminPassword(): string {
  const start = readmeCommands('Quick start').find((command) => command.text.endsWith('npm start') && command.text.includes('='))
  assert.ok(start, 'the quick start starts the demo with an admin password')
  return /GATEHOUSE_ADMIN_PASSWORD=(\S+)/.exec(start.text)![1]!
}

/** What the demo upstream says it received, as the README shows it (its `"headers": {...}` left open). */
function readmeDemoAnswer(): Record<string, unknown> {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const block = /The demo upstreams answer[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)
  assert.ok(block, 'the README shows what a demo upstream answers')
  return JSON.parse(block[1]!.replace('{...}', '{}'))
}

describe('the README\'s and the docs\' sign-in commands, run as written against the demo', () => {
  let gateway: GatewayProcess
  const dataDir = tempDir()
  /** Where the commands run: the files they name are there. */
  const workDir = tempDir()
  const filled = new Map<string, string>()
  const env: Record<string, string> = { GATEHOUSE_ADMIN_PASSWORD: readmeAdminPassword() }

  before(async () => {
    writeFileSync(join(workDir, 'input.json'), '{"horizon": 7}')
    gateway = await spawnGateway(['--demo', '--data-dir', dataDir], { GATEHOUSE_ADMIN_PASSWORD: env.GATEHOUSE_ADMIN_PASSWORD! })
  })
  after(async () => {
    await gateway?.stop()
    for (const dir of [dataDir, workDir]) rmSync(dir, { recursive: true, force: true })
  })

  /** Runs one command in a shell at the test gateway's address; its standard output. */
  async function shell(command: Command): Promise<string> {
    let text = command.text.replaceAll(DOCUMENTED_ADDRESS, gateway.url)
    for (const [placeholder, value] of filled) text = text.replaceAll(placeholder, value)
    assert.doesNotMatch(text, /<[A-Za-z_]+>/, `every placeholder of \`${command.text}\` is filled by an earlier command`)
    const { stdout } = await run('bash', ['-c', text], { cwd: workDir, env: { ...process.env, ...env }, maxBuffer: 10 * 1024 * 1024 })
    return stdout
  }

  /** Checks a service's answer: what the README shows, for the caller the command signed in as. */
  function assertServiceAnswer(stdout: string, service: string, authMethod: string, command: Command) {
    const answer = JSON.parse(stdout)
    const shown = readmeDemoAnswer()
    assert.deepEqual(Object.keys(answer).sort(), Object.keys(shown).sort(), `\`${command.text}\` answers the fields the README shows`)
    assert.equal(answer.service, service, command.text)
    assert.deepEqual(answer.identity, { ...(shown.identity as object), auth_method: authMethod }, command.text)
  }

  it('the quick start: the users and a service with basic credentials', async () => {
    const [users, hosts, ...rest] = readmeCommands('Quick start').filter((command) => command.text.startsWith('curl '))
    assert.equal(rest.length, 0, 'a new command in the quick start needs its check here')
    assert.deepEqual(JSON.parse(await shell(users!)).results.map((user: { username: string }) => user.username), ['admin'])
    assertServiceAnswer(await shell(hosts!), 'controller', 'basic', hosts!)
  })

  it('signing in: a session with CSRF, a personal token, and the realm\'s password and refresh grants', async () => {
    const commands = readmeCommands('Signing in: the four credential types')
    const checks: { flow: string; check: (stdout: string, command: Command) => void }[] = [
      {
        flow: 'the login page sets csrftoken',
        check: (stdout, command) => {
          assert.match(command.says.join(' '), /csrftoken/)
          const cookie = stdout.split('\n').map((line) => line.split('\t')).find((fields) => fields[5] === 'csrftoken')
          assert.ok(cookie, `\`${command.text}\` prints the csrftoken cookie`)
          filled.set('<token>', cookie[6]!)
        },
      },
      {
        flow: 'the login with username, password, X-CSRFToken and Referer sets gateway_sessionid',
        check: (stdout, command) => {
          assert.match(command.says.join(' '), /Set-Cookie: gateway_sessionid=/)
          assert.match(command.text, /X-CSRFToken: <token>/)
          assert.match(command.text, /--referer /)
          assert.match(stdout, /^HTTP\/1\.1 302 /)
          const session = /^set-cookie: gateway_sessionid=([^;\r\n]+)/im.exec(stdout)
          assert.ok(session, stdout)
          filled.set('<session_ID>', session[1]!)
        },
      },
      { flow: 'a service with the session cookie', check: (stdout, command) => assertServiceAnswer(stdout, 'controller', 'session', command) },
      {
        flow: 'a personal token from `curl -u user:pass -X POST .../tokens/`',
        check: (stdout, command) => {
          assert.match(command.text, /^curl -u \S+:\S+\s+-X POST\s+\S+\/api\/gateway\/v1\/tokens\/$/)
          const created = JSON.parse(stdout)
          assert.match(command.says.join(' '), /"token": "gatehouse_pat_\.\.\."/)
          assert.match(created.token, /^gatehouse_pat_/)
          filled.set('<your_token>', created.token)
        },
      },
      { flow: 'a service with the personal token', check: (stdout, command) => assertServiceAnswer(stdout, 'controller', 'token', command) },
      {
        flow: 'the realm\'s password grant with client_id=end-users',
        check: (stdout, command) => {
          assert.match(command.text, /client_id=end-users .*grant_type=password/)
          const tokens = JSON.parse(stdout)
          for (const field of ['access_token', 'refresh_token']) assert.ok(command.says.join(' ').includes(field) && tokens[field], `${field}: ${stdout}`)
          env.ACCESS_TOKEN = tokens.access_token
          env.REFRESH_TOKEN = tokens.refresh_token
        },
      },
      {
        flow: 'the realm\'s refresh grant with client_id=end-users',
        check: (stdout, command) => {
          assert.match(command.text, /client_id=end-users .*grant_type=refresh_token .*refresh_token="\$REFRESH_TOKEN"/)
          const tokens = JSON.parse(stdout)
          for (const field of ['access_token', 'refresh_token']) assert.ok(command.says.join(' ').includes(field) && tokens[field], `${field}: ${stdout}`)
          assert.notEqual(tokens.access_token, env.ACCESS_TOKEN, 'a new access token')
          env.ACCESS_TOKEN = tokens.access_token
          env.REFRESH_TOKEN = tokens.refresh_token
        },
      },
      { flow: 'an app with the realm\'s access token', check: (stdout, command) => assertServiceAnswer(stdout, 'demo-app', 'oidc', command) },
    ]
    assert.deepEqual(commands.map((command) => command.text.split(' ')[0]), checks.map(() => 'curl'),
      `the README shows these flows, one command each: ${checks.map(({ flow }) => flow).join('; ')}`)
    for (const [i, { check }] of checks.entries()) check(await shell(commands[i]!), commands[i]!)
  })

  it('docs/sessions.md: the session login prints the headers it shows, and the session reaches the API and a service', async () => {
    const [page, login, me, hosts, ...rest] = pageCommands('docs/sessions.md', 'With curl')
    assert.equal(rest.length, 0, 'a new command in docs/sessions.md needs its check here')
    filled.set('<username>', 'admin').set('<password>', env.GATEHOUSE_ADMIN_PASSWORD!)
    const cookie = (await shell(page!)).split('\n').map((line) => line.split('\t')).find((fields) => fields[5] === 'csrftoken')
    assert.ok(cookie, 'the login page sets csrftoken')
    assert.match(page!.says[0]!, /^127\.0\.0\.1\s+FALSE\s+\/\s+FALSE\s+0\s+csrftoken\s+<token>$/)
    assert.deepEqual(cookie.slice(0, 6), ['127.0.0.1', 'FALSE', '/', 'FALSE', '0', 'csrftoken'], 'the cookie jar line the page shows')
    filled.set('<token>', cookie[6]!)

    const headers = await shell(login!)
    const shown = login!.says.filter((line) => /^(HTTP\/1\.1 |[a-z-]+: )/i.test(line))
    assert.ok(shown.length >= 5, 'the page shows the status and the headers of the login')
    for (const line of shown) {
      const pattern = line.split(/<[^>]+>/).map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('[^;\\s]+')
      assert.match(headers, new RegExp(`^${pattern}\\s*$`, 'im'), `the login prints ${line}`)
    }
    filled.set('<session_ID>', /^set-cookie: gateway_sessionid=([^;\r\n]+)/im.exec(headers)![1]!)

    assert.equal(JSON.parse(await shell(me!)).results[0].username, 'admin')
    assertServiceAnswer(await shell(hosts!), 'controller', 'session', hosts!)
  })

  it('docs/oidc.md: the password grant, the refresh, a call to the app, and the logout that ends them', async () => {
    const [password, refresh, call, logout, ...rest] = pageCommands('docs/oidc.md', 'Quick start (the demo)')
    assert.equal(rest.length, 0, 'a new command in docs/oidc.md\'s quick start needs its check here')
    const granted = JSON.parse(await shell(password!))
    env.REFRESH_TOKEN = granted.refresh_token
    const refreshed = JSON.parse(await shell(refresh!))
    assert.ok(refreshed.access_token && refreshed.refresh_token, JSON.stringify(refreshed))
    env.ACCESS_TOKEN = refreshed.access_token
    env.REFRESH_TOKEN = refreshed.refresh_token
    const answer = JSON.parse(await shell(call!))
    assertServiceAnswer(JSON.stringify(answer), 'demo-app', 'oidc', call!)
    assert.equal(answer.body_bytes, readFileSync(join(workDir, 'input.json')).length, 'the app gets input.json')

    assert.equal(await shell(logout!), '', 'the logout answers 204, without a body')
    assert.equal(JSON.parse(await shell(call!)).code, 'invalid_token', 'the access token stops working')
    assert.equal(JSON.parse(await shell(refresh!)).error, 'invalid_grant', 'the refresh token stops working')
  })

  it('docs/oidc.md: the Python example prints what its comments say', async () => {
    const [example, ...rest] = codeBlocks('docs/oidc.md', 'python').filter((block) => block.section === 'Quick start (the demo)')
    assert.ok(example && rest.length === 0, 'one Python example in docs/oidc.md\'s quick start')
    const shown = example.code.split('\n').filter((line) => line.startsWith('print(')).map((line) => /#\s*(.*)$/.exec(line)![1])
    // The environment the page tells the reader to give it, not the test's: the quick start gave its own to `npm start` alone.
    const page = readFileSync(join(repoRoot, 'docs/oidc.md'), 'utf8')
    const exported = Object.fromEntries([...page.matchAll(/`export\s+([A-Z_]+)=([^`\s]+)`/g)].map((match) => [match[1]!, match[2]!]))
    const { GATEHOUSE_ADMIN_PASSWORD: _notExported, ...inherited } = process.env
    const { stdout } = await run('python3', ['-c', example.code.replaceAll(DOCUMENTED_ADDRESS, gateway.url)], { cwd: workDir, env: { ...inherited, ...exported } })
    assert.deepEqual(stdout.trim().split('\n'), shown)
  })

  it('docs/api.md: an OAuth2 application made with the CLI prints what the page shows, and its token comes from /o/token/', async () => {
    const [create, token, ...rest] = pageCommands('docs/api.md', 'OAuth2 applications')
    assert.equal(rest.length, 0, 'a new command under docs/api.md\'s "OAuth2 applications" needs its check here')
    // The CLI as `npm install` links it, on the test gateway's data directory (as the address is filled in for curl).
    assert.match(create!.text, /^gatehouse /)
    const printed = (await shell({ ...create!, text: `${join(repoRoot, 'bin', 'gatehouse')}${create!.text.slice('gatehouse'.length)} --data-dir ${dataDir}` })).trim().split('\n')
    // What the comments show, with a sample value cut short (`1f0c...`) standing for any, and any number for the id.
    const shown = create!.says.map((line) => new RegExp(`^${line.split(/\w*\.\.\./).map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&').replace(/\d+/g, '\\d+')).join('\\S+')}$`))
    assert.equal(printed.length, shown.length, printed.join('\n'))
    shown.forEach((pattern, i) => assert.match(printed[i]!, pattern))
    const [clientId, clientSecret] = printed.slice(1).map((line) => line.split(': ')[1]!)
    filled.set('<client_id>', clientId!)
    filled.set('<client_secret>', clientSecret!)
    // A confidential application's request also sends its secret, as the page says after the command.
    const granted = JSON.parse(await shell({ ...token!, text: `${token!.text} -d client_secret=<client_secret>` }))
    assert.ok(granted.access_token && granted.refresh_token, JSON.stringify(granted))
  })

  it('the run-time settings example switches basic credentials off', async () => {
    const [patch, ...rest] = readmeCommands('Run-time settings')
    assert.equal(rest.length, 0, 'a new command under "Run-time settings" needs its check here')
    assert.equal(JSON.parse(await shell(patch!)).gateway_basic_auth_enabled, false)
    const [, hosts] = readmeCommands('Quick start').filter((command) => command.text.startsWith('curl '))
    const { code, detail } = JSON.parse(await shell(hosts!))
    assert.deepEqual({ code, detail }, { code: 'basic_auth_disabled', detail: 'Basic authentication is disabled.' })
  })
})
