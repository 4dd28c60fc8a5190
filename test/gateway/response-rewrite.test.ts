import assert from 'node:assert/strict'
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** An upstream that answers 302 with the Location, Content-Location and Set-Cookie headers the query asks for. */
async function redirectingUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://upstream.invalid').searchParams
    const headers: Record<string, string | string[]> = {}
    // A name asked for twice is sent twice, as two header lines.
    for (const name of ['location', 'content-location', 'refresh']) {
      const values = query.getAll(name)
      if (values.length) headers[name] = values.length === 1 ? values[0]! : values
    }
    // A Refresh too long to ask for in a query: a URL with this many spaces inside it.
    if (query.has('spaced-refresh')) headers.refresh = `0; url=/base/a${' '.repeat(Number(query.get('spaced-refresh')))}b`
    if (query.has('cookie')) headers['set-cookie'] = query.getAll('cookie')
    res.writeHead(query.has('location') ? 302 : 200, headers).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

/** The answer's headers to a request with this Host header, which fetch() cannot forge. */
function headersWithHost(url: string, host: string): Promise<IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { host } }, (response) => {
      response.resume()
      resolve(response.headers)
    }).on('error', reject).end()
  })
}

/** The answer's header lines as sent, duplicates kept, names in lower case. */
function headerLines(url: string): Promise<[string, string][]> {
  return new Promise((resolve, reject) => {
    request(url, (response) => {
      response.resume()
      const lines: [string, string][] = []
      for (let i = 0; i < response.rawHeaders.length; i += 2) lines.push([response.rawHeaders[i]!.toLowerCase(), response.rawHeaders[i + 1]!])
      resolve(lines)
    }).on('error', reject).end()
  })
}

/** A query asking the upstream for these headers. */
function asking(query: Record<string, string>): string {
  return `?${new URLSearchParams(query)}`
}

// `/app/x` takes the lean path; `/app/%78`, with a percent escape, the general one (docs/proxy.md).
const BOTH_PATHS = ['/app/x', '/app/%78']

describe('upstream addresses in responses', () => {
  let gw: TestGateway
  /** The same service behind a gateway with `public_url` set, with a path and without one. */
  let published: TestGateway
  let publishedAtRoot: TestGateway
  let upstream: Awaited<ReturnType<typeof redirectingUpstream>>

  before(async () => {
    upstream = await redirectingUpstream()
    const app = { name: 'app', prefix: '/app/', upstream: `${upstream.url}/base`, strip_prefix: true, public_paths: ['/app/*'] }
    const plain = { name: 'plain', prefix: '/plain/', upstream: upstream.url, public_paths: ['/plain/*'] }
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_origins: ['http://gateway.example', 'http://*.tenants.example'] },
        services: [app, plain, { name: 'based', prefix: '/based/', upstream: `${upstream.url}/base`, public_paths: ['/based/*'] }],
      },
    })
    const publishedAt = (publicUrl: string) => startGateway({ config: { server: { host: '127.0.0.1', port: 0, public_url: publicUrl }, services: [app, plain] } })
    published = await publishedAt('https://gateway.example/edge/')
    publishedAtRoot = await publishedAt('https://gateway.example')
  })
  after(async () => {
    await gw.close()
    await published.close()
    await publishedAtRoot.close()
    upstream.server.close()
  })

  const answer = (path: string, query: Record<string, string | string[]>) => {
    const search = new URLSearchParams()
    for (const [name, value] of Object.entries(query)) for (const v of [value].flat()) search.append(name, v)
    return gw.fetch(`${path}?${search}`)
  }

  it('points a redirect to the upstream\'s own address at the public URL and prefix', async () => {
    const response = await answer('/app/x', { location: `${upstream.url}/base/login/?next=%2Fbase%2Fx#top` })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), `${gw.url}/app/login/?next=%2Fbase%2Fx#top`)
  })

  it('rewrites the URL of a Refresh as of a Location, as nginx\'s proxy_redirect does', async () => {
    const refresh = async (value: string) => (await answer('/app/x', { refresh: value })).headers.get('refresh')
    assert.equal(await refresh(`0; url=${upstream.url}/base/login/?next=x`), `0; url=${gw.url}/app/login/?next=x`)
    assert.equal(await refresh('5;URL="/base/done"'), '5;URL="/app/done"')
    assert.equal(await refresh('3, url=\'/base/\''), '3, url=\'/app/\'')
    assert.equal(await refresh('0; url=/elsewhere/'), '0; url=/elsewhere/')
    assert.equal(await refresh('30'), '30')
  })

  it('reads a Refresh in time linear in its length, so that a service\'s long one costs no seconds of the gateway\'s time', async () => {
    // Matched by backtracking, 16,000 spaces inside the URL took about a second of CPU each (up to three), every other
    // request waiting meanwhile.
    const before = process.cpuUsage()
    for (let i = 0; i < 3; i++) {
      const response = await answer('/app/x', { 'spaced-refresh': '16000' })
      assert.equal(response.headers.get('refresh'), `0; url=/app/a${' '.repeat(16000)}b`)
    }
    const used = process.cpuUsage(before)
    const cpuMs = (used.user + used.system) / 1000
    assert.ok(cpuMs < 500, `${Math.round(cpuMs)} ms of CPU for three answers`)
  })

  it('passes the first of a redirect header a service sends twice, rewritten, and drops the others, as nginx does', async () => {
    const search = new URLSearchParams()
    for (const name of ['location', 'content-location']) {
      search.append(name, `${upstream.url}/base/first`)
      search.append(name, `${upstream.url}/base/second`)
    }
    search.append('refresh', `0; url=${upstream.url}/base/first`)
    search.append('refresh', `0; url=${upstream.url}/base/second`)
    for (const path of BOTH_PATHS) {
      const lines = await headerLines(`${gw.url}${path}?${search}`)
      const values = (name: string) => lines.filter(([line]) => line === name).map(([, value]) => value)
      assert.deepEqual(values('location'), [`${gw.url}/app/first`], path)
      assert.deepEqual(values('content-location'), [`${gw.url}/app/first`], path)
      assert.deepEqual(values('refresh'), [`0; url=${gw.url}/app/first`], path)
      assert.ok(!lines.some(([, value]) => value.includes(upstream.url)), `${path}: ${JSON.stringify(lines)}`)
    }
  })

  it('maps a path-absolute redirect under the upstream\'s base path to the prefix, and leaves others alone', async () => {
    assert.equal((await answer('/app/x', { location: '/base/done?ok=1' })).headers.get('location'), '/app/done?ok=1')
    assert.equal((await answer('/app/x', { location: '/base' })).headers.get('location'), '/app/')
    assert.equal((await answer('/app/x', { location: '/elsewhere/' })).headers.get('location'), '/elsewhere/')
    assert.equal((await answer('/app/x', { location: '/basement/' })).headers.get('location'), '/basement/')
    assert.equal((await answer('/app/x', { location: 'relative/path' })).headers.get('location'), 'relative/path')
    assert.equal((await answer('/app/x', { location: '//other.example/base/' })).headers.get('location'), '//other.example/base/')
  })

  it('leaves redirects to other sites alone', async () => {
    const other = 'https://sso.example/base/authorize?redirect_uri=x'
    assert.equal((await answer('/app/x', { location: other })).headers.get('location'), other)
    const lookalike = `${upstream.url}0/base/x`
    assert.equal((await answer('/app/x', { location: lookalike })).headers.get('location'), lookalike)
  })

  it('rewrites Content-Location the same way', async () => {
    const response = await answer('/app/items/', { 'content-location': `${upstream.url}/base/items/1` })
    assert.equal(response.headers.get('content-location'), `${gw.url}/app/items/1`)
  })

  it('moves the Path of upstream cookies under the prefix', async () => {
    const response = await answer('/app/x', { cookie: ['sid=1; Path=/base/; HttpOnly', 'a=2; path=/base', 'b=3', 'c=4; Path=/elsewhere; Secure'] })
    assert.deepEqual(response.headers.getSetCookie(), ['sid=1; Path=/app/; HttpOnly', 'a=2; path=/app/', 'b=3', 'c=4; Path=/elsewhere; Secure'])
  })

  it('moves every Path of a cookie, since a browser takes the last one', async () => {
    const response = await answer('/app/x', { cookie: 'sid=1; Path=/base/a; Secure; path=/base/b' })
    assert.deepEqual(response.headers.getSetCookie(), ['sid=1; Path=/app/a; Secure; path=/app/b'])
  })

  it('reads a Path with spaces around its "=" as a browser does (RFC 6265 §5.2 trims them), and moves it too', async () => {
    const response = await answer('/app/x', { cookie: ['sid=1; Path=/base/a; Path =/base/b', 'a=2; path\t= /base/c'] })
    assert.deepEqual(response.headers.getSetCookie(), ['sid=1; Path=/app/a; Path =/app/b', 'a=2; path\t=/app/c'])
  })

  it('without a base path or strip_prefix, only the upstream\'s origin is replaced', async () => {
    assert.equal((await answer('/plain/x', { location: `${upstream.url}/plain/y?z=1` })).headers.get('location'), `${gw.url}/plain/y?z=1`)
    assert.equal((await answer('/plain/x', { location: `${upstream.url}` })).headers.get('location'), `${gw.url}/`)
    assert.equal((await answer('/plain/x', { location: '/plain/y' })).headers.get('location'), '/plain/y')
    assert.deepEqual((await answer('/plain/x', { cookie: 'sid=1; Path=/plain/' })).headers.getSetCookie(), ['sid=1; Path=/plain/'])
  })

  it('uses the host the client asked for when it is the gateway\'s own: its address or a trusted origin', async () => {
    const query = asking({ location: `${upstream.url}/base/next` })
    for (const path of BOTH_PATHS) {
      assert.equal((await headersWithHost(gw.url + path + query, new URL(gw.url).host)).location, `${gw.url}/app/next`)
      assert.equal((await headersWithHost(gw.url + path + query, 'Gateway.Example')).location, 'http://gateway.example/app/next')
      assert.equal((await headersWithHost(gw.url + path + query, 'gateway.example:80')).location, 'http://gateway.example/app/next')
    }
  })

  it('answers a Host that is not the gateway\'s own with a path-absolute reference, so no cache stores a forged host', async () => {
    const query = asking({ location: `${upstream.url}/base/next?a=1`, 'content-location': `${upstream.url}/base/items/1`, refresh: `0; url=${upstream.url}/base/login/` })
    for (const path of BOTH_PATHS) {
      // A wildcard trusted origin lets pages under the domain pass the CSRF check; it names none of them the gateway's.
      for (const host of ['evil.example', 'localhost', `gateway.example:${new URL(gw.url).port}`, 'any.tenants.example', 'tenants.example']) {
        const headers = await headersWithHost(gw.url + path + query, host)
        assert.equal(headers.location, '/app/next?a=1', `${path} with Host ${host}`)
        assert.equal(headers['content-location'], '/app/items/1')
        assert.equal(headers.refresh, '0; url=/app/login/')
      }
    }
  })

  it('never turns a path into a reference to another host', async () => {
    assert.equal((await answer('/based/x', { location: '/base//evil.example/x' })).headers.get('location'), '/.//evil.example/x')
    assert.equal((await answer('/based/x', { refresh: '0; url=/base//evil.example/x' })).headers.get('refresh'), '0; url=/.//evil.example/x')
    const forged = await headersWithHost(`${gw.url}/based/x${asking({ location: `${upstream.url}/base//evil.example/x` })}`, 'evil.example')
    assert.equal(forged.location, '/.//evil.example/x')
    assert.equal((await answer('/based/x', { location: `${upstream.url}/base//evil.example/x` })).headers.get('location'), `${gw.url}//evil.example/x`)
  })

  it('never turns a path into a reference to another host by a backslash or a tab, which browsers read as a slash or drop', async () => {
    for (const spelling of ['/base/\\evil.example/x', '/base/\t/evil.example/x', '/base/\t\\evil.example/x']) {
      const location = (await answer('/based/x', { location: spelling })).headers.get('location')!
      assert.equal(new URL(location, `${gw.url}/based/x`).host, new URL(gw.url).host, JSON.stringify(spelling))
      const refresh = (await answer('/based/x', { refresh: `0; url=${spelling}` })).headers.get('refresh')!
      assert.equal(new URL(refresh.slice('0; url='.length), `${gw.url}/based/x`).host, new URL(gw.url).host, JSON.stringify(spelling))
      const forged = await headersWithHost(`${gw.url}/based/x${asking({ location: upstream.url + spelling })}`, 'evil.example')
      assert.equal(new URL(forged.location!, 'http://evil.example/based/x').host, 'evil.example', JSON.stringify(spelling))
    }
  })

  it('with a public URL, points the upstream\'s own address at it whatever Host the client sent', async () => {
    const query = asking({ location: `${upstream.url}/base/next`, 'content-location': `${upstream.url}/base/items/1`, refresh: `0; url=${upstream.url}/base/login/` })
    for (const path of BOTH_PATHS) {
      for (const host of ['evil.example', new URL(published.url).host]) {
        const headers = await headersWithHost(published.url + path + query, host)
        assert.equal(headers.location, 'https://gateway.example/edge/app/next', `${path} with Host ${host}`)
        assert.equal(headers['content-location'], 'https://gateway.example/edge/app/items/1')
        assert.equal(headers.refresh, '0; url=https://gateway.example/edge/app/login/')
      }
    }
  })

  it('with a public URL that has a path, puts that path before the paths it maps, as the client sees them', async () => {
    const query = asking({ location: '/base/done?ok=1', 'content-location': '/base/items/1', refresh: '0; url=/base/login/', cookie: 'sid=1; Path=/base/; HttpOnly' })
    for (const path of BOTH_PATHS) {
      const headers = await headersWithHost(published.url + path + query, 'evil.example')
      assert.equal(headers.location, '/edge/app/done?ok=1', path)
      assert.equal(headers['content-location'], '/edge/app/items/1')
      assert.equal(headers.refresh, '0; url=/edge/app/login/')
      assert.deepEqual(headers['set-cookie'], ['sid=1; Path=/edge/app/; HttpOnly'])
    }
    // Without a base path or strip_prefix the service's paths are the public paths, under the public URL's path.
    const plain = await headersWithHost(`${published.url}/plain/x${asking({ location: '/plain/y', cookie: 'sid=1; Path=/plain/' })}`, 'evil.example')
    assert.equal(plain.location, '/edge/plain/y')
    assert.deepEqual(plain['set-cookie'], ['sid=1; Path=/edge/plain/'])
    const network = await headersWithHost(`${published.url}/app/x${asking({ location: '/base//evil.example/x' })}`, 'evil.example')
    assert.equal(network.location, '/edge/app//evil.example/x')
  })

  it('leaves a cookie Path that is empty or not a path alone, which a browser reads as the public directory it asked for', async () => {
    // Mapped, `Path=` became `/edge/` (the cookie sent to every service under the public URL) and `Path=dir` `/edgedir`.
    const query = asking({ cookie: 'sid=1; Path=; HttpOnly' })
    for (const path of ['/plain/dir/x', '/plain/dir/%78']) {
      const headers = await headersWithHost(`${published.url}${path}${query}&${new URLSearchParams({ cookie: 'a=2; Path=dir' })}`, 'evil.example')
      assert.deepEqual(headers['set-cookie'], ['sid=1; Path=; HttpOnly', 'a=2; Path=dir'], path)
    }
  })

  it('with a public URL without a path, maps paths as without a public URL and writes its origin', async () => {
    for (const path of BOTH_PATHS) {
      const headers = await headersWithHost(publishedAtRoot.url + path + asking({ location: '/base/done', cookie: 'sid=1; Path=/base/' }), 'evil.example')
      assert.equal(headers.location, '/app/done', path)
      assert.deepEqual(headers['set-cookie'], ['sid=1; Path=/app/'])
      const absolute = await headersWithHost(publishedAtRoot.url + path + asking({ location: `${upstream.url}/base/next` }), 'evil.example')
      assert.equal(absolute.location, 'https://gateway.example/app/next')
    }
    const plain = await headersWithHost(`${publishedAtRoot.url}/plain/x${asking({ location: '/plain/y', cookie: 'sid=1; Path=/plain/' })}`, 'evil.example')
    assert.equal(plain.location, '/plain/y')
    assert.deepEqual(plain['set-cookie'], ['sid=1; Path=/plain/'])
  })
})
