import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** An upstream that answers 302 with the Location, Content-Location and Set-Cookie headers the query asks for. */
async function redirectingUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://upstream.invalid').searchParams
    const headers: Record<string, string | string[]> = {}
    if (query.has('location')) headers.location = query.get('location')!
    if (query.has('content-location')) headers['content-location'] = query.get('content-location')!
    if (query.has('refresh')) headers.refresh = query.get('refresh')!
    if (query.has('cookie')) headers['set-cookie'] = query.getAll('cookie')
    res.writeHead(query.has('location') ? 302 : 200, headers).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

describe('upstream addresses in responses', () => {
  let gw: TestGateway
  let upstream: Awaited<ReturnType<typeof redirectingUpstream>>

  before(async () => {
    upstream = await redirectingUpstream()
    gw = await startGateway({
      config: {
        services: [
          { name: 'app', prefix: '/app/', upstream: `${upstream.url}/base`, strip_prefix: true, public_paths: ['/app/*'] },
          { name: 'plain', prefix: '/plain/', upstream: upstream.url, public_paths: ['/plain/*'] },
          { name: 'based', prefix: '/based/', upstream: `${upstream.url}/base`, public_paths: ['/based/*'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
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

  it('maps a path-absolute redirect under the upstream\'s base path to the prefix, and leaves others alone', async () => {
    assert.equal((await answer('/app/x', { location: '/base/done?ok=1' })).headers.get('location'), '/app/done?ok=1')
    assert.equal((await answer('/app/x', { location: '/base' })).headers.get('location'), '/app/')
    assert.equal((await answer('/app/x', { location: '/elsewhere/' })).headers.get('location'), '/elsewhere/')
    assert.equal((await answer('/app/x', { location: '/basement/' })).headers.get('location'), '/basement/')
    assert.equal((await answer('/app/x', { location: 'relative/path' })).headers.get('location'), 'relative/path')
    assert.equal((await answer('/app/x', { location: '//other.example/base/' })).headers.get('location'), '//other.example/base/')
  })

  it('never turns a path into a reference to another host', async () => {
    assert.equal((await answer('/based/x', { location: '/base//evil.example/x' })).headers.get('location'), '/.//evil.example/x')
    assert.equal((await answer('/based/x', { refresh: '0; url=/base//evil.example/x' })).headers.get('refresh'), '0; url=/.//evil.example/x')
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

  it('without a base path or strip_prefix, only the upstream\'s origin is replaced', async () => {
    assert.equal((await answer('/plain/x', { location: `${upstream.url}/plain/y?z=1` })).headers.get('location'), `${gw.url}/plain/y?z=1`)
    assert.equal((await answer('/plain/x', { location: `${upstream.url}` })).headers.get('location'), `${gw.url}/`)
    assert.equal((await answer('/plain/x', { location: '/plain/y' })).headers.get('location'), '/plain/y')
    assert.deepEqual((await answer('/plain/x', { cookie: 'sid=1; Path=/plain/' })).headers.getSetCookie(), ['sid=1; Path=/plain/'])
  })

  it('uses the host the client asked for', async () => {
    const response = await answer('/app/x', { location: `${upstream.url}/base/next` })
    const viaLocalhost = await fetch(`${gw.url.replace('127.0.0.1', 'localhost')}/app/x?location=${encodeURIComponent(`${upstream.url}/base/next`)}`, { redirect: 'manual' })
    assert.equal(response.headers.get('location'), `${gw.url}/app/next`)
    assert.equal(viaLocalhost.headers.get('location'), `${gw.url.replace('127.0.0.1', 'localhost')}/app/next`)
  })
})
