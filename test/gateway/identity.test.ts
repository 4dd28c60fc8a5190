import assert from 'node:assert/strict'
import { decodeJwt } from 'jose'
import { after, before, describe, it } from 'node:test'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

describe('the identity token a service receives', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({
      config: {
        services: [
          { name: 'alpha', prefix: '/alpha/', upstream: upstream.url },
          { name: 'beta', prefix: '/beta/', upstream: upstream.url },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  async function identityFor(path: string): Promise<string> {
    const response = await gw.fetch(path, { headers: adminAuth })
    assert.equal(response.status, 200)
    await response.arrayBuffer()
    return upstream.seen.at(-1)!.headers['x-gatehouse-identity'] as string
  }

  it('is reused for the same caller and service, and never handed to another service', async () => {
    const alpha = await identityFor('/alpha/one')
    const beta = await identityFor('/beta/one')
    assert.equal(decodeJwt(alpha).aud, 'alpha')
    assert.equal(decodeJwt(beta).aud, 'beta')
    assert.equal(await identityFor('/alpha/two'), alpha)
    assert.equal(await identityFor('/beta/two'), beta)
  })
})
