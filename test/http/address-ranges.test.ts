import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compileAddressRanges, isAddressRange, parseAddressRange } from '../../src/http/address-ranges.ts'

describe('address ranges in the configuration', () => {
  it('takes one address or a CIDR, IPv4 or IPv6, and nothing looser', () => {
    for (const entry of ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1', '0.0.0.0/0', '::/0', '::ffff:10.0.0.0/104']) assert.equal(isAddressRange(entry), true, entry)
    for (const entry of ['10.0.0.0/33', '::/129', '10.1/8', '0x0a.0.0.1', '10.0.0.0/8/8', '10.0.0.0/', '10.0.0.0/+8', 'office', '', '10.0.0.0/ 8']) assert.equal(isAddressRange(entry), false, entry)
  })

  it('reads an IPv4-mapped address or CIDR as the IPv4 one it maps, since peers are judged as their IPv4 address', () => {
    assert.deepEqual(String(parseAddressRange('::ffff:10.0.0.0/104')?.address), '10.0.0.0')
    assert.equal(parseAddressRange('::ffff:10.0.0.0/104')?.bits, 8)
    assert.equal(parseAddressRange('::FFFF:192.0.2.7')?.address.kind(), 'ipv4')
    assert.equal(parseAddressRange('::FFFF:192.0.2.7')?.bits, 32)
  })

  it('judges peers, IPv4-mapped ones as their IPv4 address, and anything else as in no range', () => {
    const judge = compileAddressRanges(['::ffff:10.0.0.0/104', '192.0.2.0/24', '2001:db8::/32'])
    for (const address of ['10.9.9.9', '::ffff:10.9.9.9', '::ffff:192.0.2.200', '2001:db8::1']) assert.equal(judge(address), true, address)
    for (const address of ['11.0.0.1', '::ffff:11.0.0.1', '2001:db9::1', '::1', 'fe80::1%eth0', 'not an address', '']) assert.equal(judge(address), false, address)
  })
})
