import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { requestFrom } from '../helpers/from-address.ts'
import { exchange } from '../helpers/raw-client.ts'
import { ADMIN_PASSWORD, adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { LOGIN, login, withCsrf } from '../helpers/session.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const FORWARDING_HEADERS = {
  forwarded: 'for=203.0.113.7;proto=https;host=evil.example',
  'x-real-ip': '203.0.113.7',
  'x-forwarded-port': '443',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-server': 'evil.example',
  'x-forwarded-ssl': 'on',
  'x-client-ip': '203.0.113.7',
  'true-client-ip': '203.0.113.7',
  'client-ip': '203.0.113.7',
  'x-forwarded': 'for=203.0.113.7',
  'forwarded-for': '203.0.113.7',
  'x-originating-ip': '203.0.113.7',
  'x-host': 'evil.example',
  'x-original-uri': '/admin/delete',
  'x-original-host': 'evil.example',
  // Envoy in front of a service takes these from a peer it counts as internal, as the gateway is.
  'x-envoy-external-address': '203.0.113.7',
  'x-envoy-original-path': '/admin/delete',
  'x-envoy-retry-on': '5xx',
  'x-envoy-max-retries': '100',
  'x-envoy-upstream-rq-timeout-ms': '0',
}

/** The documented form login, from a chosen local address. */
async function loginFrom(gw: TestGateway, address: string, headers: Record<string, string>): Promise<void> {
  const page = await requestFrom(address, `${gw.url}${LOGIN}`)
  const token = /csrftoken=([^;]+)/.exec(String(page.headers['set-cookie']))![1]!
  const response = await requestFrom(address, `${gw.url}${LOGIN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: `${gw.url}${LOGIN}`, ...headers },
    body: `username=admin&password=${ADMIN_PASSWORD}`,
  })
  assert.equal(response.status, 302, response.body)
}

describe('the headers between clients and services', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  const last = () => upstream.seen.at(-1)!

  before(async () => {
    upstream = await startRecordingUpstream((request, response) => {
      const cookies = request.url!.endsWith('/set-cookies')
        ? ['gateway_sessionid=planted; Path=/', 'csrftoken=planted', ' KEYCLOAK_SESSION =planted', 'gatehouse_oidc_session=planted', 'gatehouse_oidc_session.sig=planted', 'gatehouse_login_restarted=1; Path=/realms/platform/login-actions/', 'gateway_sso=x', '__Host-gateway_sso=x; Path=/; Secure', 'gateway_sso_logout=x', '__Host-gateway_sso_logout=x; Path=/; Secure', '=gateway_sessionid=nameless; Path=/', ' = csrftoken=nameless', 'theme=dark; Path=/']
        : ['gateway_sessionid=planted; Path=/; HttpOnly']
      response.writeHead(200, { 'content-type': 'application/json', 'set-cookie': cookies })
      response.end('{}')
    })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.2', '10.0.0.0/8'], remove_request_headers: ['X-Legacy-User', 'x-corp-*', 'X.Dot*'] },
        services: [
          { name: 'rec', prefix: '/rec/', upstream: upstream.url, public_paths: ['/rec/*'] },
          { name: 'roles', prefix: '/roles/', upstream: upstream.url, public_paths: ['/roles/*'], remove_request_headers: ['X-App-Role'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  it('drops identity headers spelled with underscores, which CGI-style frameworks read as the real ones', async () => {
    const response = await requestFrom('127.0.0.1', `${gw.url}/rec/x`, {
      headers: { ...adminAuth, X_Gatehouse_User: 'mallory', 'x-gatehouse_user-id': '999', X_GATEHOUSE_IDENTITY: 'forged', x_gatehouse_anything: '1', X_Forwarded_For: '203.0.113.7' },
    })
    assert.equal(response.status, 200)
    const names = last().rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase().replaceAll('_', '-'))
    assert.deepEqual(names.filter((name) => name === 'x-gatehouse-user'), ['x-gatehouse-user'])
    assert.equal(last().headers['x-gatehouse-user'], 'admin')
    assert.equal(last().headers['x-gatehouse-user-id'], '1')
    assert.equal(names.filter((name) => name === 'x-forwarded-for').length, 1)
    assert.equal(names.includes('x-gatehouse-anything'), false)
    assert.equal(last().headers['x-forwarded-for'], '127.0.0.1')
  })

  it('drops every field with an underscore in its name, as nginx does: a CGI-style server reads X_CSRFToken as X-CSRFToken', async () => {
    const session = await login(gw, 'admin', ADMIN_PASSWORD)
    for (const address of ['127.0.0.1', '127.0.0.2']) {
      const response = await requestFrom(address, `${gw.url}/rec/x`, {
        method: 'POST',
        headers: {
          ...withCsrf(session), 'content-type': 'application/json', X_CSRFToken: session.csrf, x_request_id: 'forged', X_Real_IP: '203.0.113.7', Api_Key: 'k', 'X-Api-Key': 'kept',
          // PHP reads `.` as `_` as well; nginx passes only letters, digits and `-`.
          'X.Gatehouse.User': 'mallory', 'X.Gatehouse-Identity': 'forged', 'X~Odd': '1', "X'Quote": '1',
        },
        body: '{}',
      })
      assert.equal(response.status, 200, response.body)
      const names = last().rawHeaders.filter((_, i) => i % 2 === 0)
      assert.deepEqual(names.filter((name) => /[^A-Za-z0-9-]/.test(name)), [], `from ${address}`)
      assert.equal(last().headers['x-gatehouse-user'], 'admin')
      assert.equal(last().headers['x-csrftoken'], undefined)
      assert.equal(last().headers['x-request-id'], response.headers['x-request-id'])
      assert.equal(last().headers['x-api-key'], 'kept', 'fields spelled with dashes pass')
    }
  })

  it('removes the identity headers other authenticating proxies set, from every client, trusted proxies too', async () => {
    // What services once behind Authelia, oauth2-proxy, Pomerium, Apache, Grafana's auth proxy, Kong or a cloud's
    // identity-aware proxy believe for who is calling.
    const forged = {
      'Remote-User': 'admin', 'Remote-Groups': 'admins', 'Remote-Email': 'admin@example.com', 'Remote-Name': 'Admin',
      'X-Forwarded-User': 'admin', 'X-Forwarded-Email': 'admin@example.com', 'X-Forwarded-Groups': 'admins',
      'X-Forwarded-Preferred-Username': 'admin', 'X-Forwarded-Access-Token': 'forged',
      'X-Auth-Request-User': 'admin', 'X-Auth-Request-Email': 'admin@example.com', 'X-Auth-Request-Groups': 'admins',
      'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters', 'X-User': 'admin', 'X-Email': 'admin@example.com',
      'X-Pomerium-Jwt-Assertion': 'forged', 'X-Pomerium-Claim-Email': 'admin@example.com', 'X-WEBAUTH-USER': 'admin',
      'X-Consumer-Username': 'admin', 'X-Authenticated-Userid': 'admin', 'X-Authentik-Username': 'admin', 'X-Vouch-User': 'admin',
      'Cf-Access-Authenticated-User-Email': 'admin@example.com', 'X-Goog-Authenticated-User-Email': 'admin@example.com',
      'X-Amzn-Oidc-Identity': 'admin', 'X-MS-CLIENT-PRINCIPAL-NAME': 'admin', 'Gap-Auth': 'admin', Remote_User: 'admin', x_auth_request_user: 'admin',
      // A TLS client certificate, as a proxy that checked one describes it.
      'X-SSL-Client-DN': 'CN=admin', 'X-SSL-Client-Verify': 'SUCCESS', 'X-SSL-Cert': 'forged', 'Ssl-Client-Verify': 'SUCCESS', 'X-Client-Cert': 'forged',
      'X-Client-Verify': 'SUCCESS', 'X-Client-DN': 'CN=admin', 'X-Forwarded-Tls-Client-Cert-Info': 'Subject="CN=admin"', 'X-ARR-ClientCert': 'forged',
      'X-Amzn-Mtls-Clientcert': 'forged', 'X-Forwarded-Client-Cert': 'By=spiffe://x;Subject="CN=admin"',
    }
    for (const address of ['127.0.0.1', '127.0.0.2']) {
      const response = await requestFrom(address, `${gw.url}/rec/x`, { headers: { ...forged, 'X-Username-Hint': 'kept' } })
      assert.equal(response.status, 200)
      const names = last().rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
      const passed = names.filter((name) => Object.keys(forged).some((forgedName) => forgedName.toLowerCase() === name))
      assert.deepEqual(passed, [], `from ${address}`)
      assert.equal(last().headers['x-username-hint'], 'kept', 'other fields pass')
    }
  })

  it('removes the request headers the configuration names, for every service or for one', async () => {
    const headers = { 'X-Legacy-User': 'admin', X_Legacy_User: 'admin', 'X-Corp-Role': 'admin', 'X-Corp-Dept': 'it', 'X-App-Role': 'admin', 'X-Corporate': 'kept', 'X.Dot-Role': 'admin', 'X-Dotted': 'kept' }
    await requestFrom('127.0.0.2', `${gw.url}/roles/x`, { headers })
    assert.deepEqual(Object.keys(last().headers).filter((name) => /legacy|corp|role/.test(name)), ['x-corporate'])
    assert.equal(last().headers['x-dotted'], 'kept', 'a dot in a configured name is a dot')
    await requestFrom('127.0.0.1', `${gw.url}/rec/x`, { headers })
    assert.deepEqual(Object.keys(last().headers).filter((name) => /legacy|corp|role/.test(name)), ['x-app-role', 'x-corporate'], 'the service list is its own')
  })

  it('drops method overrides, which frameworks take for the method the gateway judged', async () => {
    const response = await requestFrom('127.0.0.1', `${gw.url}/rec/x`, {
      method: 'POST',
      headers: { ...adminAuth, 'X-HTTP-Method-Override': 'DELETE', 'X-HTTP-Method': 'DELETE', 'X-Method-Override': 'DELETE', X_HTTP_Method_Override: 'DELETE' },
    })
    assert.equal(response.status, 200)
    const names = last().rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase().replaceAll('_', '-'))
    assert.deepEqual(names.filter((name) => name.includes('method') && !name.startsWith('x-gatehouse-')), [])
    assert.equal(last().method, 'POST')
  })

  it('removes the client\'s forwarding headers unless the peer is a trusted proxy', async () => {
    await requestFrom('127.0.0.1', `${gw.url}/rec/x`, { headers: { ...FORWARDING_HEADERS, x_real_ip: '203.0.113.8', 'x-forwarded-for': '203.0.113.7' } })
    for (const name of [...Object.keys(FORWARDING_HEADERS), 'x_real_ip']) assert.equal(last().headers[name], undefined, name)
    assert.equal(last().headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(last().headers['x-forwarded-host'], new URL(gw.url).host)

    // A trusted proxy's pass on as it sent them, but for what the gateway vouches for itself (the client's address,
    // wherever a field names it) and Envoy's.
    await requestFrom('127.0.0.2', `${gw.url}/rec/x`, { headers: { ...FORWARDING_HEADERS, 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'public.example', 'x-forwarded-proto': 'https' } })
    const clientAddressFields = ['x-client-ip', 'true-client-ip', 'client-ip', 'forwarded-for', 'x-originating-ip']
    for (const [name, value] of Object.entries(FORWARDING_HEADERS)) {
      if (name === 'forwarded' || name === 'x-real-ip' || name === 'x-forwarded' || clientAddressFields.includes(name) || name.startsWith('x-envoy-')) continue
      assert.equal(last().headers[name], value, name)
    }
    for (const name of clientAddressFields) assert.equal(last().headers[name], '203.0.113.9', `${name}: the client X-Forwarded-For names, not what its client wrote`)
    assert.equal(last().headers['x-forwarded'], 'for=203.0.113.9;proto=https;host=public.example')
    assert.equal(last().headers['x-forwarded-for'], '203.0.113.9, 127.0.0.2')
    assert.equal(last().headers['x-forwarded-host'], 'public.example')
    assert.equal(last().headers['x-forwarded-proto'], 'https')
    assert.equal(last().headers.forwarded, 'for=203.0.113.9;proto=https;host=public.example', 'the client, scheme and host X-Forwarded-* say, not the client\'s own')
    assert.equal(last().headers['x-real-ip'], '203.0.113.9')
    for (const name of Object.keys(FORWARDING_HEADERS).filter((name) => name.startsWith('x-envoy-'))) assert.equal(last().headers[name], undefined, name)
    // Quoted where RFC 7239 asks: an IPv6 client, a host with a port.
    await requestFrom('127.0.0.2', `${gw.url}/rec/x`, { headers: { forwarded: 'for=unknown', 'x-forwarded-for': '2001:db8::7', 'x-forwarded-host': 'public.example:8443' } })
    assert.equal(last().headers.forwarded, 'for="[2001:db8::7]";proto=http;host="public.example:8443"')
    // Neither is added where the proxy sent none: what a service receives costs every request.
    await requestFrom('127.0.0.2', `${gw.url}/rec/x`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
    assert.equal(last().headers.forwarded, undefined)
    assert.equal(last().headers['x-real-ip'], undefined)
  })

  it('sends no X-Forwarded-Host for an HTTP/1.0 request that names no host, rather than an empty one', async () => {
    const answer = await exchange(gw.url, 'GET /rec/h10 HTTP/1.0\r\n\r\n')
    assert.match(answer, /^HTTP\/1.1 200 /)
    assert.equal(last().url, '/rec/h10')
    assert.equal(last().headers['x-forwarded-host'], undefined)
    assert.equal(last().headers['x-forwarded-for'], '127.0.0.1')
  })

  it('removes the URL overrides frameworks route by, from trusted proxies too, which pass on their clients\' own', async () => {
    for (const from of ['127.0.0.1', '127.0.0.2']) {
      await requestFrom(from, `${gw.url}/rec/x`, { headers: { 'x-original-url': '/rec/admin/delete', 'X-Rewrite-URL': '/rec/admin/delete', x_original_url: '/rec/admin' } })
      assert.equal(last().url, '/rec/x')
      const names = last().rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase().replaceAll('_', '-'))
      assert.deepEqual(names.filter((name) => name.includes('rewrite') || name.includes('original-url')), [], from)
    }
  })

  it('believes a trusted proxy\'s X-Forwarded-Proto only when it says http or https, in any case, and otherwise reads the connection', async () => {
    const cases: [string, string][] = [['HTTPS', 'https'], ['Http', 'http'], ['http, https', 'https'], ['javascript', 'http'], ['https, gopher', 'http'], ['', 'http'], ['https x', 'http']]
    for (const path of ['/rec/x', '/rec/%78']) {
      for (const [sent, believed] of cases) {
        const response = await requestFrom('127.0.0.2', `${gw.url}${path}`, { headers: { 'x-forwarded-proto': sent } })
        assert.equal(response.status, 200)
        assert.equal(last().headers['x-forwarded-proto'], believed, `${path} ${JSON.stringify(sent)}`)
      }
    }
  })

  it('takes the client address from a trusted proxy only, for sessions and lockout alike', async () => {
    await loginFrom(gw, '127.0.0.2', { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' })
    await loginFrom(gw, '127.0.0.1', { 'x-forwarded-for': '203.0.113.10', 'x-real-ip': '203.0.113.10' })
    const sessions = await requestFrom('127.0.0.1', `${gw.url}/api/gateway/v1/sessions/`, { headers: adminAuth })
    const addresses = sessions.json().results.map((session: { ip: string }) => session.ip)
    assert.ok(addresses.includes('203.0.113.9'), addresses.join())
    assert.ok(addresses.includes('127.0.0.1'), addresses.join())
    assert.equal(addresses.includes('203.0.113.10'), false)
    assert.equal(addresses.includes('198.51.100.1'), false)
  })

  it('reads a trusted proxy\'s X-Forwarded-For entries written with a port as their address, for services and sessions alike', async () => {
    for (const path of ['/rec/x', '/rec/%78']) {
      await requestFrom('127.0.0.2', `${gw.url}${path}`, { headers: { 'x-forwarded-for': '198.51.100.4:1234, [2001:db8::7]:5678, 10.1.2.3:443' } })
      assert.equal(last().headers['x-forwarded-for'], '198.51.100.4, 2001:db8::7, 10.1.2.3, 127.0.0.2', path)
      await requestFrom('127.0.0.2', `${gw.url}${path}`, { headers: { 'x-forwarded-for': 'not:an:address:80, [2001:db8::8], 2001:db8::9' } })
      assert.equal(last().headers['x-forwarded-for'], '2001:db8::8, 2001:db8::9, 127.0.0.2', path)
      // An entry that is no address ends the list: none before it was vouched for, and the client is the proxy.
      await requestFrom('127.0.0.2', `${gw.url}${path}`, { headers: { 'x-forwarded-for': '[2001:db8::8], 2001:db8::9, not:an:address:80' } })
      assert.equal(last().headers['x-forwarded-for'], '127.0.0.2', path)
    }
    await loginFrom(gw, '127.0.0.2', { 'x-forwarded-for': '203.0.113.21:40000, 10.0.0.9:8443' })
    await loginFrom(gw, '127.0.0.2', { 'x-forwarded-for': '[2001:db8::21]:40000' })
    await loginFrom(gw, '127.0.0.2', { 'x-forwarded-for': '203.0.113.99, 127.1' })
    const sessions = await requestFrom('127.0.0.1', `${gw.url}/api/gateway/v1/sessions/`, { headers: adminAuth })
    const addresses = sessions.json().results.map((session: { ip: string }) => session.ip)
    assert.ok(addresses.includes('203.0.113.21'), addresses.join())
    assert.ok(addresses.includes('2001:db8::21'), addresses.join())
    assert.ok(addresses.includes('127.0.0.2'), `the proxy itself, for a list ending in no address: ${addresses.join()}`)
    assert.equal(addresses.some((address: string) => address === '127.1' || address === '203.0.113.99'), false, addresses.join())
  })

  it('never forwards the gateway\'s own cookies, and never lets a service set them', async () => {
    const response = await requestFrom('127.0.0.1', `${gw.url}/rec/set-cookies`, {
      headers: { cookie: 'gateway_sessionid=abc; theme=dark; csrftoken=xyz; gatehouse_oidc_session=s; gatehouse_oidc_session.sig=t; gatehouse_login_restarted=1; KEYCLOAK_SESSION=k; gateway_sso=f; __Host-gateway_sso=h; gateway_sso_logout=l; __Host-gateway_sso_logout=m' },
    })
    assert.equal(last().headers.cookie, 'theme=dark')
    assert.deepEqual(response.headers['set-cookie'], ['theme=dark; Path=/'])
    const only = await requestFrom('127.0.0.1', `${gw.url}/rec/one`)
    assert.equal(only.headers['set-cookie'], undefined)
  })

  it('forwards no Cookie field left empty by the gateway\'s cookies, an empty one as it came, and none a Connection field names', async () => {
    for (const cookie of ['gateway_sessionid=abc', 'gateway_sessionid=abc;', ';gateway_sessionid=abc', 'csrftoken=x; gateway_sessionid=abc;', 'gateway_sessionid=abc;;', 'gateway_sessionid=abc; ;']) {
      assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/cookies`, { headers: { cookie } })).status, 200)
      assert.equal('cookie' in last().headers, false, cookie)
    }
    assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/cookies`, { headers: { cookie: '' } })).status, 200)
    assert.equal(last().headers.cookie, '')
    assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/cookies`, { headers: { cookie: 'a=1;;b=2; ;gateway_sessionid=abc' } })).status, 200)
    assert.equal(last().headers.cookie, 'a=1; b=2')
    assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/cookies`, { headers: { cookie: 'theme=dark', connection: 'keep-alive, Cookie' } })).status, 200)
    assert.equal('cookie' in last().headers, false)
  })

  it('keeps a client\'s X-CSRFToken from the service only where it goes with the session cookie', async () => {
    const session = await login(gw, 'admin', ADMIN_PASSWORD)
    assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/csrf`, { headers: { ...withCsrf(session) } })).status, 200)
    assert.equal(last().headers['x-csrftoken'], undefined)
    assert.equal(last().headers['x-gatehouse-auth-method'], 'session')
    assert.equal((await requestFrom('127.0.0.1', `${gw.url}/rec/csrf`, { headers: { ...adminAuth, 'x-csrftoken': 'theirs' } })).status, 200)
    assert.equal(last().headers['x-csrftoken'], 'theirs')
    assert.equal(last().headers['x-gatehouse-auth-method'], 'basic')
  })

  it('does not forward Expect: a 100-continue upload reaches the service', async () => {
    const body = 'x'.repeat(2 * 1024 * 1024)
    const response = await requestFrom('127.0.0.1', `${gw.url}/rec/upload`, { method: 'POST', headers: { expect: '100-continue', 'content-type': 'application/octet-stream' }, body })
    assert.equal(response.status, 200)
    assert.equal(last().bytes, body.length)
    assert.equal(last().headers.expect, undefined)
  })
})
