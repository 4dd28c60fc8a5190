import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, json, runCli, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { decodeJwtPart, passwordLogin, REALM, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password-long' }

/**
 * `keys rotate --realm` for a realm key that may have leaked: run from the command line while a gateway serves, it
 * replaces the key at once, and every earlier key leaves the JWKS; tokens they signed are refused everywhere, also
 * those the gateway had verified before and answers from memory. A refresh token gets tokens of the new key.
 */
const storages = [
  { name: 'SQLite', open: async () => ({ options: {}, args: (gw: TestGateway) => ['--data-dir', gw.dataDir], drop: async () => {} }) },
  {
    name: 'PostgreSQL',
    async open() {
      const database = await createTestDatabase()
      return { options: { databaseUrl: database.url }, args: () => ['--database', database.url], drop: database.drop }
    },
  },
]

for (const storage of storages) describe(`keys rotate --realm, on ${storage.name}`, () => {
  let gw: TestGateway
  let cliArgs: string[]
  let drop: () => Promise<void>
  before(async () => {
    const opened = await storage.open()
    drop = opened.drop
    gw = await startGateway(opened.options)
    cliArgs = ['--demo', ...opened.args(gw)]
    await gw.app.accounts.create(ALICE)
  })
  after(async () => {
    await gw.close()
    await drop()
  })

  const atService = async (token: string) => (await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status
  const atUserinfo = async (token: string) => (await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${token}` } })).status
  const publishedKids = async () => (await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))).keys.map((k: { kid: string }) => k.kid)

  it('drops the earlier keys at once on the running gateway, whose remembered verifications go too', async () => {
    const login = await passwordLogin(gw, ALICE.username, ALICE.password, { scope: 'openid' })
    const oldKid = decodeJwtPart(login.access_token, 0).kid
    assert.equal(await atService(login.access_token), 200, 'verified, and from then on answered from memory')
    assert.equal(await atUserinfo(login.access_token), 200)

    const rotated = await runCli(['keys', 'rotate', '--realm', REALM, ...cliArgs])
    assert.equal(rotated.code, 0, rotated.stderr)
    const newKid = rotated.stdout.trim()
    assert.notEqual(newKid, oldKid)
    assert.match(rotated.stderr, new RegExp(`dropped ${oldKid}`))

    // The gateway's own requests read the news first; on SQLite the realm's endpoints have it within a second.
    assert.equal(await atService(login.access_token), 401, 'the token of the dropped key is refused, although it was verified before')
    assert.deepEqual(await publishedKids(), [newKid])
    assert.equal(await atUserinfo(login.access_token), 401)

    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    assert.equal(refreshed.status, 200)
    assert.equal(decodeJwtPart(refreshed.body.access_token, 0).kid, newKid)
    assert.equal(await atService(refreshed.body.access_token), 200)
    // Replaced again at once (the same step as the command's): the verification just remembered goes with its key.
    const again = await gw.app.oidc.get(REALM)!.replaceSigningKey()
    assert.deepEqual(again.retired, [newKid])
    assert.equal(await atService(refreshed.body.access_token), 401, 'refused on the next request, not once the memory expires')

    await gw.app.audit.flush()
    const entries = await gw.app.store.audit.list({ filter: { all: [{ field: 'content_type', lookup: 'exact', value: 'realm_key', negate: false }], any: [], search: [], order: [] }, offset: 0, limit: 10 })
    assert.deepEqual(entries.entries.map((entry) => [entry.operation, entry.objectId, entry.authMethod]), [['create', newKid, 'cli']])
  })

  it('refuses to run without a realm it knows, or with both kinds of key or neither', async () => {
    const unknown = await runCli(['keys', 'rotate', '--realm', 'nowhere', ...cliArgs])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no realm "nowhere"/)
    for (const which of [['--realm', REALM, '--identity'], []]) {
      const refused = await runCli(['keys', 'rotate', ...which, ...cliArgs])
      assert.equal(refused.code, 2)
      assert.match(refused.stderr, /give --identity .* or --realm NAME/)
    }
  })
})

it('keys rotate --realm of a realm that has signed nothing yet says it had no earlier key, not that the tokens of none are refused', async () => {
  const gw = await startGateway()
  try {
    const first = await runCli(['keys', 'rotate', '--realm', REALM, '--demo', '--data-dir', gw.dataDir])
    assert.equal(first.code, 0, first.stderr)
    assert.equal(first.stderr, `realm ${REALM} signs with key ${first.stdout.trim()} from now; it had no earlier key, so none was dropped\n`)
  } finally {
    await gw.close()
  }
})
