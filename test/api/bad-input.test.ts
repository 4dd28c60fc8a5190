import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type ApiRoute, gatewayApiRoutes } from '../../src/api/route-table.ts'
import { call } from '../helpers/access.ts'
import { adminListings, oneOfEach, typesOf, type JsonSchema } from '../helpers/api-objects.ts'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

/**
 * Every endpoint of the gateway API, walked from its route table and its OpenAPI document, answers bad input with a
 * 4xx JSON error carrying a stable `code` and a human `detail` (for invalid input, the fields by name), never a 5xx,
 * a hang or a stack trace, and changes nothing.
 */

const V1 = '/api/gateway/v1'

interface Answer {
  status: number
  type: string
  allow: string | null
  body: any
}

/** Values of each JSON type; those of a type a field does not take must be refused, naming the field. */
const VALUES_BY_TYPE: [string, unknown[]][] = [
  ['string', ['a string the field does not take']],
  ['number', [1.5, -1, 1e300]],
  ['boolean', [true]],
  ['array', [[], ['x'], [[]]]],
  ['object', [{}, { nested: { deeper: 1 } }]],
  ['null', [null]],
]

/** Values a field with this schema must refuse: every JSON type it does not take, and text too long for it. */
function wrongValues(schema: JsonSchema): unknown[] {
  const types = typesOf(schema)
  if (!types) return []
  const wrong = VALUES_BY_TYPE.filter(([type]) => !types.has(type)).flatMap(([, values]) => values)
  if (schema.maxLength !== undefined) wrong.push('x'.repeat(schema.maxLength + 1))
  if (schema.enum && types.has('string')) wrong.push('not-one-of-the-choices')
  return wrong
}

/** Bodies no write endpoint takes, each with the content type it is sent as. */
const MALFORMED_BODIES: [string, string, string][] = [
  ['an array', '[]', 'application/json'],
  ['an array of objects', '[{}]', 'application/json'],
  ['a string', '"text"', 'application/json'],
  ['a number', '1', 'application/json'],
  ['a boolean', 'true', 'application/json'],
  ['truncated JSON', '{"name": ', 'application/json'],
  ['JSON with a trailing comma', '{"name": "x",}', 'application/json'],
  ['an unknown field', '{"no_such_field": 1}', 'application/json'],
  ['a duplicated unknown field', '{"no_such_field": 1, "no_such_field": 2}', 'application/json'],
  ['arrays nested 100,000 deep', '['.repeat(100_000) + ']'.repeat(100_000), 'application/json'],
  ['objects nested 5,000 deep', '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000), 'application/json'],
  ['a prototype key', '{"__proto__": {"is_superuser": true}}', 'application/json'],
  ['a form with an unknown field', 'no_such_field=1&no_such_field=2', 'application/x-www-form-urlencoded'],
  ['plain text', '{"name": "x"}', 'text/plain'],
  ['XML', '<user><name>x</name></user>', 'application/xml'],
  ['a multipart form', '--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n', 'multipart/form-data; boundary=b'],
  ['a body over the limit', JSON.stringify({ description: 'x'.repeat(1_100_000) }), 'application/json'],
]

/** Query parameters every list refuses with 400 naming the parameter. */
const BAD_LIST_QUERIES: [string, string][] = [
  ['page=0', 'page'], ['page=-1', 'page'], ['page=abc', 'page'], ['page=1.5', 'page'], ['page=1e3', 'page'],
  ['page=1000001', 'page'], ['page=99999999999999999999', 'page'], ['page=1&page=2', 'page'],
  ['page_size=0', 'page_size'], ['page_size=-5', 'page_size'], ['page_size=ten', 'page_size'],
  ['order_by=no_such_field', 'order_by'], ['order_by=-', 'order_by'], ['order_by=--created', 'order_by'],
  ['no_such_field=1', 'no_such_field'], ['not__no_such_field=1', 'not__no_such_field'], ['or__no_such_field=1', 'or__no_such_field'],
  ['created__regex=.', 'created__regex'], ['created__iregex=.', 'created__iregex'], ['created__icontains=1', 'created__icontains'],
  ['created__gt=not-a-date', 'created__gt'], ['created__isnull=maybe', 'created__isnull'], ['created__in=', 'created__in'],
  // Related lookups: every list refuses these (the assignment lists take `user__username` and `role_definition__name`).
  ['user__email=admin@example.com', 'user__email'], ['role_definition__managed=true', 'role_definition__managed'], ['__=1', '__'],
  // A key that is an object's prototype, and would vanish as such unread.
  ['__proto__=1', '__proto__'], ['constructor=1', 'constructor'],
]

/** Ids no detail endpoint has: not a number, not a whole one, out of range, or in another spelling. */
const BAD_IDS = ['abc', '1e3', '99999999999999999999', '2147483648', '-1', '0', '1.5', '01', '0x1', '%20', '%D9%A1']

describe('bad input to the gateway API', () => {
  let gw: TestGateway
  let routes: ApiRoute[]
  let document: { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: JsonSchema }> }; parameters?: { name: string }[] }>> }
  const ids: Record<string, number> = {}
  /** The login form's CSRF check passes, so that the login's input is what gets judged. */
  let csrf: Record<string, string>

  const send = async (method: string, path: string, body?: string, type?: string): Promise<Answer> => {
    const response = await gw.fetch(path, {
      method,
      headers: { ...adminAuth, ...csrf, ...(type ? { 'content-type': type } : {}) },
      body,
      signal: AbortSignal.timeout(10_000),
    })
    const text = await response.text()
    const answer = { status: response.status, type: response.headers.get('content-type') ?? '', allow: response.headers.get('allow'), body: undefined as unknown }
    answer.body = answer.type.startsWith('application/json') && text ? JSON.parse(text) : text
    return answer
  }

  /** A refusal as every refusal must be: 4xx, JSON, a stable code and a human message, nothing of the code inside. */
  const assertRefusal = (label: string, answer: Answer, status?: number) => {
    assert.ok(answer.status >= 400 && answer.status < 500, `${label}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`)
    if (status !== undefined) assert.equal(answer.status, status, `${label}: ${JSON.stringify(answer.body).slice(0, 300)}`)
    assert.match(answer.type, /^application\/json/, label)
    assert.match(answer.body.code, /^[a-z_]+$/, label)
    assert.equal(typeof answer.body.detail, 'string', label)
    assert.doesNotMatch(JSON.stringify(answer.body), /\.ts:\d|node:internal|at [A-Za-z.]+ \(/, `${label}: no stack trace`)
  }

  /** The path of a route with the ids of objects that exist; the realm of the demo configuration. */
  const concrete = (url: string) => url
    .replace(/\/(users|organizations|teams|tokens|applications|role_definitions|role_user_assignments|role_team_assignments|activitystream|sessions)\/:id\//g, (_match, kind: string) => `/${kind}/${ids[kind] ?? 1}/`)
    .replace(':realm', 'platform')
    .replace(':provider', 'no-such-provider')

  const operationOf = (route: ApiRoute) => document.paths[route.url.replace(/:(\w+)/g, '{$1}')]?.[route.method.toLowerCase()]

  const snapshot = () => adminListings(gw)

  before(async () => {
    gw = await startGateway()
    routes = await gatewayApiRoutes(gw.app)
    const csrftoken = await csrfToken(gw)
    csrf = { cookie: `csrftoken=${csrftoken}`, 'x-csrftoken': csrftoken, referer: gw.url + LOGIN }
    document = await json(await gw.fetch(`${V1}/openapi.json`))
    Object.assign(ids, await oneOfEach(gw, 'Fuzzed'))
    await gw.app.audit.flush()
    const activity = await call(gw, 'GET', 'activitystream/?page_size=1')
    ids.activitystream = activity.body.results[0].id
    assert.ok(Object.values(ids).every(Number.isInteger), JSON.stringify(ids))
  })
  after(() => gw?.close())

  it('refuses malformed bodies and wrongly typed fields at every write endpoint, and changes nothing', async () => {
    const writes = routes.filter((route) => ['POST', 'PUT', 'PATCH'].includes(route.method) && operationOf(route)?.requestBody)
    assert.ok(writes.length >= 30, `${writes.length} write endpoints with a body`)
    const before = await snapshot()
    let fieldsTried = 0
    for (const route of writes) {
      const path = concrete(route.url)
      for (const [label, body, type] of MALFORMED_BODIES) {
        assertRefusal(`${route.method} ${route.url} with ${label}`, await send(route.method, path, body, type))
      }
      // Named, not only refused for another reason: a misspelt field is never dropped unread.
      const unknown = await send(route.method, path, '{"no_such_field": 1}', 'application/json')
      assert.deepEqual(unknown.body.errors?.no_such_field, ['Unknown field.'], `${route.method} ${route.url} names an unknown field: ${JSON.stringify(unknown.body)}`)
      const prototype = await send(route.method, path, '{"__proto__": {"is_superuser": true}}', 'application/json')
      assert.match(prototype.body.detail, /holds a "__proto__" key/, `${route.method} ${route.url}: ${JSON.stringify(prototype.body)}`)
      const schema = operationOf(route)!.requestBody!.content['application/json']!.schema
      for (const [field, fieldSchema] of Object.entries(schema.properties ?? {})) {
        for (const value of wrongValues(fieldSchema)) {
          const label = `${route.method} ${route.url} with ${field}: ${JSON.stringify(value).slice(0, 40)}`
          const answer = await send(route.method, path, JSON.stringify({ [field]: value }), 'application/json')
          assertRefusal(label, answer, 400)
          assert.ok(answer.body.errors?.[field] ?? answer.body.errors?.non_field_errors, `${label}: names the field: ${JSON.stringify(answer.body)}`)
          fieldsTried++
        }
      }
    }
    assert.ok(fieldsTried > 300, `${fieldsTried} wrong field values`)
    assert.deepEqual(await snapshot(), before)
  })

  it('answers a field nested 100,000 deep at every write endpoint as any value of the wrong type, never with a 5xx', async () => {
    const writes = routes.filter((route) => ['POST', 'PUT', 'PATCH'].includes(route.method) && operationOf(route)?.requestBody)
    // The login reads at most 32 KiB (LOGIN_BODY_LIMIT), so it gets what that holds: 16,000 deep.
    const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`
    let fieldsTried = 0
    for (const route of writes) {
      const deep = nested(route.url.endsWith('/login/') ? 16_000 : 100_000)
      const schema = operationOf(route)!.requestBody!.content['application/json']!.schema
      for (const field of Object.keys(schema.properties ?? {})) {
        const label = `${route.method} ${route.url} with ${field} nested deep`
        const answer = await send(route.method, concrete(route.url), `{${JSON.stringify(field)}: ${deep}}`, 'application/json')
        // A field the server makes itself (an application's client_id) is ignored in a body, as on the platform.
        if (answer.status >= 300) assertRefusal(label, answer, 400)
        fieldsTried++
      }
    }
    assert.ok(fieldsTried > 100, `${fieldsTried} fields`)
  })

  it('takes a PUT as a replacement: it requires every field a create requires, and changes nothing without them', async () => {
    const before = await snapshot()
    const puts = routes.filter((route) => route.method === 'PUT' && route.url.endsWith('/:id/'))
    assert.ok(puts.length >= 5, `${puts.length} objects replaced by PUT`)
    for (const route of puts) {
      const create = document.paths[route.url.replace(/:id\/$/, '')]?.post?.requestBody?.content['application/json']?.schema as { required?: string[] } | undefined
      const required = create?.required ?? []
      // A token requires nothing (its scope has a default, the rest is optional), there as here: its PUT is tested
      // with the tokens (test/api/tokens.test.ts).
      if (route.url === `${V1}/tokens/:id/`) {
        assert.deepEqual(required, [], route.url)
        continue
      }
      assert.ok(required.length, `${route.url}: a create requires something`)
      const answer = await send('PUT', concrete(route.url), '{}', 'application/json')
      assertRefusal(`PUT ${route.url} with nothing`, answer, 400)
      assert.deepEqual(answer.body.errors, Object.fromEntries(required.map((field) => [field, ['This field is required.']])), route.url)
    }
    assert.deepEqual(await snapshot(), before)
  })

  it('refuses bad query parameters at every list, naming the parameter', async () => {
    const lists = routes.filter((route) => route.method === 'GET' && operationOf(route)?.parameters?.some((parameter) => parameter.name === 'page'))
    assert.ok(lists.length >= 15, `${lists.length} lists`)
    for (const route of lists) {
      const path = concrete(route.url)
      for (const [query, parameter] of BAD_LIST_QUERIES) {
        const answer = await send('GET', `${path}?${query}`)
        assertRefusal(`GET ${path}?${query}`, answer, 400)
        assert.ok(answer.body.errors?.[parameter], `GET ${path}?${query} names ${parameter}: ${JSON.stringify(answer.body)}`)
      }
      // As the platform's paginator does, whatever the number's length (DRF reads it with int()); leading zeros are not a number's size.
      for (const huge of ['99999999', '1000000000', '9'.repeat(400), '0000000000001000']) {
        const capped = await send('GET', `${path}?page_size=${huge}`)
        assert.equal(capped.status, 200, `${path} caps a page size of ${huge.length} digits: ${JSON.stringify(capped.body)}`)
        assert.ok(capped.body.results.length <= 200)
      }
      const one = await send('GET', `${path}?page_size=0000000000001`)
      assert.equal(one.status, 200, `${path}?page_size=0000000000001`)
      assert.ok(one.body.results.length <= 1)
      const plain = await send('GET', path)
      assert.deepEqual((await send('GET', `${path}?format=json`)).body, plain.body, `${path}?format=json`)
    }
  })

  it('answers a body of thousands of bad fields with a short refusal, also to a login without credentials', async () => {
    const bodies: [string, unknown, string][] = [
      ['unknown fields', 1, 'unknown fields.'],
      ['NUL characters', 'a\u0000b', 'fields with the same problem.'],
      ['lone surrogates', '\ud800', 'fields with the same problem.'],
    ]
    // The login reads at most 32 KiB (LOGIN_BODY_LIMIT): a thousand such fields fit in it.
    for (const [path, headers, count] of [[`${V1}/login/`, csrf, 1000], [`${V1}/users/`, { ...adminAuth, ...csrf }, 20_000]] as const) {
      const names = Array.from({ length: count }, (_, i) => `field${i}`)
      for (const [label, value, problem] of bodies) {
        const more = `And ${(count - 20).toLocaleString('en')} more ${problem}`
        const body = JSON.stringify({ ...Object.fromEntries(names.map((name) => [name, value])), username: 'nobody', password: 'not-a-password' })
        const response = await gw.fetch(path, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) })
        const text = await response.text()
        const answer = { status: response.status, type: response.headers.get('content-type') ?? '', allow: null, body: JSON.parse(text) }
        const what = `POST ${path} with ${names.length} ${label}`
        assertRefusal(what, answer, 400)
        assert.ok(text.length < 8 * 1024, `${what}: a ${body.length}-byte body got a ${text.length}-byte refusal`)
        assert.ok(answer.body.errors.field0, `${what}: names the first: ${text.slice(0, 300)}`)
        assert.deepEqual(answer.body.errors.non_field_errors, [more], what)
      }
    }
  })

  it('names a field, a filter or a pk of tens of kilobytes by its start, in a short refusal, also to a login without credentials', async () => {
    const long = (letter: string, length: number) => letter.repeat(length)
    const cut = (letter: string) => `${letter.repeat(64)}…`
    const requests: [string, string, Record<string, string>, unknown, string][] = [
      // The login reads at most 32 KiB (LOGIN_BODY_LIMIT).
      ['POST', `${V1}/login/`, csrf, { [long('k', 30_000)]: 1, username: 'nobody', password: 'not-a-password' }, cut('k')],
      ['POST', `${V1}/organizations/`, { ...adminAuth, ...csrf }, { name: 'never-made', [long('x', 50_000)]: 1 }, cut('x')],
      ['GET', `${V1}/users/?${long('q', 5_000)}=1`, adminAuth, undefined, cut('q')],
      ['POST', `${V1}/role_definitions/`, { ...adminAuth, ...csrf }, { name: 'never-made', content_type: 'shared.team', permissions: [long('p', 100_000)] }, 'permissions'],
    ]
    for (const [method, path, headers, body, field] of requests) {
      const response = await gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
      const text = await response.text()
      const what = `${method} ${path.slice(0, 60)}`
      assertRefusal(what, { status: response.status, type: response.headers.get('content-type') ?? '', allow: null, body: JSON.parse(text) }, 400)
      assert.ok(text.length < 2048, `${what}: a ${text.length}-byte refusal`)
      const { errors } = JSON.parse(text)
      assert.ok(errors[field], `${what}: names ${field.slice(0, 8)}: ${text.slice(0, 300)}`)
      if (field === 'permissions') assert.equal(errors.permissions[0], `Invalid pk "${cut('p')}" - object does not exist.`)
    }
    const organizations = await json(await gw.fetch(`${V1}/organizations/?name=never-made`, { headers: adminAuth }))
    assert.equal(organizations.count, 0)
  })

  it('searches for SQL wildcards as the characters themselves', async () => {
    await call(gw, 'POST', 'users/', { username: 'under_score', password: 'under-score-password' })
    await call(gw, 'POST', 'users/', { username: 'underXscore', password: 'underxscore-password' })
    const underscore = await call(gw, 'GET', 'users/?search=_')
    assert.deepEqual(underscore.body.results.map((user: any) => user.username), ['under_score'])
    for (const wildcard of ['%25', '%5C', '%5C%25', '*', "'"]) {
      const answer = await call(gw, 'GET', `users/?search=${wildcard}`)
      assert.deepEqual([answer.status, answer.body.count], [200, 0], wildcard)
    }
    assert.equal((await call(gw, 'GET', 'users/?username__contains=_')).body.count, 1)
  })

  it('answers 404 for ids that no object has, in every detail endpoint', async () => {
    const details = routes.filter((route) => route.method === 'GET' && route.url.includes(':id'))
    assert.ok(details.length >= 15, `${details.length} endpoints with an id`)
    for (const route of details) {
      for (const id of BAD_IDS) {
        const path = concrete(route.url.replace(':id', id))
        assertRefusal(`GET ${path}`, await send('GET', path), 404)
      }
    }
  })

  it('answers 405 with Allow for every method a path does not have, OPTIONS on every path, and changes nothing', async () => {
    const before = await snapshot()
    // The versioned API's root is announced without its slash, though it answers with it (Fastify's prefixTrailingSlash).
    const byPath = Map.groupBy(routes, (route) => (route.url === V1 ? `${V1}/` : route.url))
    let refused = 0
    for (const [url, own] of byPath) {
      const path = concrete(url)
      const has = new Set(own.map((route) => route.method))
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((method) => !has.has(method))) {
        const answer = await send(method, path, method === 'GET' ? undefined : '{}', method === 'GET' ? undefined : 'application/json')
        assertRefusal(`${method} ${path}`, answer, 405)
        assert.equal(answer.body.code, 'method_not_allowed')
        const allowed = answer.allow?.split(', ') ?? []
        assert.ok([...has].every((method) => allowed.includes(method)), `${method} ${path}: Allow ${answer.allow} names ${[...has]}`)
        refused++
      }
      const options = await send('OPTIONS', path)
      assert.equal(options.status, 200, `OPTIONS ${path}`)
      assert.ok([...has, 'OPTIONS'].every((method) => options.allow?.split(', ').includes(method)), `OPTIONS ${path}: Allow ${options.allow}`)
    }
    assert.ok(refused > 100, `${refused} methods refused`)
    assert.deepEqual(await snapshot(), before)
  })
})
