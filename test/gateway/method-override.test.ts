import assert from 'node:assert/strict'
import { request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { requestFrom } from '../helpers/from-address.ts'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { exchange } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const AUTH_REQUEST = '/api/gateway/v1/authz/auth-request/'
/** GET and POST only: a POST that a framework would take for a PUT, PATCH or DELETE is one these rules refuse. */
const READ_AND_CREATE = [{ allow: { methods: ['GET', 'POST'] } }]
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const BOUNDARY = 'gatehouse-test-boundary'
const MULTIPART = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }

/** A multipart body of these fields, as a browser writes a form with a file input. */
function multipart(fields: [string, string][]): string {
  return fields.map(([name, value]) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`).join('') + `--${BOUNDARY}--\r\n`
}

/**
 * Rails and Laravel take a POST's `_method` field for its method: a service whose access rules name methods judges
 * such a POST as that method too (docs/access.md "Methods named in a parameter"), on both of the built-in proxy's
 * paths (the lean one, and the general one a service with CORS takes) and in forward authentication.
 */
describe('a method named in a POST\'s _method parameter', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    const pool = { connections: 16, per_client: 16, wait_seconds: 5, body_buffer_kb: 1 }
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.2'] },
        services: [
          { name: 'lean', prefix: '/lean/', upstream: upstream.url, access: READ_AND_CREATE, pool },
          { name: 'general', prefix: '/general/', upstream: upstream.url, access: READ_AND_CREATE, pool, cors: { allowed_origins: ['https://app.example'] } },
          { name: 'off', prefix: '/off/', upstream: upstream.url, access: READ_AND_CREATE, pool, method_override_parameter: false },
          { name: 'renamed', prefix: '/renamed/', upstream: upstream.url, access: READ_AND_CREATE, pool, method_override_parameter: '_http_method' },
          { name: 'nomethods', prefix: '/nomethods/', upstream: upstream.url, access: [{ allow: { users: ['admin'] } }], pool },
          { name: 'laravel', prefix: '/laravel/', upstream: upstream.url, access: READ_AND_CREATE, pool, method_override_json: true },
          { name: 'denies', prefix: '/denies/', upstream: upstream.url, access: [{ deny: { methods: ['DELETE', 'PUT', 'PATCH'] } }, { allow: {} }], pool },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  /** A POST as admin (a superuser, whom the rules judge as anyone), and whether the service received it. */
  async function post(path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; code: string | undefined; detail: string | undefined; reached: boolean }> {
    const before = upstream.seen.length
    // Node's own client, which sends no Content-Type unless told (fetch makes a string body text/plain).
    const response = await requestFrom('127.0.0.1', `${gw.url}${path}`, { method: 'POST', headers: { ...adminAuth, ...headers }, ...(body === undefined ? {} : { body }) })
    const answer = String(response.headers['content-type']).includes('json') ? response.json() : {}
    return { status: response.status, code: answer.code, detail: answer.detail, reached: upstream.seen.length > before }
  }

  for (const service of ['lean', 'general']) {
    it(`${service}: is judged as the method it names in the query, in any case and spelling`, async () => {
      // PHP reads `.method`, ` method` and a name cut at NUL as its `_method`.
      for (const query of ['_method=DELETE', '_method=put', '%5Fmethod=PATCH', 'a=1;_method=DELETE', 'a=1&_method=GET&_method=DELETE', '_method=+delete+', '.method=DELETE', '%2Emethod=DELETE', '_method%00x=DELETE', '+_method=DELETE']) {
        const refused = await post(`/${service}/items/1?${query}`)
        assert.deepEqual([refused.status, refused.code, refused.reached], [403, 'access_denied', false], query)
      }
      const refused = await post(`/${service}/items/1?_method=DELETE`)
      assert.match(refused.detail!, /names the method DELETE in _method/)
      for (const query of ['_method=GET', '_method=post', 'method=DELETE', 'x_method=DELETE']) {
        const allowed = await post(`/${service}/items/1?${query}`)
        assert.deepEqual([allowed.status, allowed.reached], [200, true], query)
      }
    })

    it(`${service}: is judged as the method its form body names, urlencoded, multipart or untyped, once read`, async () => {
      const refusedBodies: [Record<string, string>, string][] = [
        [FORM, 'title=x&_method=DELETE'],
        [FORM, '_method=patch'],
        [FORM, 'title=x&%5Fmethod=PUT'],
        [{ 'content-type': 'Application/X-WWW-Form-Urlencoded; charset=utf-8' }, '_method=DELETE'],
        [{}, '_method=DELETE'],
        [MULTIPART, multipart([['authenticity_token', 'abc'], ['_method', 'delete'], ['title', 'x']])],
        [MULTIPART, multipart([['_method', 'post'], ['_method', 'DELETE']])],
        // Media types as Rack and PHP cut them: at `;`, `,` or a space, and any multipart/*.
        [{ 'content-type': 'application/x-www-form-urlencoded,text/plain' }, '_method=DELETE'],
        [{ 'content-type': 'application/x-www-form-urlencoded x' }, '_method=DELETE'],
        [{ 'content-type': `multipart/related; boundary=${BOUNDARY}` }, multipart([['_method', 'DELETE']])],
        [{ 'content-type': 'multipart/mixed' }, '_method=DELETE'],
        // Names as Rack (backslash escapes) and PHP (`.` for `_`) read them.
        [MULTIPART, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="_meth\\od"\r\n\r\nDELETE\r\n--${BOUNDARY}--\r\n`],
        [MULTIPART, multipart([['.method', 'DELETE']])],
        [FORM, '.method=DELETE'],
        // A coded body, which a server in front of the service may decode, cannot be read here.
        [{ ...FORM, 'content-encoding': 'gzip' }, '_method=DELETE'],
        // Rack 2 drops brackets around a name; other spellings are not guessed at.
        [FORM, '_method]=DELETE'], [FORM, '[_method]=DELETE'], [FORM, ']_method=DELETE'], [{}, '[[_method=DELETE'], [FORM, '_METHOD=DELETE'],
        // A multipart body whose boundary Rack cannot use, which it reads as urlencoded.
        [{ 'content-type': 'multipart/form-data' }, '%5Fmethod=DELETE'],
        [{ 'content-type': 'multipart/mixed' }, '_%6Dethod=DELETE'],
        [{ 'content-type': 'multipart/form-data; boundary=";x"' }, '%5Fmethod=PATCH'],
      ]
      for (const [headers, body] of refusedBodies) {
        const refused = await post(`/${service}/items/1`, headers, body)
        // The general path's parser refuses a media type list outright, before any rule.
        const expected = service === 'general' && /^[^;]*[, ]/.test(headers['content-type'] ?? '') ? [415, 'unsupported_media_type', false] : [403, 'access_denied', false]
        assert.deepEqual([refused.status, refused.code, refused.reached], expected, `${JSON.stringify(headers)} ${body}`)
      }
      const allowedBodies: [Record<string, string>, string][] = [
        [FORM, 'title=x&_method=GET'],
        [FORM, 'title=x'],
        [{}, 'title=x'],
        [{ 'content-type': 'text/plain' }, '_method=DELETE'],
        [MULTIPART, multipart([['title', 'x'], ['_method', 'POST']])],
        [MULTIPART, multipart([['title', 'x']])],
        // The name in a value, or a field of another name, is no parameter: only a part's name in some spelling is.
        [MULTIPART, multipart([['title', 'about _method and .method'], ['_method', 'POST'], ['payment_method', 'card']])],
        [FORM, 'method=card&payment_method=DELETE&comment=use+_method%3DDELETE'],
        // No framework takes the method from a JSON body.
        [{ 'content-type': 'application/json' }, '{"_method":"DELETE"}'],
      ]
      for (const [headers, body] of allowedBodies) {
        const allowed = await post(`/${service}/items/1`, headers, body)
        assert.deepEqual([allowed.status, allowed.reached], [200, true], body)
        assert.equal(upstream.seen.at(-1)!.bytes, Buffer.byteLength(body))
      }
    })

    it(`${service}: gives the service the media type the body was judged by, though the request's Connection names it`, async () => {
      // Rack reads a POST without a media type as a form: one judged as text/plain must not reach it without one.
      for (const connection of ['close, Content-Type', 'content-type', 'Keep-Alive, CONTENT-TYPE, Content-Encoding']) {
        const sent = await post(`/${service}/items/1`, { 'content-type': 'text/plain', connection }, '_method=DELETE')
        assert.deepEqual([sent.status, sent.reached], [200, true], connection)
        assert.equal(upstream.seen.at(-1)!.headers['content-type'], 'text/plain', connection)
      }
      const refused = await post(`/${service}/items/1`, { ...FORM, connection: 'close, Content-Type' }, 'title=x&_method=DELETE')
      assert.deepEqual([refused.status, refused.code, refused.reached], [403, 'access_denied', false])
    })

    it(`${service}: refuses a form body it cannot read whole or with certainty, where the rules refuse a method it could name`, async () => {
      // Read whole up to a mebibyte, whatever body_buffer_kb (1 KiB here) says.
      const read = await post(`/${service}/items/1`, FORM, `title=${'x'.repeat(200_000)}&_method=DELETE`)
      assert.deepEqual([read.status, read.code], [403, 'access_denied'])
      // Beyond that it streams on, refused where its bytes hold the parameter's letters, before the service has it all.
      const large = await post(`/${service}/items/1`, FORM, `title=${'x'.repeat(1024 * 1024 + 1)}&_method=DELETE`)
      assert.deepEqual([large.status, large.code, large.reached], [413, 'method_override_unread', false])
      assert.match(large.detail!, /body_buffer_kb/)
      // A multipart body that mentions the name elsewhere than as a part's name, where another parser could find a
      // field the gateway did not (a name attribute in single quotes, a part inside a value), is not guessed at.
      for (const body of [
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name='_method'\r\n\r\nDELETE\r\n--${BOUNDARY}--\r\n`,
      ]) {
        const ambiguous = await post(`/${service}/items/1`, MULTIPART, body)
        assert.deepEqual([ambiguous.status, ambiguous.code, ambiguous.reached], [403, 'access_denied', false], body)
        assert.match(ambiguous.detail!, /cannot be read as every framework reads it/)
      }
      // A boundary PHP finds elsewhere than the field's boundary parameter (in `xboundary`): parts are not guessed at,
      // on a service whose rules deny methods too.
      const twoBoundaries = await post(`/${service === 'lean' ? 'denies' : service}/items/1`, { 'content-type': 'multipart/form-data; xboundary=AAA; boundary=BBB' },
        '--AAA\r\nX-Pad: --BBB\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--AAA--\r\n')
      assert.deepEqual([twoBoundaries.status, twoBoundaries.reached], [403, false])
      assert.doesNotMatch(twoBoundaries.detail!, /[\r\n]/)
      // A chunked form of exactly the size read whole is read whole.
      const whole = await post(`/${service}/items/1`, { ...FORM, 'transfer-encoding': 'chunked' }, `title=${'x'.repeat(1024 * 1024 - 6)}`)
      assert.deepEqual([whole.status, whole.reached], [200, true])
      // A large body that is no form is streamed on as before.
      const json = await post(`/${service}/items/1`, { 'content-type': 'application/json' }, JSON.stringify({ title: 'x'.repeat(2048) }))
      assert.deepEqual([json.status, json.reached], [200, true])
    })
  }

  for (const service of ['lean', 'general']) {
    it(`${service}: streams a form larger than it reads whole to the service, refused unfinished where its bytes hold the parameter's letters`, async () => {
      // Three mebibytes of every byte value in turn: letters, but never m, e, t, h, o, d in a row.
      const file = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => i % 256)).toString('latin1')
      const upload = multipart([['title', 'holiday'], ['photo', file]])
      const allowed = await post(`/${service}/items/1`, MULTIPART, upload)
      assert.deepEqual([allowed.status, allowed.reached], [200, true])
      assert.equal(upstream.seen.at(-1)!.bytes, Buffer.byteLength(upload), 'every byte reached the service')
      const urlencoded = `title=${'x'.repeat(2 * 1024 * 1024)}&a=1`
      assert.deepEqual(Object.values(await post(`/${service}/items/1`, FORM, urlencoded)).slice(0, 1).concat(upstream.seen.at(-1)!.bytes), [200, urlencoded.length])
      // Its letters anywhere, in any case and spelling, escaped or not, at the start, in the middle or in the last bytes.
      for (const [headers, body] of [
        [MULTIPART, multipart([['photo', file], ['_method', 'DELETE']])],
        [MULTIPART, multipart([['_method', 'DELETE'], ['photo', file]])],
        [MULTIPART, multipart([['photo', file.slice(0, 2 * 1024 * 1024)], ['x', 'user-METHOD'], ['more', file]])],
        [FORM, `${urlencoded}&_m%65th%6Fd=DELETE`],
        [FORM, `${urlencoded}&_m\\e-t.h%00od=DELETE`],
        [{}, `${urlencoded}&_method=DELETE`],
      ] as const) {
        const refused = await post(`/${service}/items/1`, headers, body)
        assert.deepEqual([refused.status, refused.code, refused.reached], [413, 'method_override_unread', false], body.slice(-40))
        assert.match(refused.detail!, /holds the letters of _method/)
      }
      // Where the rules refuse no method it could name, nothing is looked for.
      assert.deepEqual(Object.values(await post('/nomethods/items/1', FORM, `${urlencoded}&_method=DELETE`)).slice(0, 1), [200])
    })

    it(`${service}: finds the parameter's letters, and an escape, cut between the chunks of a streamed form`, async () => {
      const head = `title=${'x'.repeat(1024 * 1024 + 10)}`
      for (const pieces of [[head, '&_me', 'thod=DELETE'], [head, '&_m%6', '5thod=DELETE'], [head, '&_meth', 'o%6', '4=DELETE'], [head + '&_metho', '%d']]) {
        const refused = await postInPieces(`/${service}/items/1`, FORM, pieces)
        assert.deepEqual([refused.status, refused.code, refused.reached], [413, 'method_override_unread', false], pieces.slice(1).join('|'))
      }
      const allowed = await postInPieces(`/${service}/items/1`, FORM, [head, '&a=%6', '5&b=met', 'ha&d=1'])
      assert.deepEqual([allowed.status, allowed.reached], [200, true])
    })
  }

  it('takes no request pipelined behind a streamed form it refused: the connection\'s last answer is the refusal', async () => {
    const authorization = `Authorization: ${adminAuth.authorization}`
    for (const service of ['lean', 'general']) {
      const form = `title=${'x'.repeat(2 * 1024 * 1024)}&_method=DELETE`
      const first = `POST /${service}/items/1 HTTP/1.1\r\nHost: gw\r\n${authorization}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\n\r\n${form}`
      const second = `POST /${service}/pipelined HTTP/1.1\r\nHost: gw\r\n${authorization}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b`
      const received = await exchange(gw.url, first + second, 8000)
      assert.deepEqual([...received.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['413'], service)
      assert.equal(upstream.seen.some((seen) => seen.url.includes('/pipelined')), false, `${service}: the service never got the request behind it`)
    }
  })

  /** A chunked POST written in `pieces`, a pause between them, so that each reaches the gateway as a chunk of its own. */
  async function postInPieces(path: string, headers: Record<string, string>, pieces: string[]): Promise<{ status: number; code: string | undefined; reached: boolean }> {
    const before = upstream.seen.length
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const outgoing = request(`${gw.url}${path}`, { method: 'POST', headers: { ...adminAuth, ...headers } }, (response) => {
        let text = ''
        response.on('data', (chunk) => (text += chunk))
        response.on('end', () => resolve({ status: response.statusCode!, body: text }))
      })
      outgoing.on('error', reject)
      void (async () => {
        for (const piece of pieces) {
          outgoing.write(piece)
          await sleep(60)
        }
        outgoing.end()
      })()
    })
    return { status, code: status === 200 ? undefined : JSON.parse(body).code, reached: upstream.seen.length > before }
  }

  it('reads a JSON body only for a service that says its framework takes the method from one (Laravel)', async () => {
    for (const type of ['application/json', 'application/vnd.api+json', 'text/plain; x=/json']) {
      assert.equal((await post('/lean/items/1', { 'content-type': type }, '{"_method":"DELETE"}')).status, 200, type)
      const refused = await post('/laravel/items/1', { 'content-type': type }, '{"title":"x","_method":"delete"}')
      assert.deepEqual([refused.status, refused.code, refused.reached], [403, 'access_denied', false], type)
    }
    for (const body of ['{"_method":"GET"}', '{"nested":{"_method":"DELETE"}}', '["_method","DELETE"]', '{"_method":["DELETE"]}', 'not json _method=DELETE']) {
      assert.equal((await post('/laravel/items/1', { 'content-type': 'application/json' }, body)).status, 200, body)
    }
  })

  it('reads nothing for a service that turned it off, or whose rules name no method, and reads the name a service gives', async () => {
    for (const path of ['/off/items/1', '/nomethods/items/1']) {
      assert.deepEqual((await post(`${path}?_method=DELETE`)).status, 200, path)
      assert.deepEqual((await post(path, FORM, '_method=DELETE')).status, 200, path)
      assert.deepEqual((await post(path, FORM, `title=${'x'.repeat(2048)}`)).status, 200, path)
    }
    assert.equal((await post('/renamed/items/1', FORM, '_http_method=DELETE')).status, 403)
    assert.equal((await post('/renamed/items/1', FORM, '_method=DELETE')).status, 200)
  })

  it('is judged in forward authentication, from the query, and as every method for a form body it never sees', async () => {
    // Asked with POST: Node's client sends a body of a GET without a length or a coding, which is none.
    const ask = (uri: string, headers: Record<string, string> = {}, body?: string) => requestFrom('127.0.0.2', `${gw.url}${AUTH_REQUEST}`, { method: 'POST', headers: { ...adminAuth, 'x-original-method': 'POST', 'x-original-uri': uri, ...headers }, ...(body === undefined ? {} : { body }) })
    assert.equal((await ask('/lean/items/1?_method=DELETE', { 'content-type': 'application/json' })).status, 403)
    assert.equal((await ask('/lean/items/1', { 'content-type': 'application/json' })).status, 200)
    const form = await ask('/lean/items/1', FORM)
    assert.equal(form.status, 403)
    assert.match(form.json().detail, /forward authentication does not see/)
    assert.equal((await ask('/lean/items/1', { 'content-type': MULTIPART['content-type'] })).status, 403)
    assert.equal((await ask('/off/items/1', FORM)).status, 200)
    // A POST without a media type has a body, which Rack reads as a form, only where the question says it has one.
    assert.equal((await ask('/lean/items/1')).status, 200)
    assert.equal((await ask('/lean/items/1', { 'content-length': '0' }, '')).status, 200)
    assert.equal((await ask('/lean/items/1', { 'content-length': '3' }, 'a=1')).status, 403)
    assert.equal((await ask('/lean/items/1', { 'transfer-encoding': 'chunked' }, 'a=1')).status, 403)
    // nginx and Caddy ask without them, and send the original's as docs/forward-auth.md configures them: empty for none.
    for (const [length, coding, status] of [['3', '', 403], ['', 'chunked', 403], ['1e3', '', 403], ['0', '', 200], ['', '', 200], ['00', ' ', 200]] as const) {
      assert.equal((await ask('/lean/items/1', { 'x-original-content-length': length, 'x-original-transfer-encoding': coding })).status, status, `${length}/${coding}`)
    }
    // Caddy sends the length (empty for none) but cannot send the coding (Go's server takes it away): a chunked body
    // and none look alike there, so one without a length may have a body.
    for (const [length, status] of [['', 403], ['0', 200], ['3', 403]] as const) {
      assert.equal((await ask('/lean/items/1', { 'x-original-content-length': length, 'x-original-protocol': 'HTTP/1.1' })).status, status, `${length}, no coding`)
    }
    // Over HTTP/2 and HTTP/3 a body comes in frames, with neither: one without a length may have one.
    for (const [length, protocol, status] of [['', 'HTTP/2.0', 403], ['', 'HTTP/3.0', 403], ['0', 'HTTP/2.0', 200], ['', 'HTTP/1.1', 200]] as const) {
      assert.equal((await ask('/lean/items/1', { 'x-original-content-length': length, 'x-original-transfer-encoding': '', 'x-original-protocol': protocol })).status, status, `${length}/${protocol}`)
    }
    for (const type of ['multipart/mixed; boundary=B', 'application/x-www-form-urlencoded,text/plain']) assert.equal((await ask('/lean/items/1', { 'content-type': type })).status, 403, type)
    for (const uri of ['/lean/items/1?.method=DELETE', '/lean/items/1?_method%00=DELETE']) assert.equal((await ask(uri, { 'content-type': 'application/json' })).status, 403, uri)
    // JSON only where the service reads it.
    assert.equal((await ask('/lean/items/1', { 'content-type': 'application/json' })).status, 200)
    assert.equal((await ask('/laravel/items/1', { 'content-type': 'application/json' })).status, 403)
  })
})
