import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { deniedPathSpellings, otherPathsBesideDenied } from '../helpers/path-spellings.ts'
import { exchange } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const statusLines = (text: string) => text.split('\r\n').filter((line) => line.startsWith('HTTP/1.1 '))

describe('request targets and framing at the edge', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  const authorization = adminAuth.authorization

  before(async () => {
    upstream = await startRecordingUpstream((request, response) => {
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'text/plain' })
        response.end(`upstream saw ${request.url}`)
      }, request.url!.endsWith('/slow') ? 300 : 0)
    })
    gw = await startGateway({
      config: {
        services: [
          { name: 'rec', prefix: '/rec/', upstream: `${upstream.url}/base`, strip_prefix: true, public_paths: ['/rec/open/*'] },
          // A private service under the public paths of another.
          { name: 'closed', prefix: '/rec/open/closed/', upstream: upstream.url, accepts: ['basic'] },
          { name: 'guarded', prefix: '/guarded/', upstream: upstream.url, accepts: ['basic'], access: [{ deny: { paths: ['/guarded/admin/*'] } }, { allow: { users: ['admin'] } }] },
          { name: 'controller', prefix: '/api/controller/', upstream: upstream.url, accepts: ['basic'], access: [{ deny: { paths: ['/api/controller/v2/hosts/*'] } }, { allow: { users: ['admin'] } }] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  it('answers 400 to malformed percent escapes in the query or the path, and forwards nothing', async () => {
    const before = upstream.seen.length
    for (const target of ['/rec/open/x?q=%ZZ', '/rec/open/x?q=%', '/rec/open/x?q=%E9t%E9', '/rec/open/%ZZ', '/rec/open/%C0%AE%C0%AE/x']) {
      const response = await gw.fetch(target)
      assert.equal(response.status, 400, target)
      assert.equal((await json(response)).code, 'malformed_escape', target)
    }
    assert.equal(upstream.seen.length, before)
    assert.equal((await gw.fetch('/rec/open/x?q=%C3%A9t%C3%A9&r=a%2Fb')).status, 200)
    assert.equal(upstream.seen.at(-1)!.url, '/base/open/x?q=%C3%A9t%C3%A9&r=a%2Fb')
  })

  it('says the same of a malformed escape in the path as in the query, and does not repeat the path back', async () => {
    const long = `/rec/open/${'a'.repeat(4000)}`
    const details = []
    for (const target of ['/rec/open/x?q=%ZZ', `${long}%ZZ`, `${long}%E9`, '/api/gateway/v1/%ZZ/', '/nothing/%ZZ']) {
      const body = await json(await gw.fetch(target))
      assert.equal(body.code, 'malformed_escape', target)
      assert.doesNotMatch(body.detail, /aaaa|gateway\/v1|nothing/, target)
      details.push(body.detail)
    }
    assert.deepEqual(new Set(details).size, 1, details.join(' | '))
  })

  it('cuts a prefix only where the raw path starts with it: an encoded prefix is no route', async () => {
    const before = upstream.seen.length
    for (const target of ['/%72ec/open/x', '/%72%65%63/open/x', '/r%65c/x']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 404 Not Found'], target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
  })

  it('refuses double-encoded dot segments and separators like single-encoded ones', async () => {
    for (const target of ['/rec/open/%252e%252e/secret', '/rec/open/%252E%252E/secret', '/rec/open/%25252e%25252e/x', '/rec/open/.%252e/x', '/rec/open/a%252fb', '/rec/open/a%255cb']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'], target)
      assert.match(response, /"code":"unsafe_path"/, target)
    }
    assert.equal((await gw.fetch('/rec/open/100%25/done')).status, 200)
  })

  it('refuses an escaped escape in the path, which a server decoding twice reads as another path than the rules judged', async () => {
    const before = upstream.seen.length
    // Its digits escaped too, in any mix: `%61` once decoded all the same (`%25%32%65%25%32%65` is `..` twice decoded).
    for (const target of ['/rec/open/%2561dmin', '/rec/open/%2541', '/rec/open/x%2520y', '/rec/%256Fpen/x', '/rec/open/%252541',
      '/rec/open/%25%36%31dmin', '/rec/open/%256%31dmin', '/rec/open/%25%361dmin', '/rec/open/%25%32%65%25%32%65/secret', '/rec/open/%252%65%252%65/secret', '/rec/open/x%25%33%62', '/rec/open/a%25%32%66b']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'], target)
      assert.match(response, /"code":"unsafe_path"/, target)
    }
    assert.equal(upstream.seen.length, before, 'nothing reached the upstream')
    for (const target of ['/rec/open/100%25/done', '/rec/open/100%25', '/rec/open/%25zz', '/rec/open/x?q=%2541', '/rec/open/50%25off', '/rec/open/%25%25', '/rec/open/x?q=%25%36%31']) {
      assert.equal((await gw.fetch(target)).status, 200, target)
    }
  })

  it('refuses dot segments with path parameters, which servlet containers resolve once they drop the parameters', async () => {
    const before = upstream.seen.length
    for (const target of ['/rec/open/..;/secret', '/rec/open/..;x=1/secret', '/rec/open/.;/x', '/rec/open/%2e%2e;/secret', '/rec/open/..%3b/secret', '/rec/open/..%253B/x', '/rec/open/..;']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'], target)
      assert.match(response, /"code":"unsafe_path"/, target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
    assert.equal((await gw.fetch('/rec/open/..x/x../done')).status, 200)
  })

  it('refuses path parameters and fragments, which servers behind the gateway drop before they route', async () => {
    // A servlet container acts on /rec/open/closed;x/y as on /rec/open/closed/y, a path the rules never judged: the
    // private service's, reached through the other's public paths. A fragment is no part of a request target at all.
    const before = upstream.seen.length
    for (const target of ['/rec/open/closed;x/y', '/rec/open/closed;/y', '/rec/open/closed%3Bx/y', '/rec/open/closed%253bx/y', '/rec/open/x#/closed/y', '/rec/open/closed/y#']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'], target)
      assert.match(response, /"code":"unsafe_path"/, target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
    assert.equal((await exchange(gw.url, `GET /rec/open/x?a=1;b=2#c HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)).split('\r\n')[0], 'HTTP/1.1 200 OK', 'the query may hold them')
  })

  it('merges runs of slashes in the path before routing, so the rules judge the path the service receives', async () => {
    const before = upstream.seen.length
    for (const target of ['/rec/open//closed/x', '//rec/open/closed/x', '/rec//open/closed/x', '/rec/open/closed//x', '///rec/open///closed/x']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 401 Unauthorized'], target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
    assert.equal((await exchange(gw.url, `GET /rec/open//closed//x?next=//a//b HTTP/1.1\r\nHost: gw\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`)).split('\r\n')[0], 'HTTP/1.1 200 OK')
    assert.equal(upstream.seen.at(-1)!.url, '/rec/open/closed/x?next=//a//b', 'the merged path, the query as sent')
    assert.equal((await gw.fetch('/rec//open//x')).status, 200)
    assert.equal(upstream.seen.at(-1)!.url, '/base/open/x')
  })

  it('judges the paths in access rules as the service reads them, percent escapes decoded', async () => {
    const before = upstream.seen.length
    for (const target of ['/guarded/admin/x', '/guarded/%61dmin/x', '/guarded/%61%64%6D%69%6E/x', '/guarded/admi%6e/x?q=%41']) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 403 Forbidden'], target)
      assert.match(response, /"code":"access_denied"/, target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
    assert.equal((await gw.fetch('/guarded/%6fther/x', { headers: adminAuth })).status, 200)
    assert.equal(upstream.seen.at(-1)!.url, '/guarded/%6fther/x', 'forwarded as sent')
  })

  it('lets no other spelling of a path a rule denies reach the service as that path', async () => {
    const answer = (target: string) => exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`)
    const before = upstream.seen.length
    for (const { target, code } of deniedPathSpellings('/api/controller/')) {
      const response = await answer(target)
      assert.match(response, new RegExp(`"code":"${code}"`), target)
    }
    assert.equal(upstream.seen.length, before, `reached the service: ${upstream.seen.slice(before).map((s) => s.url).join()}`)
    // These reach the service exactly as sent; one that ignores case or the slash needs them denied too (docs/access.md).
    for (const target of otherPathsBesideDenied('/api/controller/')) {
      assert.deepEqual(statusLines(await answer(target)), ['HTTP/1.1 200 OK'], target)
      assert.equal(upstream.seen.at(-1)!.url, target, 'forwarded byte for byte')
    }
  })

  it('takes an absolute-form target as its path, with the target\'s host in place of the Host header (RFC 9112 §3.2.2)', async () => {
    const before = upstream.seen.length
    const proxied = await exchange(gw.url, `GET http://public.example:8443/rec/open//x?q=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`)
    assert.deepEqual(statusLines(proxied), ['HTTP/1.1 200 OK'])
    assert.equal(upstream.seen.at(-1)!.url, '/base/open/x?q=1', 'the path and query, slashes merged')
    assert.equal(upstream.seen.at(-1)!.headers['x-forwarded-host'], 'public.example:8443', 'the host is the target\'s')
    for (const target of ['HTTPS://public.example/rec/open/y', 'http://[::1]:8080/rec/open/y']) {
      assert.deepEqual(statusLines(await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)), ['HTTP/1.1 200 OK'], target)
    }
    assert.equal((await exchange(gw.url, `GET http://public.example HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)).split('\r\n')[0], 'HTTP/1.1 302 Found', 'an empty path is /')
    const api = await exchange(gw.url, `GET http://public.example/api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    assert.deepEqual(statusLines(api), ['HTTP/1.1 200 OK'], 'the gateway\'s own API')
    const guarded = await exchange(gw.url, `GET http://public.example/guarded/admin/x HTTP/1.1\r\nHost: gw\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`)
    assert.match(guarded, /"code":"access_denied"/, 'the rules judge the path')
    assert.equal(upstream.seen.length, before + 3)
  })

  it('refuses in absolute form what it refuses in origin form, and a target host that is not one', async () => {
    const before = upstream.seen.length
    const refusals: [string, string, string][] = [
      ['http://public.example/rec/open/../closed/x', 'gw', 'unsafe_path'],
      ['http://public.example/rec/open/x;y/z', 'gw', 'unsafe_path'],
      ['http://public.example/rec/open/%2e%2e/x', 'gw', 'unsafe_path'],
      ['http://public.example/rec/open/x?q=%ZZ', 'gw', 'malformed_escape'],
      ['ftp://public.example/rec/open/x', 'gw', 'unsafe_path'],
      ['http://user:pw@public.example/rec/open/x', 'gw', 'invalid_host'],
      ['http://ev!l.example/rec/open/x', 'gw', 'invalid_host'],
      ['http://public.example:99999/rec/open/x', 'gw', 'invalid_host'],
      ['http://public.example/rec/open/x', 'bad host', 'invalid_host'],
    ]
    for (const [target, host, code] of refusals) {
      const response = await exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
      assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'], target)
      assert.match(response, new RegExp(`"code":"${code}"`), target)
    }
    const twoHosts = await exchange(gw.url, `GET http://public.example/rec/open/x HTTP/1.1\r\nHost: gw\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    assert.match(twoHosts, /"code":"invalid_host"/)
    assert.equal(upstream.seen.length, before)
  })

  it('sends the response in flight whole and then closes, when a malformed request is pipelined behind it', async () => {
    const valid = `GET /rec/open/slow HTTP/1.1\r\nHost: gw\r\n\r\n`
    const malformed = `GET /rec/open/next HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n\r\n`
    const response = await exchange(gw.url, valid + malformed)
    assert.deepEqual(statusLines(response), ['HTTP/1.1 200 OK'])
    assert.match(response, /\r\nconnection: close\r\n/i)
    assert.ok(response.endsWith('\r\n\r\n1c\r\nupstream saw /base/open/slow\r\n0\r\n\r\n'), JSON.stringify(response))
  })

  it('gives a request answered before its body was read no second answer when the rest of that body is malformed', async () => {
    const { port } = new URL(gw.url)
    // A 401 before the body, on the lean path and on Fastify's (which takes paths with escapes); then a broken chunk.
    for (const path of ['/rec/open/closed/x', '/rec/open/closed/%78']) {
      const socket = connect({ port: Number(port), host: '127.0.0.1' })
      let received = ''
      socket.on('data', (chunk) => { received += chunk })
      socket.on('error', () => {})
      const closed = once(socket, 'close')
      socket.write(`POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`)
      for (let i = 0; i < 200 && !received.endsWith('}'); i++) await sleep(10)
      assert.deepEqual(statusLines(received), ['HTTP/1.1 401 Unauthorized'], path)
      socket.write('not a chunk size\r\n\r\n')
      await Promise.race([closed, sleep(2000)])
      assert.ok(socket.closed, `${path}: the connection is closed`)
      // Read as a client reads: an answer follows the previous one's body, with no line break between them.
      assert.deepEqual(received.match(/HTTP\/1\.1 \d{3} [^\r]*/g), ['HTTP/1.1 401 Unauthorized'], `${path}: one answer only`)
    }
    // The body's end and a malformed next request in one write: that next request is refused as any other.
    const socket = connect({ port: Number(port), host: '127.0.0.1' })
    let received = ''
    socket.on('data', (chunk) => { received += chunk })
    socket.on('error', () => {})
    const closed = once(socket, 'close')
    socket.write('POST /rec/open/closed/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
    for (let i = 0; i < 200 && !received.endsWith('}'); i++) await sleep(10)
    socket.write('0\r\n\r\nNOT HTTP\r\n\r\n')
    await Promise.race([closed, sleep(2000)])
    assert.deepEqual(received.match(/HTTP\/1\.1 \d{3} [^\r]*/g), ['HTTP/1.1 401 Unauthorized', 'HTTP/1.1 400 Bad Request'])
  })

  it('answers an upgrade it declines over HTTP/1.1 and closes, so that what was pipelined behind it is never read as requests, on either path', async () => {
    const { port } = new URL(gw.url)
    // The lean path, and Fastify's (which takes paths with escapes). h2c is what `curl --http2` asks for over http://.
    for (const path of ['/rec/open/x', '/rec/open/%78']) {
      const upgrade = `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`
      const pipelined = await exchange(gw.url, `${upgrade}GET /rec/open/behind HTTP/1.1\r\nHost: gw\r\n\r\n`)
      assert.deepEqual(statusLines(pipelined), ['HTTP/1.1 200 OK'], path)
      assert.match(pipelined, /\r\nconnection: close\r\n/i, path)
      // The read ends inside a request with a body, whose bytes arrive next: they are that body, never a request.
      const before = upstream.seen.length
      const smuggled = `GET /rec/open/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n`
      const socket = connect({ port: Number(port), host: '127.0.0.1' })
      let received = ''
      socket.on('data', (chunk) => { received += chunk })
      socket.on('error', () => {})
      const closed = once(socket, 'close')
      socket.write(`${upgrade}POST /rec/open/carrier HTTP/1.1\r\nHost: gw\r\nContent-Length: ${smuggled.length}\r\n\r\n`)
      await sleep(200)
      socket.write(smuggled)
      await Promise.race([closed, sleep(3000)])
      assert.ok(socket.closed, `${path}: the connection is closed`)
      await sleep(100)
      assert.deepEqual(upstream.seen.slice(before).map((seen) => seen.url), [path.replace('/rec', '/base')], `${path}: ${JSON.stringify(received)}`)
    }
  })

  it('answers an expectation other than 100-continue with a JSON 417, and closes the connection', async () => {
    const before = upstream.seen.length
    const response = await exchange(gw.url, `POST /rec/open/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: bogus\r\n\r\nhelloGET /rec/open/next HTTP/1.1\r\nHost: gw\r\n\r\n`)
    assert.deepEqual(statusLines(response), ['HTTP/1.1 417 Expectation Failed'])
    assert.match(response, /\r\n\r\n\{"code":"expectation_failed","detail":"[^"]+","request_id":"[^"]+"\}$/)
    assert.equal(upstream.seen.length, before)
  })

  it('answers CONNECT, which asks for a tunnel through a forward proxy, with a JSON 400 and closes the connection', async () => {
    const response = await exchange(gw.url, `CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\nSSH-2.0-x\r\n`)
    assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'])
    assert.match(response, /\r\n\r\n\{"code":"bad_request","detail":"[^"]+","request_id":"[^"]+"\}$/)
  })

  it('closes a CONNECT connection itself once answered, though the client keeps its side open', async () => {
    const { port } = new URL(gw.url)
    // Half open: the client's side stays open after the gateway's answer ends, as a tunnel client's may.
    const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true })
    let reset = false
    socket.on('error', () => { reset = true })
    let answer = ''
    socket.on('data', (chunk) => { answer += chunk })
    const ended = once(socket, 'end')
    socket.write('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n')
    await ended
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/)
    // A socket the gateway still holds takes these bytes in silence; a destroyed one resets the connection.
    socket.on('close', () => { reset = true })
    for (let i = 0; i < 30 && !reset; i++) {
      try {
        socket.write('more bytes for the tunnel\r\n', (error) => { if (error) reset = true })
      } catch {
        reset = true
      }
      await sleep(100)
    }
    socket.destroy()
    assert.equal(reset, true, 'a socket Node no longer tracks would hold the gateway open at shutdown')
  })

  it('refuses an HTTP/1.0 request with Transfer-Encoding, whose framing RFC 9112 §6.1 has a server take as faulty, and closes the connection', async () => {
    const before = upstream.seen.length
    // HTTP/1.0 has no chunked coding: a proxy in front that reads this body as empty forwards the chunk data as a
    // request of its own, which the gateway would read as this body, and the "0" chunk's request as the next one.
    const smuggled = 'GET /rec/open/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n'
    const response = await exchange(gw.url, `POST /rec/open/x HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\nGET /rec/open/next HTTP/1.1\r\nHost: gw\r\n\r\n`)
    assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'])
    assert.match(response, /\r\nconnection: close\r\n/i)
    assert.match(response, /\r\n\r\n\{"code":"bad_request","detail":"[^"]+","request_id":"[^"]+"\}$/)
    assert.equal(upstream.seen.length, before, 'nothing reaches the service')
  })

  it('answers a malformed request on an idle connection with 400 and closes it', async () => {
    const response = await exchange(gw.url, `GET /rec/open/x HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n\r\n`)
    assert.deepEqual(statusLines(response), ['HTTP/1.1 400 Bad Request'])
  })
})
