import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compileTrustedProxies, normaliseForwardingHeaders } from '../../src/gateway/trusted-proxies.ts'

describe('trusted proxies', () => {
  it('judges addresses and CIDRs, IPv4-mapped peers as their IPv4 address, and nothing else', () => {
    const trusts = compileTrustedProxies(['10.1.0.0/16', '192.0.2.7', '2001:db8::/32'])
    assert.equal(trusts('10.1.200.3'), true)
    assert.equal(trusts('::ffff:10.1.0.9'), true)
    assert.equal(trusts('192.0.2.7'), true)
    assert.equal(trusts('2001:db8::1'), true)
    assert.equal(trusts('10.2.0.1'), false)
    assert.equal(trusts('192.0.2.8'), false)
    assert.equal(trusts('not an address'), false)
    assert.equal(trusts(undefined), false)
    assert.equal(compileTrustedProxies([])('10.1.0.1'), false)
  })

  it('judges an IPv4-mapped CIDR as the IPv4 range it maps, as it judges an IPv4-mapped address', () => {
    const trusts = compileTrustedProxies(['::ffff:10.1.0.0/112', '::FFFF:192.0.2.7'])
    assert.equal(trusts('10.1.200.3'), true)
    assert.equal(trusts('::ffff:10.1.0.9'), true)
    assert.equal(trusts('192.0.2.7'), true)
    assert.equal(trusts('10.2.0.1'), false)
    assert.equal(trusts('::ffff:10.2.0.1'), false)
    assert.equal(trusts('::1'), false)
  })

  it('gives the same answers when asked again, and after more distinct peers than it remembers', () => {
    const trusts = compileTrustedProxies(['10.1.0.0/16'])
    assert.equal(trusts('10.1.0.1'), true)
    assert.equal(trusts('10.9.0.1'), false)
    for (let i = 0; i < 10_000; i++) trusts(`172.16.${i >> 8}.${i & 255}`)
    assert.equal(trusts('10.1.0.1'), true)
    assert.equal(trusts('10.9.0.1'), false)
    assert.equal(trusts('10.1.0.1'), true)
  })

  it('keeps X-Forwarded-Proto only as http or https, and reads X-Forwarded-For entries with a port as their address', () => {
    const normalised = (headers: Record<string, string>) => {
      normaliseForwardingHeaders(headers)
      return headers
    }
    assert.deepEqual(normalised({ 'x-forwarded-proto': ' HTTPS ' }), { 'x-forwarded-proto': 'https' })
    assert.deepEqual(normalised({ 'x-forwarded-proto': 'https, http' }), { 'x-forwarded-proto': 'http' })
    for (const scheme of ['javascript', 'https, ws', 'htt', '']) assert.deepEqual(normalised({ 'x-forwarded-proto': scheme }), {}, scheme)
    assert.deepEqual(normalised({ 'x-forwarded-for': '192.0.2.1:80,[2001:db8::1]:443 , [::1], 2001:db8::2' }), { 'x-forwarded-for': '192.0.2.1, 2001:db8::1, ::1, 2001:db8::2' })
    for (const kept of ['192.0.2.1, 192.0.2.2', '2001:db8::1:80', '192.0.2.1']) assert.deepEqual(normalised({ 'x-forwarded-for': kept }), { 'x-forwarded-for': kept }, kept)
    assert.deepEqual(normalised({ host: 'a' }), { host: 'a' })
  })

  it('keeps X-Forwarded-For\'s addresses back to the first entry that is none, which ends it, as nginx\'s realip module reads it', () => {
    const normalised = (value: string) => {
      const headers: Record<string, string> = { 'x-forwarded-for': value }
      normaliseForwardingHeaders(headers)
      return headers['x-forwarded-for']
    }
    for (const junk of ['unknown', '127.1', '2130706433', '127.000.000.001', '192.0.2.1:123456', '1.2.3:80', '[::1', 'host.example', '']) {
      assert.equal(normalised(junk), undefined, junk)
      assert.equal(normalised(`192.0.2.9, ${junk}`), undefined, `an address before ${junk}`)
      assert.equal(normalised(`${junk}, 192.0.2.9`), '192.0.2.9', `an address after ${junk}`)
    }
    assert.equal(normalised('198.51.100.1, garbage, 192.0.2.1:80, 10.0.0.1'), '192.0.2.1, 10.0.0.1')
  })
})
