import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

const BUNDLE = '/api/gateway/v1/docs/static/swagger-ui-bundle.js'

/**
 * swagger-ui's files, which anyone may ask for: each request read the file and copied it twice (the 1.7 MB script),
 * and decoded it as text, so a few hundred clients held gigabytes and stalled the event loop for seconds. They are
 * answered from memory, one copy for everyone.
 */
describe('the API reference\'s own files', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(async () => {
    await gw.close()
  })

  it('are the same file whatever the query, revalidated by their ETag, and whole when a range is asked for', async () => {
    const first = await gw.fetch(BUNDLE, { headers: { 'accept-encoding': 'identity' } })
    assert.equal(first.status, 200)
    assert.match(first.headers.get('content-type') ?? '', /javascript/)
    const body = Buffer.from(await first.arrayBuffer())
    assert.ok(body.length > 1_000_000, `${body.length} bytes`)
    const etag = first.headers.get('etag')
    assert.ok(etag)
    const again = await gw.fetch(`${BUNDLE}?v=2`, { headers: { 'accept-encoding': 'identity' } })
    assert.equal(again.status, 200)
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), body)
    const revalidated = await gw.fetch(BUNDLE, { headers: { 'if-none-match': etag } })
    assert.equal(revalidated.status, 304)
    assert.equal(revalidated.headers.get('etag'), etag)
    assert.equal(await revalidated.text(), '')
    const changed = await gw.fetch(BUNDLE, { headers: { 'if-none-match': '"another"', 'accept-encoding': 'identity' } })
    assert.equal(changed.status, 200)
    const ranged = await gw.fetch(BUNDLE, { headers: { range: 'bytes=0-9', 'accept-encoding': 'identity' } })
    assert.equal(ranged.status, 200)
    assert.equal((await ranged.arrayBuffer()).byteLength, body.length)
    assert.equal((await gw.fetch('/api/gateway/v1/docs/static/no-such-file.js')).status, 404)
  })

  it('cost about what sending them costs: not read, copied and decoded again for every request', async () => {
    const { host, port } = new URL(gw.url)
    // 50 clients at once, each reading the 1.7 MB script to its end; the CPU time is this process's, both sides.
    const round = async (): Promise<number> => {
      const started = process.cpuUsage()
      await Promise.all(Array.from({ length: 50 }, (_, i) => new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(`GET ${BUNDLE}?client=${i} HTTP/1.1\r\nHost: ${host}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n`))
        socket.on('data', () => {}).on('close', () => resolve()).on('error', reject)
      })))
      const used = process.cpuUsage(started)
      return (used.user + used.system) / 1000
    }
    await round()
    const ms = Math.min(await round(), await round())
    // From memory about 150 ms here, most of it the sockets' copying; read and copied for each request, about 630.
    assert.ok(ms < 400, `50 answers took ${Math.round(ms)} ms of CPU`)
  })
})
