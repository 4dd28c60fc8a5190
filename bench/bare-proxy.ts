import { createServer } from 'node:http'
import { Pool } from 'undici'

/**
 * The floor for any Node proxy: node:http in front, an undici pool behind, one constant header compared, no
 * framework. BARE_PROXY_UPSTREAM is the upstream's origin; prints its own URL once listening.
 */
const upstream = new Pool(process.env.BARE_PROXY_UPSTREAM!, { connections: 128 })
const expected = 'Bearer bench'

const server = createServer((req, res) => {
  if (req.headers.authorization !== expected) {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"code":"not_authenticated"}')
    return
  }
  upstream.request({ method: req.method as 'GET', path: req.url!, headers: { host: req.headers.host, 'x-user': 'bench' }, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : req })
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, headers as Record<string, string>)
      body.pipe(res)
    })
    .catch(() => res.writeHead(502).end())
})
server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as { port: number }
  process.stdout.write(`http://127.0.0.1:${address.port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
