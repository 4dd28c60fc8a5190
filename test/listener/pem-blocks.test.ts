import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { cutPemBlock } from '../../src/listener/tls.ts'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { tempDir } from '../helpers/gateway.ts'

describe('a PEM file cut short', () => {
  const dir = tempDir()
  const first = selfSignedCertificate(dir, 'first.test')
  const second = selfSignedCertificate(dir, 'second.test', 'rsa:2048')
  const bundle = readFileSync(first.cert, 'utf8') + readFileSync(second.cert, 'utf8')
  const firstEnd = bundle.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length

  it('is found wherever the writing stopped, and a whole one nowhere', () => {
    const whole: number[] = []
    for (let length = 1; length <= bundle.length; length++) {
      if (cutPemBlock(bundle.slice(0, length)) === undefined) whole.push(length)
    }
    assert.deepEqual(whole, [firstEnd - 1, firstEnd, bundle.length - 1, bundle.length])
    for (const file of [first.cert, first.key, second.key]) assert.equal(cutPemBlock(readFileSync(file, 'utf8')), undefined, file)
  })

  it('says which: a BEGIN without its END, a BEGIN line cut, a body shorter than it says', () => {
    assert.equal(cutPemBlock(bundle.slice(0, bundle.length - 200)), 'BEGIN CERTIFICATE without its END')
    assert.equal(cutPemBlock(bundle.slice(0, firstEnd + 8)), 'a BEGIN line cut short')
    const secondBody = bundle.slice(bundle.indexOf('-----BEGIN CERTIFICATE-----', firstEnd))
    const shortened = secondBody.replace(/\n[A-Za-z0-9+/=]+\n-----END/, '\n-----END')
    assert.equal(cutPemBlock(shortened), 'the CERTIFICATE holds fewer bytes than it says it has')
  })

  it('leaves text around the blocks, and a block with headers, to the parsing', () => {
    assert.equal(cutPemBlock(`# a bundle's comment\n${bundle}# its end\n`), undefined)
    assert.equal(cutPemBlock('-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n'), undefined)
  })
})
