import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { allAtOnce, browse, CookieJar, formOf, realmUrl, realmWith, submitForm } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

const WRONG_GUESSES_PER_SESSION = 10
const WRONG_GUESSES_PER_ADDRESS = 50

/** A gateway of its own for each group below: the bounds count per process, and each group spends them. */
const deviceGateway = (options: { databaseUrl?: string; trustedProxies?: string[] } = {}) => startGateway({
  ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
  config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]), ...(options.trustedProxies ? { server: { trusted_proxies: options.trustedProxies } } : {}) },
})

/** Starts a device login of the client `tv`; its user code and the link the device shows. */
async function startDeviceLogin(gw: TestGateway): Promise<{ user_code: string; verification_uri_complete: string }> {
  const started = await gw.fetch('/realms/platform/protocol/openid-connect/auth/device', { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
  return await started.json() as { user_code: string; verification_uri_complete: string }
}

/** RFC 8628 §5.1: the device page bounds how many wrong user codes one browser may try. */
describe('user codes guessed at the device page', () => {
  let gw: TestGateway
  before(async () => (gw = await deviceGateway()))
  after(() => gw.close())

  it('are answered 429 with Retry-After once one browser got too many wrong, and the right code waits too', async () => {
    const { user_code: userCode } = await startDeviceLogin(gw)
    const jar = new CookieJar()
    let page = await browse(gw, jar, realmUrl(gw, '/device'))
    for (let i = 0; i < WRONG_GUESSES_PER_SESSION; i++) {
      page = await submitForm(gw, jar, page, { user_code: 'BCDF-GHJK' })
      assert.equal(page.response.status, 200)
    }
    const refused = await submitForm(gw, jar, page, { user_code: userCode })
    assert.equal(refused.response.status, 429)
    assert.ok(Number(refused.response.headers.get('retry-after')) > 0)
    assert.match(await refused.response.text(), /Too many/)
    // Another browser is not locked out by this one's guesses.
    const other = new CookieJar()
    const confirm = await submitForm(gw, other, await browse(gw, other, realmUrl(gw, '/device')), { user_code: userCode })
    assert.equal(confirm.response.status, 200)
    assert.match(await confirm.response.text(), /Confirm device login/)
  })
})

describe('a link to the device page with the code in it', () => {
  let gw: TestGateway
  before(async () => (gw = await deviceGateway()))
  after(() => gw.close())

  it('fills the code in and sends nothing until the person does, so that no site can spend a browser\'s guesses', async () => {
    const { user_code: userCode, verification_uri_complete: link } = await startDeviceLogin(gw)
    const jar = new CookieJar()
    // Another site sends the browser to the page with wrong codes, more often than a session may guess.
    for (let i = 0; i <= WRONG_GUESSES_PER_SESSION; i++) {
      const shown = await browse(gw, jar, realmUrl(gw, '/device?user_code=BCDF-GHJK'))
      assert.equal(shown.response.status, 200)
      const html = await shown.response.text()
      assert.match(html, /<input\s+value="BCDF-GHJK" [^>]*name="user_code"/)
      assert.doesNotMatch(html, /type="hidden" name="user_code"/, 'not a form that posts itself')
    }
    // A HEAD is answered as the GET: the page with the form, not one that posts itself.
    const head = await fetch(realmUrl(gw, '/device?user_code=BCDF-GHJK'), { method: 'HEAD', headers: { cookie: jar.header(), accept: 'text/html' } })
    const get = await fetch(realmUrl(gw, '/device?user_code=BCDF-GHJK'), { headers: { cookie: jar.header(), accept: 'text/html' } })
    assert.equal(head.headers.get('content-security-policy'), get.headers.get('content-security-policy'))
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(await get.text())))
    // The link the device showed fills in its code; the person sends it, and is asked to confirm it.
    const page = await browse(gw, jar, link)
    const html = await page.response.clone().text()
    assert.ok(html.includes(`value="${userCode}"`), html)
    const confirm = await submitForm(gw, jar, page, { user_code: userCode })
    assert.equal(confirm.response.status, 200)
    assert.match(await confirm.response.text(), /Confirm device login/)
  })
})

describe('user codes guessed at the device page from one address', () => {
  let gw: TestGateway
  before(async () => (gw = await deviceGateway()))
  after(() => gw.close())

  /** One wrong guess from a browser of its own, as a guesser dropping its cookie after each would make. */
  async function guessInNewBrowser(userCode: string): Promise<Response> {
    const jar = new CookieJar()
    return (await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })).response
  }

  it('are answered 429 once the address got too many wrong, whatever new session each came with', async () => {
    for (let i = 0; i < WRONG_GUESSES_PER_ADDRESS; i++) assert.equal((await guessInNewBrowser('BCDF-GHJK')).status, 200)
    const refused = await guessInNewBrowser('BCDF-GHJK')
    assert.equal(refused.status, 429)
    assert.ok(Number(refused.headers.get('retry-after')) > 0)
  })

  it('lets a browser of that address that signs in enter its code, counted against its account', async () => {
    const { user_code: userCode } = await startDeviceLogin(gw)
    // The address held back, as the test before leaves it (and as this makes it when run alone).
    for (let i = 0; i <= WRONG_GUESSES_PER_ADDRESS && (await guessInNewBrowser('BCDF-GHJK')).status !== 429; i++);
    const jar = new CookieJar()
    const refused = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    assert.equal(refused.response.status, 429, 'the address is held back')
    const link = /<a href="([^"]+)">Sign in<\/a>/.exec(await refused.response.text())?.[1]?.replaceAll('&amp;', '&')
    assert.equal(link, `${gw.url}/api/gateway/v1/login/?next=%2Frealms%2Fplatform%2Fdevice`)
    const loginPage = await browse(gw, jar, link!)
    const signedIn = await submitForm(gw, jar, loginPage, { username: 'admin', password: ADMIN_PASSWORD })
    assert.equal(signedIn.url, realmUrl(gw, '/device'))
    const confirm = await submitForm(gw, jar, signedIn, { user_code: userCode })
    assert.equal(confirm.response.status, 200)
    assert.match(await confirm.response.text(), /Confirm device login/)
  })
})

describe('user codes guessed all at once', () => {
  let gw: TestGateway
  let database: { url: string; drop: () => Promise<void> }
  // On PostgreSQL, where each lookup waits on the network and requests sent together are all in flight at once.
  before(async () => {
    database = await createTestDatabase()
    gw = await deviceGateway({ databaseUrl: database.url })
  })
  after(async () => {
    await gw.close()
    await database.drop()
  })

  it('are looked up no more often than one browser may guess, however many it sends at the same moment', async () => {
    const { user_code: userCode } = await startDeviceLogin(gw)
    const jar = new CookieJar()
    const form = await formOf(await browse(gw, jar, realmUrl(gw, '/device')))
    const guesses = Array.from({ length: 60 }, (_, i) => new URLSearchParams([...form.fields, ['user_code', i === 59 ? userCode : `BCDF-GHJ${'KLMNPQRSTVWXZ'[i % 13]}`]]))
    // Each finds the session as it was before any was answered (the page's anti-forgery value too).
    const answers = (await allAtOnce(gw, guesses.map((guess) => ({ url: form.url, cookie: jar.header(), body: guess.toString() }))))
      .map((text) => ({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]) }))
    const lookedUp = answers.filter((answer) => answer.status === 200)
    assert.ok(lookedUp.length <= WRONG_GUESSES_PER_SESSION, `${lookedUp.length} codes looked up for one browser`)
    // The rest refused unlooked: held back (429), or, had the session's anti-forgery value changed first, refused (400).
    assert.ok(answers.filter((answer) => answer.status === 429).length > 0, 'the bound was reached')
    assert.deepEqual(answers.filter((answer) => ![200, 400, 429].includes(answer.status)), [])
  })
})

describe('user codes guessed from many IPv6 addresses of one network', () => {
  let gw: TestGateway
  before(async () => (gw = await deviceGateway({ trustedProxies: ['127.0.0.1'] })))
  after(() => gw.close())

  it('count against the /64 together, as one host has it whole', async () => {
    const statuses: number[] = []
    for (let i = 0; i <= WRONG_GUESSES_PER_ADDRESS; i++) {
      // A new browser and a new address of the network each time.
      const hop = { 'x-forwarded-for': `2001:db8:1:2::${(i + 1).toString(16)}` }
      const jar = new CookieJar()
      const form = await formOf(await browse(gw, jar, realmUrl(gw, '/device'), { everyHop: hop }))
      form.fields.set('user_code', 'BCDF-GHJK')
      statuses.push((await browse(gw, jar, form.url, { method: 'POST', everyHop: hop, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.fields.toString() })).response.status)
    }
    assert.deepEqual(statuses.slice(0, WRONG_GUESSES_PER_ADDRESS), Array(WRONG_GUESSES_PER_ADDRESS).fill(200))
    assert.equal(statuses.at(-1), 429, 'the network is held back')
  })
})

describe('user codes entered while the database does not answer', () => {
  let gw: TestGateway
  before(async () => (gw = await deviceGateway()))
  after(() => gw.close())

  it('are not counted as guesses: once it answers again the browser\'s code is taken', async () => {
    const { user_code: userCode } = await startDeviceLogin(gw)
    const records = gw.app.store.oidc
    const findByUserCode = records.findByUserCode
    records.findByUserCode = async () => { throw new DatabaseUnavailable('the database did not answer') }
    const jar = new CookieJar()
    let page = await browse(gw, jar, realmUrl(gw, '/device'))
    try {
      for (let i = 0; i <= WRONG_GUESSES_PER_SESSION; i++) {
        const tried = await submitForm(gw, jar, page, { user_code: userCode })
        assert.equal(tried.response.status, 503)
        page = await browse(gw, jar, realmUrl(gw, '/device'))
      }
    } finally {
      records.findByUserCode = findByUserCode
    }
    const confirm = await submitForm(gw, jar, page, { user_code: userCode })
    assert.equal(confirm.response.status, 200)
    assert.match(await confirm.response.text(), /Confirm device login/)
  })
})
