import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { rmSync, writeFileSync } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket, { WebSocketServer } from 'ws'
import { ADMIN_PASSWORD, adminAuth, repoRoot, runCli, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'

/** An upstream that answers with its name and the path it was asked; `/slow` paths wait until released. */
async function namedUpstream(name: string): Promise<{ url: string; server: Server; release(): void; waiting(): number }> {
  const held: (() => void)[] = []
  const server = createServer((request, response) => {
    const answer = () => response.end(`${name} ${request.url}`)
    if (request.url!.includes('/slow')) held.push(answer)
    else answer()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    release: () => {
      for (const answer of held.splice(0)) answer()
    },
    waiting: () => held.length,
  }
}

function service(name: string, upstream: string, extra = ''): string {
  return `  - name: ${name}\n    prefix: /${name}/\n    upstream: ${upstream}\n    accepts: [basic]\n${extra}`
}

/** On a connection of its own: with --workers, each may reach another process. A GET, or a POST of `form`. */
function fetchAlone(url: string, headers: Record<string, string> = {}, form?: URLSearchParams): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false, headers, method: form ? 'POST' : 'GET' }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, body }))
    }).on('error', reject).end(form && String(form))
  })
}

async function until(condition: () => boolean, ms: number, what: () => string): Promise<void> {
  for (const end = Date.now() + ms; !condition(); await sleep(50)) if (Date.now() > end) assert.fail(what())
}

function hangUps(gateway: GatewayProcess, message: string): number {
  return gateway.output().split('\n').filter((line) => line.includes(`"msg":"SIGHUP: ${message}`)).length
}

/**
 * Sends SIGHUP and waits for the log line of its outcome (in every one of `processes`): the last line a test reads,
 * since the lines of one reload may reach the pipe apart.
 */
async function reload(gateway: GatewayProcess, message: string, processes = 1): Promise<void> {
  const seen = hangUps(gateway, message)
  gateway.process.kill('SIGHUP')
  await until(() => hangUps(gateway, message) >= seen + processes, 10_000, () => `no "${message}" after SIGHUP:\n${gateway.output().slice(-3000)}`)
}

/** `serve` with `yaml` as its configuration file (info lines, JSON), and that file, to change. */
async function serveFile(dir: string, name: string, yaml: string, args: string[] = []): Promise<{ file: string; gateway: GatewayProcess }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  const gateway = await spawnGateway(['--config', file, '--data-dir', join(dir, name), ...args], { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' }, { startMs: 40_000 })
  return { file, gateway }
}

/**
 * A file with realm `platform` (its public client `end-users` takes passwords), the forward-auth endpoints open to
 * the loopback proxy, and the service `reports` that takes the realm's tokens meant for `audiences`.
 */
function oidcServiceFile(upstream: string, audiences: string[]): string {
  return 'server:\n  trusted_proxies: [127.0.0.1]\n' +
    'realms:\n  - name: platform\n    clients:\n      - { client_id: end-users, public_client: true, direct_access_grants: true }\n' +
    `services:\n  - name: reports\n    prefix: /reports/\n    upstream: ${upstream}\n    accepts: [oidc]\n    oidc: { audiences: [${audiences.join(', ')}] }\n`
}

/** The admin's access token from `end-users`: its `azp` names that client, and it carries no audience of `reports`'s own. */
async function endUsersToken(gateway: GatewayProcess): Promise<string> {
  const response = await fetch(`${gateway.url}/realms/platform/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }),
  })
  assert.equal(response.status, 200)
  return ((await response.json()) as { access_token: string }).access_token
}

/** The statuses `reports` answers a bearer token with: through the built-in proxy, and to Traefik's forward-auth question. */
async function reportsAnswers(gateway: GatewayProcess, token: string): Promise<{ proxy: number; forwardAuth: number }> {
  const authorization = `Bearer ${token}`
  const proxy = await fetchAlone(`${gateway.url}/reports/x`, { authorization })
  const forwardAuth = await fetchAlone(`${gateway.url}/api/gateway/v1/authz/forward-auth/`, { authorization, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/reports/x' })
  for (const { status, body } of [proxy, forwardAuth]) if (status === 401) assert.equal(JSON.parse(body).code, 'invalid_token')
  return { proxy: proxy.status, forwardAuth: forwardAuth.status }
}

/** A confidential OAuth2 application of the platform's kind, made through the gateway API: its id and secret. */
async function newApplication(gateway: GatewayProcess): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${gateway.url}/api/gateway/v1/applications/`, {
    method: 'POST',
    headers: { ...adminAuth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'reporting', client_type: 'confidential', authorization_grant_type: 'password' }),
  })
  assert.equal(response.status, 201)
  const { client_id: id, client_secret: secret } = (await response.json()) as { client_id: string; client_secret: string }
  return { id, secret }
}

function basicOf(application: { id: string; secret: string }): string {
  return `Basic ${Buffer.from(`${application.id}:${application.secret}`).toString('base64')}`
}

/** The admin's access token from the application at `/o/token/`, on a connection of its own, with its `aud`. */
async function applicationToken(gateway: GatewayProcess, application: { id: string; secret: string }): Promise<{ token: string; aud: string[] }> {
  const form = new URLSearchParams({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope: 'read' })
  const answer = await fetchAlone(`${gateway.url}/o/token/`, { authorization: basicOf(application), 'content-type': 'application/x-www-form-urlencoded' }, form)
  // 201, as the platform's TokenView answers it (docs/api.md).
  assert.equal(answer.status, 201)
  const token = (JSON.parse(answer.body) as { access_token: string }).access_token
  const { aud } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { aud: string | string[] }
  return { token, aud: [aud].flat() }
}

describe('serve: SIGHUP reads the configuration file again', () => {
  let dir: string
  let one: Awaited<ReturnType<typeof namedUpstream>>
  let two: Awaited<ReturnType<typeof namedUpstream>>
  before(async () => {
    dir = tempDir()
    one = await namedUpstream('one')
    two = await namedUpstream('two')
  })
  after(() => {
    one.server.close()
    two.server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('holds a SIGHUP that comes while its modules load, and reads the file again once started', async () => {
    const file = join(dir, 'early.yaml')
    writeFileSync(file, `services:\n${service('early', one.url)}`)
    const child = spawn(join(repoRoot, 'bin/gatehouse'), ['serve', '--port', '0', '--config', file, '--data-dir', join(dir, 'early')], {
      env: {
        ...process.env,
        GATEHOUSE_ADMIN_PASSWORD: ADMIN_PASSWORD,
        GATEHOUSE_LOG_LEVEL: 'info',
        GATEHOUSE_LOG_FORMAT: 'json',
        NODE_OPTIONS: `--import=${join(repoRoot, 'test/fixtures/slow-command-line.mjs')}`,
        SLOW_COMMAND_LINE_MS: '1500',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (data) => (output += data))
    child.stderr.on('data', (data) => (output += data))
    try {
      await until(() => output.includes('loading the command line') || child.exitCode !== null, 20_000, () => output)
      child.kill('SIGHUP')
      await until(() => output.includes('Gatehouse listening on') || child.exitCode !== null || child.signalCode !== null, 40_000, () => output)
      assert.equal(child.signalCode, null, `the hangup ended the start:\n${output}`)
      assert.match(output, /Gatehouse listening on/)
      // The hangup held may have meant a file changed while it started: it is read once the gateway serves.
      await until(() => output.includes('"msg":"SIGHUP: configuration file read again'), 10_000, () => output)
    } finally {
      child.kill('SIGTERM')
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
    }
  })

  it('adds, removes and changes services and their access rules; a request in flight finishes on the upstream it started with', async () => {
    const { file, gateway } = await serveFile(dir, 'changes', `services:\n${service('kept', one.url, '    public_paths: [/kept/open]\n')}${service('gone', one.url, '    public_paths: ["/gone/*"]\n')}`)
    try {
      assert.deepEqual(await fetchAlone(`${gateway.url}/gone/x`), { status: 200, body: 'one /gone/x' })
      assert.equal((await fetchAlone(`${gateway.url}/kept/open`)).status, 200)
      assert.equal((await fetchAlone(`${gateway.url}/kept/x`, adminAuth)).body, 'one /kept/x')
      const slow = fetchAlone(`${gateway.url}/gone/slow`)
      await until(() => one.waiting() === 1, 5000, () => 'the slow request reached the upstream')

      writeFileSync(file, `services:\n${service('kept', two.url, '    strip_prefix: true\n    access:\n      - deny: { users: [admin] }\n      - allow: {}\n')}${service('added', two.url, '    public_paths: ["/added/*"]\n')}`)
      await reload(gateway, 'configuration file read again')
      assert.match(gateway.output(), /"services_added":\["added"\],"services_removed":\["gone"\],"services_changed":\["kept"\]/)

      assert.deepEqual(await fetchAlone(`${gateway.url}/added/x`), { status: 200, body: 'two /added/x' }, 'an added service is served')
      assert.deepEqual(JSON.parse((await fetchAlone(`${gateway.url}/api/`)).body).apis, { gateway: '/api/gateway/', kept: '/kept/', added: '/added/' }, 'the API root lists the services now')
      const probed = JSON.parse((await fetchAlone(`${gateway.url}/readyz`)).body).upstreams.map((check: { service: string }) => check.service).sort()
      assert.deepEqual(probed, ['added', 'kept'], '/readyz probes the services now')
      const removed = await fetchAlone(`${gateway.url}/gone/x`)
      assert.equal(removed.status, 404, 'a removed one is not')
      assert.equal(JSON.parse(removed.body).code, 'not_found')
      assert.equal((await fetchAlone(`${gateway.url}/kept/open`)).status, 401, 'a public path taken away asks for credentials')
      const refused = await fetchAlone(`${gateway.url}/kept/x`, adminAuth)
      assert.equal(refused.status, 403, 'its new access rules apply')
      assert.equal(JSON.parse(refused.body).code, 'access_denied')

      one.release()
      assert.deepEqual(await slow, { status: 200, body: 'one /gone/slow' }, 'the request in flight was answered by the upstream of the service it found')

      writeFileSync(file, `services:\n${service('kept', two.url, '    strip_prefix: true\n')}`)
      await reload(gateway, 'configuration file read again')
      assert.deepEqual(await fetchAlone(`${gateway.url}/kept/x`, adminAuth), { status: 200, body: 'two /x' }, 'the changed upstream and strip_prefix apply')
    } finally {
      await gateway.stop()
    }
  })

  it('moves a service from the demo upstream to the address the file now names, and back', async () => {
    const { file, gateway } = await serveFile(dir, 'demo-moved', `services:\n${service('moved', 'builtin:demo')}`, ['--demo'])
    try {
      const demo = JSON.parse((await fetchAlone(`${gateway.url}/moved/x`, adminAuth)).body)
      assert.equal(demo.service, 'moved', 'the demo upstream answers at first')
      writeFileSync(file, `services:\n${service('moved', one.url)}`)
      await reload(gateway, 'configuration file read again')
      assert.deepEqual(await fetchAlone(`${gateway.url}/moved/x`, adminAuth), { status: 200, body: 'one /moved/x' })
      writeFileSync(file, `services:\n${service('moved', 'builtin:demo')}`)
      await reload(gateway, 'configuration file read again')
      assert.equal(JSON.parse((await fetchAlone(`${gateway.url}/moved/x`, adminAuth)).body).service, 'moved', 'and back to the demo upstream')
    } finally {
      await gateway.stop()
    }
  })

  it('keeps everything as it was when the file has a problem, the files it names included, and logs the problems', async () => {
    const { file, gateway } = await serveFile(dir, 'invalid', `services:\n${service('kept', one.url, '    public_paths: ["/kept/*"]\n')}`)
    try {
      const invalid = [
        // Valid services beside one wrong value: nothing of it applies.
        `services:\n${service('added', two.url, '    public_paths: ["/added/*"]\n')}${service('kept', two.url, '    timeouts: { response_seconds: -1 }\n')}`,
        // A TLS file the service names and that cannot be read, as config check reads it.
        `services:\n${service('added', two.url.replace('http:', 'https:'), `    public_paths: ["/added/*"]\n    tls: { ca_file: ${join(dir, 'missing-ca.pem')} }\n`)}`,
        'services: [\n',
        // Emptied, as an editor that truncates the file before writing it anew leaves it: every service would go.
        '',
        '# being rewritten\n',
        // A document that is null: the defaults, as an empty file.
        '---\n',
        '~\n',
      ]
      for (const yaml of invalid) {
        writeFileSync(file, yaml)
        await reload(gateway, 'the configuration file has problems')
        assert.deepEqual(await fetchAlone(`${gateway.url}/kept/x`), { status: 200, body: 'one /kept/x' }, `served as before (${yaml})`)
        assert.equal((await fetchAlone(`${gateway.url}/added/x`)).status, 404, `nothing of it applied (${yaml})`)
      }
      const problems = gateway.output().split('\n').filter((line) => line.includes('has problems')).map((line) => JSON.parse(line).problems.join('\n'))
      assert.match(problems[0]!, /services\.1\.timeouts\.response_seconds/)
      assert.match(problems[1]!, /services\.0\.tls\.ca_file.*missing-ca\.pem/)
      assert.match(problems[3]!, /the file is empty/)
      assert.match(problems[5]!, /the file is empty/)
      assert.match(problems[6]!, /the file is empty/)
      assert.equal(problems.length, 7)
    } finally {
      await gateway.stop()
    }
  })

  it('warns of a name the reloaded access rules use that does not exist, as the start does', async () => {
    const { file, gateway } = await serveFile(dir, 'names', `services:\n${service('kept', one.url)}`)
    try {
      writeFileSync(file, `services:\n${service('kept', one.url, '    access:\n      - deny: { organizations: [Contractrs] }\n      - allow: { superuser: true }\n')}`)
      await reload(gateway, 'configuration file read again')
      await until(() => gateway.output().includes('does not exist'), 5000, () => gateway.output().slice(-2000))
      const warning = gateway.output().split('\n').find((line) => line.includes('access rule names something that does not exist'))!
      assert.equal(JSON.parse(warning).problem, 'services.0.access.0.deny.organizations: no organization "Contractrs" yet (the rule applies once it exists)')
    } finally {
      await gateway.stop()
    }
  })

  it('logs the settings that need a restart by name and applies the rest', async () => {
    const { file, gateway } = await serveFile(dir, 'restart', `services:\n${service('kept', one.url, '    public_paths: ["/kept/*"]\n')}`)
    try {
      writeFileSync(file, `server:\n  max_connections: 1\nauth:\n  max_stale_seconds: 7\nservices:\n${service('kept', two.url, '    public_paths: ["/kept/*"]\n')}`)
      await reload(gateway, 'these settings changed')
      const warning = gateway.output().split('\n').find((line) => line.includes('apply only at a restart'))
      assert.ok(warning, gateway.output())
      assert.deepEqual(JSON.parse(warning).settings, ['server.max_connections', 'auth.max_stale_seconds'])
      assert.deepEqual(await fetchAlone(`${gateway.url}/kept/x`), { status: 200, body: 'two /kept/x' }, 'the services applied')
      // Two connections at once: max_connections 1 was not applied.
      const answers = await Promise.all([fetchAlone(`${gateway.url}/kept/a`), fetchAlone(`${gateway.url}/kept/b`)])
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200])
    } finally {
      await gateway.stop()
    }
  })

  it('compiles the changed services with the running server.remove_request_headers, which needs a restart', async () => {
    // Answers the path and the X-Tenant field it was sent, if any.
    const tenant = createServer((request, response) => response.end(`${request.url} tenant ${request.headers['x-tenant'] ?? 'none'}`))
    tenant.listen(0, '127.0.0.1')
    await once(tenant, 'listening')
    const upstream = `http://127.0.0.1:${(tenant.address() as AddressInfo).port}`
    const open = (name: string) => `    public_paths: ["/${name}/*"]\n`
    const { file, gateway } = await serveFile(dir, 'removed-headers', `server:\n  remove_request_headers: [X-Tenant]\nservices:\n${service('kept', upstream, open('kept'))}${service('changed', upstream, open('changed'))}`)
    const spoofed = { 'x-tenant': 'someone-else' }
    try {
      assert.equal((await fetchAlone(`${gateway.url}/changed/x`, spoofed)).body, '/changed/x tenant none')
      writeFileSync(file, `services:\n${service('kept', upstream, open('kept'))}${service('changed', upstream, `${open('changed')}    strip_prefix: true\n`)}${service('added', upstream, open('added'))}`)
      await reload(gateway, 'these settings changed')
      const warning = gateway.output().split('\n').find((line) => line.includes('apply only at a restart'))
      assert.ok(warning, gateway.output())
      assert.deepEqual(JSON.parse(warning).settings, ['server.remove_request_headers'])
      assert.equal((await fetchAlone(`${gateway.url}/changed/x`)).body, '/x tenant none', 'the change applied (strip_prefix)')
      for (const name of ['kept', 'changed', 'added']) {
        assert.match((await fetchAlone(`${gateway.url}/${name}/x`, spoofed)).body, / tenant none$/, `${name}: the field is removed until a restart, as the log says`)
      }
    } finally {
      await gateway.stop()
      tenant.close()
    }
  })

  it('closes the open WebSockets of a service it removes or changes, and leaves those of the others open', async () => {
    const echo = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(echo, 'listening')
    echo.on('connection', (socket) => socket.on('message', (data) => socket.send(String(data))))
    const upstream = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`
    const open = '    public_paths: ["/{name}/*"]\n'
    const { file, gateway } = await serveFile(dir, 'websockets', `services:\n${['kept', 'gone', 'changed'].map((name) => service(name, upstream, open.replace('{name}', name))).join('')}`)
    const sockets = new Map<string, WebSocket>()
    try {
      for (const name of ['kept', 'gone', 'changed']) {
        const socket = new WebSocket(`${gateway.url.replace('http', 'ws')}/${name}/socket`)
        await once(socket, 'open')
        sockets.set(name, socket)
      }
      const closed = ['gone', 'changed'].map((name) => once(sockets.get(name)!, 'close'))
      writeFileSync(file, `services:\n${service('kept', upstream, open.replace('{name}', 'kept'))}${service('changed', upstream, open.replace('{name}', 'changed') + '    strip_prefix: true\n')}`)
      await reload(gateway, 'configuration file read again')
      for (const closing of closed) {
        const [code, reason] = await closing
        assert.equal(code, 1001)
        assert.equal(String(reason), 'service reconfigured')
      }
      const kept = sockets.get('kept')!
      kept.send('still here')
      const [answer] = await once(kept, 'message')
      assert.equal(String(answer), 'still here', 'the socket of a service the reload kept is open')
      await until(() => (gateway.output().match(/"closed_by":"service_reloaded"/g)?.length ?? 0) === 2, 5000, () => gateway.output().slice(-3000))
    } finally {
      for (const socket of sockets.values()) socket.terminate()
      await gateway.stop()
      echo.close()
    }
  })

  it('leaves the gateway API taking the tokens of the running gateway.oidc, which needs a restart, while the services apply', async () => {
    const { file, gateway } = await serveFile(dir, 'gateway-audiences', oidcServiceFile(one.url, ['elsewhere']))
    try {
      const token = await endUsersToken(gateway)
      const me = async () => (await fetchAlone(`${gateway.url}/api/gateway/v1/me/`, { authorization: `Bearer ${token}` })).status
      assert.equal(await me(), 401, 'a token of end-users is not meant for the gateway')
      writeFileSync(file, `${oidcServiceFile(one.url, ['elsewhere', 'end-users'])}gateway:\n  oidc: { audiences: [end-users] }\n`)
      await reload(gateway, 'these settings changed')
      const warning = gateway.output().split('\n').find((line) => line.includes('apply only at a restart'))
      assert.ok(warning, gateway.output())
      assert.deepEqual(JSON.parse(warning).settings, ['gateway.oidc'])
      assert.deepEqual(await reportsAnswers(gateway, token), { proxy: 200, forwardAuth: 200 }, 'the service\'s change applied')
      assert.equal(await me(), 401, 'the gateway\'s own audiences stay as they were until a restart, as the log says')
    } finally {
      await gateway.stop()
    }
  })

  it('applies a service\'s changed oidc.audiences to the tokens it takes, through the proxy and forward-auth alike', async () => {
    const { file, gateway } = await serveFile(dir, 'audiences', oidcServiceFile(one.url, ['elsewhere']))
    try {
      const token = await endUsersToken(gateway)
      assert.deepEqual(await reportsAnswers(gateway, token), { proxy: 401, forwardAuth: 401 }, 'a token meant for no audience of the service is refused')
      writeFileSync(file, oidcServiceFile(one.url, ['elsewhere', 'end-users']))
      await reload(gateway, 'configuration file read again')
      assert.deepEqual(await reportsAnswers(gateway, token), { proxy: 200, forwardAuth: 200 }, 'the same token is taken once the service names its client')
      // An audience no service may take, beside one narrowed: none of it applies, and config check says the same.
      writeFileSync(file, oidcServiceFile(one.url, ['elsewhere', 'account']))
      await reload(gateway, 'the configuration file has problems')
      const line = gateway.output().split('\n').findLast((logged) => logged.includes('has problems'))!
      assert.match(JSON.parse(line).problems.join('\n'), /services\.0\.oidc\.audiences\.1/)
      assert.deepEqual(await reportsAnswers(gateway, token), { proxy: 200, forwardAuth: 200 }, 'the audiences stay as they were')
      const checked = await runCli(['config', 'check', file])
      assert.notEqual(checked.code, 0)
      assert.match(checked.stderr, /services\.0\.oidc\.audiences\.1/)
      writeFileSync(file, oidcServiceFile(one.url, ['elsewhere']))
      await reload(gateway, 'configuration file read again')
      assert.deepEqual(await reportsAnswers(gateway, token), { proxy: 401, forwardAuth: 401 }, 'and refused again, though this process verified it before, once the audience is taken away')
    } finally {
      await gateway.stop()
    }
  })

  it('mints the OAuth2 applications\' tokens with the changed audiences of the services from then on, and leaves those minted before as they were', async () => {
    const { file, gateway } = await serveFile(dir, 'application-audiences', oidcServiceFile(one.url, ['reports-v1']))
    try {
      const application = await newApplication(gateway)
      const before = await applicationToken(gateway, application)
      assert.ok(before.aud.includes('reports-v1'), before.aud.join())
      assert.deepEqual(await reportsAnswers(gateway, before.token), { proxy: 200, forwardAuth: 200 })
      writeFileSync(file, oidcServiceFile(one.url, ['reports-v2', 'account']))
      await reload(gateway, 'the configuration file has problems')
      assert.deepEqual((await applicationToken(gateway, application)).aud, before.aud, 'a file with a problem changes nothing of the tokens minted')
      writeFileSync(file, oidcServiceFile(one.url, ['reports-v2']))
      await reload(gateway, 'configuration file read again')
      assert.doesNotMatch(gateway.output(), /apply only at a restart/)
      const line = gateway.output().split('\n').findLast((logged) => logged.includes('configuration file read again'))!
      assert.deepEqual(JSON.parse(line).application_token_audiences, ['gateway', 'reports-v2'], 'the log says what the tokens name from now on')

      const after = await applicationToken(gateway, application)
      assert.ok(after.aud.includes('reports-v2') && !after.aud.includes('reports-v1'), after.aud.join())
      assert.deepEqual(await reportsAnswers(gateway, after.token), { proxy: 200, forwardAuth: 200 }, 'a token minted after the change is meant for the service as it is now')
      const introspected = await fetchAlone(`${gateway.url}/realms/platform/protocol/openid-connect/token/introspect`, { authorization: basicOf(application), 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams({ token: before.token }))
      assert.deepEqual(JSON.parse(introspected.body).aud, before.aud, 'introspection tells the audiences the token was minted with')
      assert.deepEqual(await reportsAnswers(gateway, before.token), { proxy: 401, forwardAuth: 401 }, 'one minted before names only the audience the service no longer takes')
    } finally {
      await gateway.stop()
    }
  })

  it('with --workers 2, every worker applies it', async () => {
    const { file, gateway } = await serveFile(dir, 'workers', `services:\n${service('kept', one.url, '    public_paths: ["/kept/*"]\n')}`, ['--workers', '2'])
    try {
      await until(() => (gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0) === 2, 20_000, () => `two workers listen:\n${gateway.output()}`)
      writeFileSync(file, `services:\n${service('added', two.url, '    public_paths: ["/added/*"]\n')}`)
      await reload(gateway, 'configuration file read again', 2)
      const pids = new Set(gateway.output().split('\n').filter((line) => line.includes('configuration file read again')).map((line) => JSON.parse(line).pid))
      assert.equal(pids.size, 2, 'each worker read it')
      // New connections go to either worker: every one finds the new table.
      for (let i = 0; i < 12; i++) {
        assert.deepEqual(await fetchAlone(`${gateway.url}/added/${i}`), { status: 200, body: `two /added/${i}` })
        assert.equal((await fetchAlone(`${gateway.url}/kept/${i}`)).status, 404)
      }
    } finally {
      await gateway.stop()
    }
  })
  it('with --workers 2, every worker applies a service\'s changed oidc.audiences', async () => {
    const { file, gateway } = await serveFile(dir, 'workers-audiences', oidcServiceFile(one.url, ['elsewhere']), ['--workers', '2'])
    try {
      await until(() => (gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0) === 2, 20_000, () => `two workers listen:\n${gateway.output()}`)
      const token = await endUsersToken(gateway)
      // On new connections, which go to either worker: every one answers alike.
      const everyWorkerAnswers = async (expected: { proxy: number; forwardAuth: number }) => {
        for (const answer of await Promise.all(Array.from({ length: 8 }, () => reportsAnswers(gateway, token)))) assert.deepEqual(answer, expected)
      }
      await everyWorkerAnswers({ proxy: 401, forwardAuth: 401 })
      writeFileSync(file, oidcServiceFile(one.url, ['end-users']))
      await reload(gateway, 'configuration file read again', 2)
      await everyWorkerAnswers({ proxy: 200, forwardAuth: 200 })
      writeFileSync(file, oidcServiceFile(one.url, ['elsewhere']))
      await reload(gateway, 'configuration file read again', 2)
      await everyWorkerAnswers({ proxy: 401, forwardAuth: 401 })
    } finally {
      await gateway.stop()
    }
  })
  it('with --workers 2, every worker mints the OAuth2 applications\' tokens with the changed audiences', async () => {
    const { file, gateway } = await serveFile(dir, 'workers-application-audiences', oidcServiceFile(one.url, ['reports-v1']), ['--workers', '2'])
    try {
      await until(() => (gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0) === 2, 20_000, () => `two workers listen:\n${gateway.output()}`)
      const application = await newApplication(gateway)
      writeFileSync(file, oidcServiceFile(one.url, ['reports-v2']))
      await reload(gateway, 'configuration file read again', 2)
      // On new connections, which go to either worker.
      for (const { aud } of await Promise.all(Array.from({ length: 8 }, () => applicationToken(gateway, application)))) {
        assert.ok(aud.includes('reports-v2') && !aud.includes('reports-v1'), aud.join())
      }
    } finally {
      await gateway.stop()
    }
  })
})
