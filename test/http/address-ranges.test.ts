import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { compileAddressRanges, isAddressRange, isIPv6Text, parseAddressRange } from '../../src/http/address-ranges.ts'

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

  it('matches an IPv4 peer only by IPv4 entries and IPv4-mapped ones, never by a wider IPv6 range holding the mapped block', () => {
    for (const entry of ['::/0', '::/1', '::ffff:0:0/95', '::/64']) {
      const judge = compileAddressRanges([entry])
      for (const address of ['10.0.0.1', '127.0.0.1', '::ffff:10.0.0.1', '::FFFF:127.0.0.1', '0:0:0:0:0:ffff:a00:1']) assert.equal(judge(address), false, `${entry} ${address}`)
    }
    assert.equal(compileAddressRanges(['::/0'])('2001:db8::1'), true)
    assert.equal(compileAddressRanges(['::/1'])('::1'), true)
    const mapped = compileAddressRanges(['::ffff:0.0.0.0/96', '::/0'])
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '0:0:0:0:0:ffff:a00:1', '2001:db8::1']) assert.equal(mapped(address), true, address)
    const v4 = compileAddressRanges(['10.0.0.0/8'])
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '0:0:0:0:0:ffff:a00:1']) assert.equal(v4(address), true, address)
    assert.equal(v4('::10.0.0.1'), false, 'an IPv4-compatible address is IPv6')
  })

  it('reads IPv6 text exactly as node:net does, zone ids and dotted quads included', () => {
    const samples = [
      '::', '::1', '1::', '::1.2.3.4', '1::1.2.3.4', '::ffff:10.0.0.5', '::FFFF:192.0.2.7', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:1.2.3.4',
      '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1::3:4:5:6:7:8', '1:2:3:4:5::1.2.3.4', '::2:3:4:5:6:1.2.3.4', '0000:0:0:0:0:0:0:1',
      'fe80::1%eth0', 'fe80::1%25', 'fe80::1%a.b-c:d', 'fe80::1%', 'fe80::1%eth_0', 'fe80::1%eth0%1', '::1%1/64',
      ':::', '1:::2', '1::2::3', ':1::2', '1::2:', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:1.2.3.4', '1::2:3:4:5:6:1.2.3.4', '1.2.3.4::', '1.2.3.4::1', '::1.2.3', '::1.2.3.04', '::256.0.0.1', '::01.2.3.4',
      '00000::1', 'g::1', '::1 ', ' ::1', '', ':', '1', '10.0.0.1', '::ffff:1.2.3.4:5', '[::1]', '::-1',
    ]
    for (const text of samples) assert.equal(isIPv6Text(text), isIPv6(text), text)
    let seed = 7
    const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
    const pieces = ['1', 'f', 'ab', 'FFFF', '0000', '12345', ':', ':', '::', '.', '1.2.3.4', '255', '%', 'e', 'g', '-', '_', '0']
    for (let i = 0; i < 50_000; i++) {
      let text = ''
      for (let n = 1 + random(12); n > 0; n--) text += pieces[random(pieces.length)]
      assert.equal(isIPv6Text(text), isIPv6(text), text)
    }
  })

  it('judges dotted quads, alone and IPv4-mapped, as node:net\'s BlockList judges them', () => {
    let seed = 11
    const random = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) % n
    const parts = ['0', '1', '9', '10', '127', '168', '192', '254', '255']
    const pick = <T>(from: readonly T[]): T => from[random(from.length)]!
    const quad = (from = parts, separators = ['.']) => [0, 1, 2, 3].map((i) => (i ? pick(separators) : '') + pick(from)).join('')
    // The ends of the ranges the entries make, and beyond them, and parts and separators no dotted quad has.
    const edgeParts = ['0', '1', '127', '128', '254', '255']
    const malformedParts = [...parts, '256', '00', '01', '1000', '']
    const pieces = ['0', '1', '9', '25', '255', '256', '00', '01', '1000', '.', '.', '.', '::ffff:', '::FFFF:', ':', 'a', ' ']
    let matched = 0
    // An entry's own address, or the one before or after it: the ends of a /32 or /31 range, and beyond them.
    const beside = (entry: string) => entry.replace(/\.(\d+)\/.*$/, (_, last: string) => `.${Number(last) + random(3) - 1}`)
    for (let list = 0; list < 200; list++) {
      const bits = [0, 1, 7, 8, 9, 16, 24, 31, 32]
      const entries = Array.from({ length: 1 + random(3) }, () => `${quad()}/${bits[random(bits.length)]}`)
      const reference = new BlockList()
      for (const entry of entries) reference.addSubnet(entry.split('/')[0]!, Number(entry.split('/')[1]), 'ipv4')
      const judge = compileAddressRanges(entries)
      for (let i = 0; i < 200; i++) {
        const written = random(4) ? quad(pick([parts, edgeParts, malformedParts]), random(4) ? ['.'] : ['.', ':', ',', '']) : beside(pick(entries))
        let text = random(2) ? written : ''
        for (let n = random(2) * random(6); n > 0; n--) text = random(2) ? text + pick(pieces) : pick(pieces) + text
        if (random(4) === 0) text = `::ffff:${text}`
        const expected = isIPv4(text) ? reference.check(text, 'ipv4') : isIPv6(text) && reference.check(text, 'ipv6')
        assert.equal(judge(text), expected, `${entries.join(' ')} ${text}`)
        matched += Number(expected)
      }
    }
    assert.ok(matched > 1_500, `only ${matched} of the addresses in a range`)
  })

  it('holds a CIDR prefix to its bounds, and takes zone ids as node:net does', () => {
    for (const entry of ['::/0', '::1/128', '10.0.0.0/0', '10.0.0.0/32', '::ffff:10.0.0.0/96', 'fe80::1%eth0', 'fe80::/10']) assert.equal(isAddressRange(entry), true, entry)
    for (const entry of ['::1/129', '10.0.0.0/33', '::1/-1', '::1/1e2', '::1/0128', 'fe80::1%', 'fe80::1%eth_0', '::1/', '1:2:3:4:5:6:7:8:9/64']) assert.equal(isAddressRange(entry), false, entry)
    assert.equal(parseAddressRange('::ffff:10.0.0.0/95')?.address.kind(), 'ipv6')
    assert.equal(parseAddressRange('::ffff:10.0.0.0/96')?.bits, 0)
  })
})
