import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { applicationGrantStatus } from '../helpers/oidc.ts'

/**
 * `gatehouse applications rotate-secret`: a confidential application's new secret printed once, taken by the running
 * gateway at once, the old one ending at once or after `--grace-seconds`, recorded in the activity stream as the
 * API's rotation is.
 */
describe('gatehouse applications rotate-secret', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  let made = 0
  const application = async (clientType = 'confidential') => {
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST',
      headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `cli bot ${++made}`, client_type: clientType, authorization_grant_type: 'password' }),
    })
    assert.equal(created.status, 201)
    return json(created)
  }
  const rotate = (...args: string[]) => runCli(['applications', 'rotate-secret', ...args, '--data-dir', gw.dataDir])
  const grantStatus = (clientId: string, secret: string) => applicationGrantStatus(gw, clientId, secret)

  it('prints only the new secret, which the running gateway takes, and ends the old one at once', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const rotated = await rotate('--id', String(id))
    assert.equal(rotated.code, 0, rotated.stderr)
    const secret = rotated.stdout.trim()
    assert.match(secret, /^[A-Za-z0-9_-]{64}$/)
    assert.match(rotated.stderr, new RegExp(`rotated the secret of application ${id} \\(cli bot \\d+\\); the previous one no longer works`))
    assert.equal(await grantStatus(clientId, secret), 201)
    assert.equal(await grantStatus(clientId, old), 401)
  })

  it('keeps the old secret working for --grace-seconds, and records the rotation as the API does', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const before = Date.now()
    const rotated = await rotate('--id', String(id), '--grace-seconds', '600')
    assert.equal(rotated.code, 0, rotated.stderr)
    const until = Date.parse(/works until (\S+)$/m.exec(rotated.stderr)?.[1] ?? '')
    assert.ok(until >= before + 599_000 && until <= Date.now() + 601_000, rotated.stderr)
    assert.equal(await grantStatus(clientId, old), 201, 'within the grace period')
    assert.equal(await grantStatus(clientId, rotated.stdout.trim()), 201)

    const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?content_type=application&object_id=${id}&order_by=-id`, { headers: adminAuth }))
    const entry = stream.results[0]
    assert.equal(entry.operation, 'update')
    assert.deepEqual(entry.changes.changed_fields.client_secret, ['$encrypted$', '$encrypted$'])
    assert.equal(entry.changes.added_fields.previous_secret_expires, new Date(until).toISOString())
    assert.ok(!JSON.stringify(stream).includes(rotated.stdout.trim()), 'the secret is never recorded')
  })

  it('keeps the application\'s secret when the new one cannot be written', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const lost = await runCli(['applications', 'rotate-secret', '--id', String(id), '--data-dir', gw.dataDir], { stdout: 'closed' })
    assert.equal(lost.code, 1, lost.stderr)
    assert.match(lost.stderr, new RegExp(`^gatehouse: the new secret could not be written \\(.*EPIPE.*\\); application ${id} keeps its secret`))
    assert.equal(await grantStatus(clientId, old), 201)
  })

  it('refuses a public application, an unknown id and a grace past 30 days, changing nothing', async () => {
    const { id } = await application('public')
    const { id: confidential, client_id: clientId, client_secret: old } = await application()
    for (const [args, message] of [
      [['--id', String(id)], `application ${id} is public: it has no secret to rotate`],
      [['--id', '999999'], 'no such application: 999999'],
      [['--id', '99999999999'], 'no such application: 99999999999'],
      [['--id', String(confidential), '--grace-seconds', '2592001'], '--grace-seconds must be a whole number from 0 to 2592000, got "2592001"'],
      [['--id', String(confidential), '--grace-seconds', '-1'], '--grace-seconds must be a whole number from 0 to 2592000, got "-1"'],
    ] as const) {
      const refused = await rotate(...args)
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stdout, '')
      assert.equal(refused.stderr.trim(), `gatehouse: ${message}`)
    }
    assert.equal(await grantStatus(clientId, old), 201)
  })
})
