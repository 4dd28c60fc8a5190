import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { AwxkitSession } from '../helpers/platform-clients.ts'
import { startRecordingUpstream, type RecordingUpstream, type SeenRequest } from '../helpers/upstream.ts'

/**
 * The `awx` CLI (awxkit/awxkit/cli/client.py, cli/resource.py, api/client.py, api/pages/base.py) and the controller's
 * own collection (awx_collection/plugins/module_utils/controller_api.py) against the gateway, request by request, with
 * the controller behind it answering its API roots as the controller does. Both are pointed at the gateway's host,
 * the CLI with `AWXKIT_API_BASE_PATH=/api/controller/` as the platform's documentation says.
 */
describe('the awx CLI and the controller collection through the gateway', () => {
  let gw: TestGateway
  let controller: RecordingUpstream
  before(async () => {
    controller = await startRecordingUpstream(answerAsController)
    gw = await startGateway({
      config: {
        services: [{
          name: 'controller',
          prefix: '/api/controller/',
          upstream: controller.url,
          accepts: ['basic', 'session', 'token'],
          public_paths: ['/api/controller/', '/api/controller/v2/', '/api/controller/v2/ping/'],
        }],
      },
    })
  })
  after(async () => {
    await gw.close()
    await controller.close()
  })

  /** CLI.connect(): the API root and the version root it names, without credentials. */
  const connect = async (cli: AwxkitSession) => {
    const root = await json(await cli.request('GET', '/api/controller/'))
    assert.equal(root.available_versions?.v2, '/api/controller/v2/', JSON.stringify(root))
    const v2 = await cli.request('GET', root.available_versions.v2)
    assert.equal(v2.status, 200)
    return json(v2)
  }
  /** CLI.authenticate() without a token: load_session() (its answer is not checked), then the root again. */
  const sessionLogin = async (cli: AwxkitSession, username: string, password: string) => {
    const login = await cli.loadSession('/api/controller/', username, password)
    await login.arrayBuffer()
    await (await cli.request('GET', '/api/controller/')).arrayBuffer()
    return login.status
  }
  /** `users list`: the OPTIONS the CLI builds its arguments from, then the list. */
  const usersList = async (cli: AwxkitSession, v2: { users: string }) => {
    const options = await cli.request('OPTIONS', v2.users)
    await options.arrayBuffer()
    const list = await cli.request('GET', v2.users)
    return { optionsStatus: options.status, listStatus: list.status, list: await json(list) }
  }
  const sawPassword = (password: string) => controller.seen.some((seen) => JSON.stringify(seen.headers).includes(password) || seen.url.includes(password))

  it('awx login: the session login the CLI tries first is refused, and the token it then asks tokens/ for works for awx --conf.token users list', async () => {
    const cli = new AwxkitSession(gw.url)
    await connect(cli)
    const loginStatus = await sessionLogin(cli, 'admin', ADMIN_PASSWORD)
    assert.equal(loginStatus, 401, 'as on the platform, where the controller answers a proxied login "Please log in via Platform Authentication."')
    assert.equal(sawPassword(ADMIN_PASSWORD), false, 'the form with the password is not passed on to the controller')

    // Login.handle: api.Api().get_oauth2_token() in the same requests.Session, cookies and all.
    cli.authorization = basic('admin', ADMIN_PASSWORD)
    const created = await cli.request('POST', '/api/gateway/v1/tokens/', { json: { description: 'AWX CLI', application: null, scope: 'write' } })
    const body = await json(created)
    assert.equal(created.status, 201, JSON.stringify(body))
    assert.equal(body.description, 'AWX CLI')
    assert.equal(body.scope, 'write')
    assert.match(body.token, /^gatehouse_pat_/, 'the CLI prints export CONTROLLER_OAUTH_TOKEN=<token>')

    const next = new AwxkitSession(gw.url)
    const v2 = await connect(next)
    next.authorization = `Bearer ${body.token}`
    const { optionsStatus, listStatus, list } = await usersList(next, v2)
    assert.equal(optionsStatus, 200)
    assert.equal(listStatus, 200, JSON.stringify(list))
    assert.equal(list.results[0].username, 'admin', 'the controller learns who called from the gateway')
    const [listed] = controller.seen.filter((seen) => seen.method === 'GET' && seen.url === '/api/controller/v2/users/').slice(-1)
    assert.equal(listed!.headers['x-gatehouse-auth-method'], 'token')
    assert.equal(listed!.headers.authorization, undefined, 'the token the gateway consumed is not passed on')
  })

  it('awx with a username and password: the session login fails as on the platform, and basic credentials on every request (AWXKIT_FORCE_BASIC_AUTH) work', async () => {
    const cli = new AwxkitSession(gw.url)
    const v2 = await connect(cli)
    assert.equal(await sessionLogin(cli, 'admin', ADMIN_PASSWORD), 401)
    const refused = await usersList(cli, v2)
    assert.equal(refused.listStatus, 401, 'awx prints "Valid credentials were not provided." as against the platform')
    assert.equal(refused.list.code, 'not_authenticated')

    const forced = new AwxkitSession(gw.url)
    forced.authorization = basic('admin', ADMIN_PASSWORD)
    const { listStatus, list } = await usersList(forced, await connect(forced))
    assert.equal(listStatus, 200, JSON.stringify(list))
    assert.equal(list.results[0].username, 'admin')
    assert.equal(sawPassword(ADMIN_PASSWORD), false, 'basic credentials are consumed by the gateway')
  })

  it('the controller collection gets a token from the gateway\'s tokens/, uses it, and deletes it when the module ends', async () => {
    // ControllerAPIModule._authenticate_create_token(app_key='gateway'): a JSON POST with basic credentials, reading id and token.
    const created = await gw.fetch('/api/gateway/v1/tokens/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic('admin', ADMIN_PASSWORD) },
      body: JSON.stringify({ description: 'Automation Platform Controller Module Token', application: null, scope: 'write' }),
    })
    const { id, token } = await json(created)
    assert.equal(created.status, 201)
    assert.equal(typeof id, 'number')
    // make_request: the module's lookups, with the token as a bearer token.
    const lookup = await gw.fetch('/api/controller/v2/organizations/?name=Default', { headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } })
    assert.equal(lookup.status, 200)
    assert.equal((await json(lookup)).count, 0)
    // logout(): DELETE tokens/{id}/ with basic credentials; a failure would only be a warning, so the token would outlive the run.
    const deleted = await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: { authorization: basic('admin', ADMIN_PASSWORD) } })
    assert.equal(deleted.status, 204)
    const afterwards = await gw.fetch('/api/controller/v2/organizations/?name=Default', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(afterwards.status, 401, 'the token ends with the module run')
  })
})

/**
 * What the controller answers, in the parts these clients read: its API root and version root (open to everyone),
 * the OPTIONS the CLI builds its arguments from, lists naming the user the gateway vouched for, and, as the
 * controller does for a login proxied through the platform's gateway, 401 to a login form.
 */
function answerAsController(request: IncomingMessage, response: ServerResponse, seen: SeenRequest): void {
  const path = seen.url.split('?')[0]!
  const send = (status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' })
    response.end(JSON.stringify(body))
  }
  if (path === '/api/controller/') return send(200, { description: 'AWX REST API', current_version: '/api/controller/v2/', available_versions: { v2: '/api/controller/v2/' } })
  if (path === '/api/controller/v2/') return send(200, { ping: '/api/controller/v2/ping/', users: '/api/controller/v2/users/', organizations: '/api/controller/v2/organizations/' })
  if (path === '/api/controller/login/') return send(401, { detail: 'Please log in via Platform Authentication.' })
  if (request.method === 'OPTIONS') return send(200, { name: 'List', actions: { GET: { id: { type: 'integer' } } } })
  const user = request.headers['x-gatehouse-user']
  if (path === '/api/controller/v2/users/') return send(200, { count: 1, next: null, previous: null, results: [{ id: 1, type: 'user', username: user }] })
  return send(200, { count: 0, next: null, previous: null, results: [] })
}
