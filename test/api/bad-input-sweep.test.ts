import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call } from '../helpers/access.ts'
import { adminListings, oneOfEach, typesOf, type JsonSchema } from '../helpers/api-objects.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

/**
 * A sweep of systematically malformed requests over every operation of the gateway API's OpenAPI document, the
 * Keycloak-compatible endpoints and the forward-authentication endpoints, sent by a superuser and by nobody, on
 * both storage backends: every answer is below 500, a refusal is JSON with a stable `code` and a human `detail`
 * (Keycloak's `error` shape at a realm's endpoints, or one of its HTML pages for a browser's), no answer carries a
 * stack trace, and nothing the administrator can list changes.
 */

const V1 = '/api/gateway/v1'
const STACK_TRACE = /\n\s+at |\.ts:\d|node:internal|\bat [A-Za-z.<>]+ \(/
const ONE_MB = 'x'.repeat(1_000_000)
const NUL_TEXT = 'nul\u0000inside'
const LONG = 'x'.repeat(6_000)
const DEEP = `${'['.repeat(50_000)}${']'.repeat(50_000)}`
const INVALID_UTF8 = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0xff, 0xfe, 0x22, 0x7d])
/** What the edge refuses before any route sees a request, in the gateway's shape wherever it was going (docs/edge.md). */
const EDGE_CODES = new Set(['malformed_escape', 'unsafe_path', 'headers_too_large', 'invalid_host', 'bad_request'])
/** How many requests are in flight at once: enough to keep the server busy, few enough for a shared machine. */
const CONCURRENCY = 6

interface Probe {
  label: string
  method: string
  path: string
  headers?: Record<string, string>
  body?: string | Buffer
}

interface Answer {
  status: number
  type: string
  text: string
  body: any
  /** The `WWW-Authenticate` challenge, if any. */
  challenge?: string | null
}

/** What a refusal must look like: the gateway's JSON, Keycloak's JSON or a realm's page, or a page or the gateway's JSON for a browser. */
type Shape = 'gateway' | 'keycloak' | 'browser'

interface Operation {
  parameters?: { name: string; in: string }[]
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, JsonSchema> } }> }
}

/** Ids no path has: negative, beyond any integer, not a number, a NUL, bytes that are not UTF-8, a slash, far too long. */
const ABSURD_IDS = ['-1', '99999999999999999999', 'abc', '%00', '%FF%FE', '1%2F2', '1e3', LONG]

/** Query parameters no list takes, and a few it takes with values no field has. */
const ABSURD_QUERIES = [
  'page=-1', 'page_size=1e9', 'page_size=-1', 'page=%00', 'page=%FF', 'order_by=nonexistent', 'order_by=%00', `order_by=${'id,'.repeat(200)}id`,
  'nonexistent=1', 'nonexistent__icontains=x', 'id__in=1,abc', 'id__gt=99999999999999999999', 'id=-99999999999999999999',
  'created__gte=2020-13-45', 'created__lt=%00', 'username__regex=(', 'id__isnull=maybe', 'id__in=' + '1,'.repeat(500) + '1',
  'or__nonexistent=1', 'not__or__id=1', '__proto__=1', 'constructor__prototype=1', 'id=%00', 'search=%00', 'search=%FF',
  `search=${LONG}`, `search=${'a '.repeat(100)}`, 'name__icontains=%25%5F', 'object_id__in=%00', 'user__username__exact=admin',
  'id__nonexistentlookup=1', 'id__exact__exact=1', 'a[b]=1', 'page=1&page=abc',
  // Keycloak's, for the realm's events.
  'first=-1', 'max=1e9', 'dateFrom=999999999999999', 'dateTo=0000-00-00', 'dateFrom=2020-02-30', 'type=%00', 'type=LOGIN&type=x',
  'user=2147483648', 'user=0', 'direction=sideways', `ipAddress=${LONG}`, 'client=x',
]

/**
 * JSON values a field of this schema must refuse: for text a NUL, and two of the types it does not take, in turn
 * from field to field (test/api/bad-input.test.ts gives every field every wrong type, on SQLite).
 */
function wrongValues(schema: JsonSchema, turn: number): unknown[] {
  const types = typesOf(schema)
  if (!types) return []
  const byType: [string, unknown][] = [['string', 'not a value of this field'], ['number', -1e300], ['boolean', false], ['array', [{}]], ['object', { a: [] }], ['null', null]]
  const wrong = byType.filter(([type]) => !types.has(type)).map(([, value]) => value)
  const some = [wrong[turn % wrong.length], wrong[(turn + 1) % wrong.length]].filter((value, index, all) => value !== undefined && all.indexOf(value) === index)
  return types.has('string') ? [...some, NUL_TEXT] : some
}

/** Whether a schema takes text: such a field also gets a megabyte of it, and forms (which carry only text) get its bad text. */
function takesText(schema: JsonSchema): boolean {
  return typesOf(schema)?.has('string') === true
}

/**
 * Bodies in every wrong shape, each with its content type. The last ones are well-formed, refused only where a body
 * is expected: an operation that takes none ignores them, as Django REST framework's views do.
 */
const WELL_FORMED = 3
function malformedBodies(field: string): [string, string | Buffer, string | undefined][] {
  return [
    ['malformed JSON', '{"a": ', 'application/json'],
    ['JSON that is not UTF-8', INVALID_UTF8, 'application/json'],
    ['a raw NUL in JSON', `{"${field}": "a\u0000b"}`, 'application/json'],
    ['JSON in a declared Latin-1', `{"${field}": "x"}`, 'application/json; charset=latin1'],
    ['JSON as text/plain', `{"${field}": "x"}`, 'text/plain'],
    ['JSON without a content type', `{"${field}": 1}`, undefined],
    ['a form with a NUL', `${field}=a%00b`, 'application/x-www-form-urlencoded'],
    ['a form that is not UTF-8', `${field}=%FF%FE`, 'application/x-www-form-urlencoded'],
    ['a form with a bad escape', `${field}=%zz`, 'application/x-www-form-urlencoded'],
    ['a multipart form', `--b\r\nContent-Disposition: form-data; name="${field}"\r\n\r\nx\r\n--b--\r\n`, 'multipart/form-data; boundary=b'],
    ['a content type that is not one', `{"${field}": 1}`, '%%%/;;;'],
    ['JSON nested 50,000 deep', DEEP, 'application/json'],
    ['a form repeating a field', `${field}=-5&${field}=-6`, 'application/x-www-form-urlencoded'],
    [`a megabyte in ${field}`, JSON.stringify({ [field]: ONE_MB }), 'application/json'],
  ]
}

function encodedJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** Runs `task` over `items`, `CONCURRENCY` at a time. */
async function inParallel<T>(items: readonly T[], task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await task(items[next++]!)
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`malformed requests to every endpoint, on ${backend}`, () => {
    let gw: TestGateway
    let dropDatabase: (() => Promise<void>) | undefined
    let document: { paths: Record<string, Record<string, Operation>> }
    const ids: Record<string, string> = {}
    let superuser: Record<string, string>
    let anonymous: Record<string, string>
    const failures: string[] = []

    const send = async (probe: Probe): Promise<Answer> => {
      const response = await gw.fetch(probe.path, {
        method: probe.method,
        headers: probe.headers,
        body: probe.method === 'GET' || probe.method === 'HEAD' ? undefined : probe.body,
        signal: AbortSignal.timeout(60_000),
      })
      const text = await response.text()
      const type = response.headers.get('content-type') ?? ''
      let body: unknown
      if (type.startsWith('application/json') && text) {
        try {
          body = JSON.parse(text)
        } catch {
          body = undefined
        }
      }
      return { status: response.status, type, text, body, challenge: response.headers.get('www-authenticate') }
    }

    /** Notes what is wrong with an answer, if anything: every problem of a sweep is reported together at its end. */
    const judge = (probe: Probe, answer: Answer, shape: Shape, refused: boolean) => {
      const what = `${probe.label}: ${probe.method} ${probe.path.slice(0, 120)} → ${answer.status} ${answer.text.slice(0, 200)}`
      if (answer.status >= 500) return void failures.push(what)
      if (STACK_TRACE.test(answer.text)) return void failures.push(`${what} (a stack trace)`)
      if (refused && (answer.status < 400 || answer.status >= 500)) return void failures.push(`${what} (not refused)`)
      if (answer.status < 400 || probe.method === 'HEAD') return
      if (shape !== 'gateway' && answer.type.startsWith('text/html')) return
      // keycloak-js reads the login status iframe's answer by its status alone, which is all Keycloak sends.
      if (shape === 'keycloak' && answer.text === '' && probe.path.includes('/login-status-iframe.html/init')) return
      // Keycloak's userinfo refuses in its challenge alone, naming the realm, with an empty body (OAuth2Error `json(false)`).
      if (shape === 'keycloak' && answer.text === '' && probe.path.includes('/protocol/openid-connect/userinfo') && /^Bearer realm="[^"]+"/.test(answer.challenge ?? '')) return
      if (!answer.type.startsWith('application/json') || answer.body === undefined) return void failures.push(`${what} (not JSON)`)
      if (shape !== 'keycloak' && !(/^[a-z_]+$/.test(answer.body.code) && typeof answer.body.detail === 'string' && answer.body.detail)) return void failures.push(`${what} (no code and detail)`)
      if (shape === 'keycloak' && typeof answer.body.error !== 'string' && !EDGE_CODES.has(answer.body.code)) return void failures.push(`${what} (no error)`)
    }

    const sweep = async (probes: Probe[], shape: Shape, refused: (probe: Probe) => boolean) => {
      failures.length = 0
      await inParallel(probes, async (probe) => judge(probe, await send(probe).catch((error: Error) => ({ status: 599, type: '', text: String(error), body: undefined })), shape, refused(probe)))
      assert.deepEqual(failures, [], `${failures.length} of ${probes.length} answers:\n${failures.join('\n')}`)
    }

    const snapshot = () => adminListings(gw)

    /** An operation's path with the ids of objects that exist (or `id` in their place), the demo realm, an SSO provider no one has. */
    const concrete = (path: string, id?: string) => path
      .replace(/\/([a-z_]+)\/\{id\}\//g, (_match, kind: string) => `/${kind}/${id ?? ids[kind] ?? '1'}/`)
      .replace('{realm}', id ?? REALM)
      .replace('{provider}', id ?? 'no-such-provider')
      .replace('{*}', id ?? 'api/controller/v2/hosts/')

    const operations = () => Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method: method.toUpperCase(), operation })))

    /** The operations that change something when given what they take: they get only what must be refused. */
    const writes = () => operations().filter(({ method }) => !['GET', 'HEAD', 'OPTIONS'].includes(method))

    before(async () => {
      let databaseUrl: string | undefined
      if (backend === 'postgres') ({ url: databaseUrl, drop: dropDatabase } = await createTestDatabase())
      gw = await startGateway({
        ...(databaseUrl ? { databaseUrl } : {}),
        config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] }, realms: testRealms },
      })
      const csrftoken = await csrfToken(gw)
      const csrf = { cookie: `csrftoken=${csrftoken}`, 'x-csrftoken': csrftoken, referer: gw.url + LOGIN }
      superuser = { ...adminAuth, ...csrf }
      anonymous = csrf
      document = await json(await gw.fetch(`${V1}/openapi.json`))
      const sessions = await call(gw, 'GET', 'sessions/?page_size=1')
      const made = { ...(await oneOfEach(gw, 'Swept')), activitystream: 1, sessions: sessions.body.results[0]?.id ?? 1 }
      Object.assign(ids, Object.fromEntries(Object.entries(made).map(([kind, id]) => [kind, String(id)])))
    })
    after(async () => {
      await gw?.close()
      await dropDatabase?.()
    })

    it('refuses wrongly typed fields, NUL characters, megabyte strings and malformed bodies at every write, by anyone, and changes nothing', async () => {
      const before = await snapshot()
      const probes: Probe[] = []
      for (const { path, method, operation } of writes()) {
        const properties = operation.requestBody?.content['application/json']?.schema.properties ?? {}
        const fields = Object.keys(properties)
        const bodies = malformedBodies(fields.find((field) => takesText(properties[field]!)) ?? fields[0] ?? 'name')
        for (const [index, [label, body, type]] of bodies.entries()) {
          const wellFormed = index >= bodies.length - WELL_FORMED
          // How a body is read does not depend on the storage; what is stored of it does.
          if (backend === 'sqlite' || wellFormed) {
            for (const [who, headers] of [['superuser', superuser], ['anonymous', anonymous]] as const) {
              if (who === 'superuser' && !operation.requestBody && wellFormed) continue
              // Nobody's request is refused before its body is judged: every other shape, and once only, shows it.
              if (who === 'anonymous' && (backend !== 'sqlite' || (index % 2 === 1 && index !== bodies.length - 1))) continue
              probes.push({ label: `${who}, ${label}`, method, path: concrete(path), headers: { ...headers, ...(type ? { 'content-type': type } : {}) }, body })
            }
          }
        }
        for (const [turn, [field, schema]] of Object.entries(properties).entries()) {
          for (const value of wrongValues(schema, turn)) {
            const body = JSON.stringify({ [field]: value })
            const label = `${field}: ${JSON.stringify(value).slice(0, 30)}`
            probes.push({ label: `superuser, ${label}`, method, path: concrete(path), headers: { ...superuser, 'content-type': 'application/json' }, body })
            if (value === NUL_TEXT) probes.push({ label: `superuser, the form ${label}`, method, path: concrete(path), headers: { ...superuser, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ [field]: value }).toString() })
          }
          probes.push({ label: `anonymous, ${field}: null`, method, path: concrete(path), headers: { ...anonymous, 'content-type': 'application/json' }, body: JSON.stringify({ [field]: null }) })
        }
      }
      assert.ok(probes.length > 700, `${probes.length} requests`)
      // The forward-auth endpoints read no body, and signing out takes none.
      await sweep(probes, 'gateway', (probe) => !/\/authz\/|\/(logout|session)\/$/.test(probe.path))
      assert.deepEqual(await snapshot(), before)
    })

    it('answers absurd ids in every path, with every method an operation has, by anyone, and changes nothing', async () => {
      const before = await snapshot()
      const probes: Probe[] = []
      for (const { path, method } of operations()) {
        if (!/\{(id|realm|provider)\}/.test(path)) continue
        for (const id of ABSURD_IDS) {
          for (const [who, headers] of [['superuser', superuser], ['anonymous', anonymous]] as const) {
            probes.push({ label: `${who}, id ${id.slice(0, 20)}`, method, path: concrete(path, id), headers: { ...headers, 'content-type': 'application/json' }, body: '{}' })
          }
        }
      }
      assert.ok(probes.length > 500, `${probes.length} requests`)
      await sweep(probes, 'gateway', (probe) => probe.method !== 'OPTIONS')
      assert.deepEqual(await snapshot(), before)
    })

    it('answers absurd query parameters at every operation that reads, by anyone', async () => {
      const probes: Probe[] = []
      for (const { path, method, operation } of operations()) {
        if (method !== 'GET' || path.includes('/authz/')) continue
        // A view that is not a list ignores its query (docs/api.md): a few are enough to show that it does.
        const isList = operation.parameters?.some((parameter) => parameter.name === 'page')
        for (const [index, query] of ABSURD_QUERIES.entries()) {
          if (isList || index % 8 === 0) probes.push({ label: `superuser, ${query.slice(0, 40)}`, method, path: `${concrete(path)}?${query}`, headers: superuser })
          if (index % 8 === 0) probes.push({ label: `anonymous, ${query.slice(0, 40)}`, method, path: `${concrete(path)}?${query}`, headers: anonymous })
        }
      }
      assert.ok(probes.length > 700, `${probes.length} requests`)
      await sweep(probes, 'gateway', () => false)
    })

    it('refuses malformed credentials at the gateway API with a code, whatever they are malformed with', async () => {
      const encoded = (text: string) => Buffer.from(text).toString('base64')
      const credentials: Record<string, string>[] = [
        { authorization: 'Basic' }, { authorization: 'Basic !!!' }, { authorization: `Basic ${encoded('no-colon')}` }, { authorization: `Basic ${encoded(':')}` },
        { authorization: `Basic ${encoded(`admin:${LONG}`)}` }, { authorization: `Basic ${encoded('adm\u0000in:x')}` }, { authorization: `Basic ${Buffer.from([0x61, 0x3a, 0xff]).toString('base64')}` },
        { authorization: 'Bearer' }, { authorization: 'Bearer a.b.c' }, { authorization: `Bearer gatehouse_pat_${LONG}` }, { authorization: 'Bearer gatehouse_pat_%00' },
        { authorization: `Bearer ${'a'.repeat(100)}.${'b'.repeat(100)}.${'c'.repeat(100)}` }, { authorization: 'Digest username="admin"' }, { authorization: `Basic ${encoded('admin:x')}, Bearer a` },
        { cookie: 'gateway_sessionid=%00' }, { cookie: `gateway_sessionid=${LONG}` }, { cookie: 'gateway_sessionid=a; gateway_sessionid=b' },
        { ...anonymous, cookie: `${anonymous.cookie}; gateway_sessionid=x`, 'x-csrftoken': LONG },
      ]
      const probes: Probe[] = []
      for (const headers of credentials) {
        for (const [method, path] of [['GET', `${V1}/users/`], ['POST', `${V1}/organizations/`], ['GET', `${V1}/me/`], ['DELETE', `${V1}/tokens/${ids.tokens}/`], ['GET', '/admin/realms']]) {
          probes.push({ label: JSON.stringify(headers).slice(0, 60), method: method!, path: path!, headers: { ...headers, 'content-type': 'application/json' }, body: '{"name": "Never"}' })
        }
      }
      const before = await snapshot()
      await sweep(probes, 'gateway', () => true)
      assert.deepEqual(await snapshot(), before)
    })

    it('answers a browser\'s malformed requests for pages with a page or a code, never a 5xx, and changes nothing', async () => {
      const browser = { accept: 'text/html,application/xhtml+xml' }
      const paths = [`${V1}/login/?next=%00`, `${V1}/login/?next=${LONG}`, `${V1}/login/?next=javascript:alert(1)`, `${V1}/login/?next=%2F%2Fevil.example`, `${V1}/login/?next=%FF`,
        `${V1}/login/sso/%00/`, `${V1}/login/sso/${LONG}/`, `${V1}/login/sso/x/callback/?code=%00&state=${LONG}`, `${V1}/logout/?next=%00`,
        '/ui/%00', `/ui/${LONG}`, '/ui/%FF', '/ui/users/abc/', '/ui/assets/%00.js', `/ui/assets/${LONG}.css`, '/ui/assets/..%2F..%2Fpackage.json',
        '/api/controller/%00', '/api/controller/?q=%FF', `/demo-app/${LONG}`, '/demo-app/?x=%zz', '/%00', `/${LONG}`, '/favicon.ico?%00']
      const probes: Probe[] = []
      for (const path of paths) {
        for (const [who, headers] of [['superuser', superuser], ['anonymous', anonymous]] as const) {
          probes.push({ label: `${who}, a page`, method: 'GET', path, headers: { ...headers, ...browser } })
          probes.push({ label: `${who}, a form`, method: 'POST', path, headers: { ...headers, ...browser, 'content-type': 'application/x-www-form-urlencoded' }, body: `username=%00&password=${'x'.repeat(2_000)}&next=%FF` })
        }
      }
      const before = await snapshot()
      await sweep(probes, 'browser', () => false)
      assert.deepEqual(await snapshot(), before)
    })

    // The realms' and forward authentication's own storage is not the API's: once is enough for them.
    const onceOnly = backend === 'sqlite' ? it : it.skip

    onceOnly('answers malformed requests at the Keycloak-compatible endpoints in Keycloak\'s shapes, and changes nothing', async () => {
      // The client's service account is made at its first grant, which some of the requests below may be.
      await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET })
      const before = await snapshot()
      const openid = `/realms/${REALM}/protocol/openid-connect`
      const endpoints = [`${openid}/token`, `${openid}/userinfo`, `${openid}/token/introspect`, `${openid}/revoke`, `${openid}/logout`,
        `${openid}/auth`, `${openid}/auth/device`, `${openid}/ext/par/request`, '/o/token/', '/o/revoke_token/', '/o/authorize/', `/realms/${REALM}/account`]
      const parameters = ['grant_type', 'client_id', 'client_secret', 'username', 'password', 'refresh_token', 'token', 'token_type_hint', 'access_token',
        'id_token_hint', 'post_logout_redirect_uri', 'scope', 'code', 'redirect_uri', 'response_type', 'device_code', 'request_uri']
      // JWTs in shape whose parts are not what they say: a payload of the wrong types, one that is not JSON, a header naming no algorithm.
      const forgedJwts = [`${encodedJson({ alg: 'RS256', kid: { a: 1 } })}.${encodedJson({ exp: 'soon', sub: [], jti: {}, azp: 1 })}.AAAA`,
        `${encodedJson({ alg: 'RS256' })}.${Buffer.from('not json').toString('base64url')}.AAAA`, `${encodedJson({})}.${encodedJson(null)}.`]
      const values = ['', '%00', '%FF%FE', '%zz', 'a'.repeat(50_000), '-1', '99999999999999999999', 'a.b.c', '%7B%22a%22%3A1%7D', ...forgedJwts]
      const authorizations: Record<string, string>[] = [{}, { authorization: basic('admin', 'nothing') }, { authorization: 'Basic %%%' }, { authorization: `Basic ${Buffer.from(':').toString('base64')}` },
        { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }, { authorization: 'Bearer a.b.c' }, { authorization: `Bearer ${LONG}` }, { authorization: 'Bearer' }]
      const form = 'application/x-www-form-urlencoded'
      // Those that read their parameters from the query too; the others answer a GET 405.
      const takesGet = new Set([`${openid}/userinfo`, `${openid}/logout`, `${openid}/auth`, '/o/authorize/', `/realms/${REALM}/account`])
      const probes: Probe[] = []
      for (const path of endpoints) {
        for (const method of takesGet.has(path) ? ['GET', 'POST'] : ['POST']) {
          for (const [index, parameter] of parameters.entries()) {
            // Each parameter gets a quarter of the values, in turn, so that every value reaches every endpoint.
            for (const value of values.filter((_value, position) => position % 4 === index % 4)) {
              const body = `client_id=end-users&grant_type=password&${parameter}=${value}`
              probes.push({ label: `${parameter}=${value.slice(0, 12)}`, method, path: method === 'GET' ? `${path}?${body}` : path, headers: { 'content-type': form }, body })
            }
          }
          for (const authorization of authorizations) {
            probes.push({ label: `with ${JSON.stringify(authorization).slice(0, 40)}`, method, path: `${path}${method === 'GET' ? '?token=a.b.c' : ''}`, headers: { ...authorization, 'content-type': form }, body: 'token=a.b.c&client_id=reports' })
          }
        }
        for (const [label, body, type] of [
          ...malformedBodies('grant_type'),
          ['a form of a megabyte', `grant_type=password&client_id=end-users&username=${ONE_MB}`, form],
          ['a form repeating every parameter', parameters.map((name) => `${name}=a&${name}=b`).join('&'), form],
          ['JSON where a form belongs', '{"grant_type": "password", "client_id": "end-users", "username": "admin", "password": "x"}', 'application/json'],
        ] as const) {
          probes.push({ label, method: 'POST', path, headers: type ? { 'content-type': type } : {}, body })
        }
        for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) probes.push({ label: method, method, path, headers: { 'content-type': form }, body: 'a=b' })
      }
      const grants = ['password', 'refresh_token', 'authorization_code', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange', '%00']
      for (const path of [`${openid}/token`, '/o/token/']) {
        for (const grant of grants) {
          for (const value of ['', '%00', 'x'.repeat(5_000), ...forgedJwts]) {
            for (const client of [`client_id=reports&client_secret=${SERVICE_SECRET}`, 'client_id=end-users', `client_id=${value}`]) {
              const body = `grant_type=${grant}&${client}&${['refresh_token', 'code', 'device_code', 'username', 'password', 'scope', 'redirect_uri', 'code_verifier', 'subject_token'].map((name) => `${name}=${value}`).join('&')}`
              probes.push({ label: `${grant} with ${value.slice(0, 12)}`, method: 'POST', path, headers: { 'content-type': form }, body })
            }
          }
        }
      }
      const realm = `/realms/${REALM}`
      for (const path of [`${realm}/device?user_code=%00`, `${realm}/device?user_code=${LONG}`, `${realm}/login-actions/abc`, `${realm}/login-actions/${LONG}`, `${realm}/login-actions/%00`,
        `${realm}/gatehouse/callback?state=%00`, `${realm}/gatehouse/callback?code=a&state=${LONG}`, `${openid}/login-status-iframe.html/init?client_id=%00&origin=%FF`,
        `${openid}/login-status-iframe.html/init?client_id=${LONG}&origin=javascript:x`, `${openid}/3p-cookies/step1.html?x=%00`, `${realm}?x=%00`, `${openid}/certs?x=%00`,
        `${realm}/.well-known/openid-configuration/%00`, `${openid}/auth?client_id=end-users&response_type=code&redirect_uri=%00&scope=${LONG}`, `${openid}/auth?request=${forgedJwts[0]}&client_id=end-users`]) {
        for (const method of ['GET', 'POST']) probes.push({ label: 'a realm page', method, path, headers: { 'content-type': form, accept: 'text/html' }, body: 'user_code=%00&username=%00&password=x' })
        probes.push({ label: 'a realm page as JSON', method: 'GET', path, headers: { accept: 'application/json', authorization: `Bearer ${forgedJwts[0]}` } })
      }
      for (const realm of ['%00', '%FF', LONG, '%20', 'no-such-realm']) probes.push({ label: `realm ${realm.slice(0, 10)}`, method: 'POST', path: `/realms/${realm}/protocol/openid-connect/token`, headers: { 'content-type': form }, body: 'grant_type=password' })
      assert.ok(probes.length > 1500, `${probes.length} requests`)
      await sweep(probes, 'keycloak', () => false)
      assert.deepEqual(await snapshot(), before)
    })

    onceOnly('answers malformed questions at the forward-authentication endpoints with a code, never a 5xx', async () => {
      const uris = ['', 'relative', '/%00', '/%zz', '/%FF%FE', `/${LONG}`, 'http://[bad/', 'http://exa mple/', '//evil.example/', '/api/controller/%2e%2e/', '/api/controller/../../', '*', 'http://', 'ftp://example.com/']
      const methods = ['', 'get', 'G E T', 'X'.repeat(100), 'GET\u00ff']
      const probes: Probe[] = []
      for (const [who, headers] of [['superuser', adminAuth], ['anonymous', {}]] as const) {
        for (const uri of uris) {
          probes.push({ label: `${who}, X-Original-URI ${uri.slice(0, 20)}`, method: 'GET', path: `${V1}/authz/auth-request/`, headers: { ...headers, 'x-original-method': 'GET', 'x-original-uri': uri } })
          probes.push({ label: `${who}, X-Forwarded-Uri ${uri.slice(0, 20)}`, method: 'GET', path: `${V1}/authz/forward-auth/`, headers: { ...headers, 'x-forwarded-method': 'GET', 'x-forwarded-uri': uri, 'x-forwarded-host': '%00' } })
        }
        for (const method of methods) {
          probes.push({ label: `${who}, X-Original-Method ${method.slice(0, 20)}`, method: 'GET', path: `${V1}/authz/auth-request/`, headers: { ...headers, 'x-original-uri': '/api/controller/', 'x-original-method': method } })
          probes.push({ label: `${who}, X-Forwarded-Method ${method.slice(0, 20)}`, method: 'GET', path: `${V1}/authz/forward-auth/`, headers: { ...headers, 'x-forwarded-uri': '/api/controller/', 'x-forwarded-method': method } })
        }
        for (const path of ['%00', '%FF', '%zz', LONG, '..%2F..%2F', 'api/controller/%2e%2e/%2e%2e/api/gateway/v1/users/']) {
          probes.push({ label: `${who}, ext-authz ${path.slice(0, 20)}`, method: 'POST', path: `${V1}/authz/ext-authz/${path}`, headers: { ...headers, 'content-type': 'application/json' }, body: '{"a": ' })
        }
        probes.push({ label: `${who}, no URI`, method: 'GET', path: `${V1}/authz/auth-request/`, headers })
        probes.push({ label: `${who}, no method`, method: 'GET', path: `${V1}/authz/forward-auth/`, headers: { ...headers, 'x-forwarded-uri': '/api/controller/' } })
        probes.push({ label: `${who}, a bearer token that is not one`, method: 'GET', path: `${V1}/authz/forward-auth/`, headers: { authorization: `Bearer ${LONG}`, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/api/controller/' } })
      }
      await sweep(probes, 'gateway', () => false)
    })
  })
}
