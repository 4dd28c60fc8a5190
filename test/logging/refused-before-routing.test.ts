import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { answerOf, eventually, exchange } from '../helpers/raw-client.ts'

// Requests refused before any route's own checks: a Host that is no host (refused by the first hook), and a path
// the router cannot take (an escape that is not UTF-8, a part longer than any id). Each must be counted and logged
// once with its code, as every other refusal is: an operator watching the log or the metrics would otherwise not
// see a client probing with them at all.

describe('requests refused before routing', () => {
  let gw: TestGateway
  const logLines: Record<string, any>[] = []

  before(async () => {
    gw = await startGateway({ logLines })
  })
  after(() => gw.close())

  /** Every request counted so far, whatever its labels. */
  const requestsCounted = async (): Promise<number> => {
    const samples = parseScrape(await (await gw.fetch('/metrics')).text())
    return (samples.get('gatehouse_requests_total') ?? []).reduce((sum, sample) => sum + sample.value, 0)
  }

  /** Asserts that `head` is refused with `status` and `code`, logged once with that code, and counted once. */
  const refusedLoggedAndCounted = async (head: string, expected: { status: number; code: string; path: string }) => {
    const before = await requestsCounted()
    const answer = answerOf(await exchange(gw.url, head))
    assert.deepEqual({ status: answer.status, code: answer.code }, { status: expected.status, code: expected.code })
    assert.ok(answer.id, 'the answer carries X-Request-Id')
    const lines = await eventually(() => logLines.filter((line) => line.msg === 'request' && line.reqId === answer.id), (found) => found.length > 0, 2000)
    assert.equal(lines.length, 1, `one request line for ${head.split('\r\n')[0]}`)
    assert.deepEqual({ path: lines[0]!.path, status: lines[0]!.status, code: lines[0]!.code }, expected)
    // The scrape that reads the count was counted once its own answer ended, before this one began.
    assert.equal(await requestsCounted(), before + 2)
  }

  it('logs and counts a request whose Host is not a host, with invalid_host, at every kind of place', async () => {
    for (const [method, path] of [['GET', '/api/gateway/v1/'], ['GET', '/api/controller/v2/'], ['GET', '/healthz'], ['POST', '/realms/platform/protocol/openid-connect/token']] as const) {
      await refusedLoggedAndCounted(`${method} ${path} HTTP/1.1\r\nHost: not a host\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, { status: 400, code: 'invalid_host', path })
    }
  })

  it('logs and counts a path whose escapes are not UTF-8, with malformed_escape', async () => {
    for (const path of ['/api/gateway/v1/%c0%af/', '/api/gateway/v1/users/%ff/']) {
      await refusedLoggedAndCounted(`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`, { status: 400, code: 'malformed_escape', path })
    }
  })

  it('logs and counts a path with a part longer than any id or name, with not_found', async () => {
    const path = `/api/gateway/v1/users/${'7'.repeat(200)}/`
    await refusedLoggedAndCounted(`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`, { status: 404, code: 'not_found', path })
  })
})
