import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import cookie from '@fastify/cookie'
import Fastify from 'fastify'
import { cookieParser } from '../../src/http/cookie-header.ts'

const parse = cookieParser(new Set(['gateway_sessionid', 'csrftoken']))

describe('the Cookie header parser', () => {
  let parseCookie: (header: string) => Record<string, string>
  before(async () => {
    // @fastify/cookie's own parser, which the gateway's replaces.
    const server = Fastify()
    await server.register(cookie)
    await server.ready()
    parseCookie = (header) => server.parseCookie(header)
  })

  it('reads every header as @fastify/cookie does when no name repeats', () => {
    const headers = [
      '', 'a', '=', 'a=', 'a=1', ' a = 1 ; b=2;c=3 ', 'a=1;;b=2', 'novalue; a=1', 'a=1; novalue', 'a="quoted"',
      'a=%E2%82%AC', 'a=%E0%A4%A', 'a=x=y', '\ta=1\t;\tb=2', '__proto__=1; toString=2', '=bare; a=1', 'a=1; b',
    ]
    for (const header of headers) assert.deepEqual({ ...parse(header) }, { ...parseCookie(header) }, JSON.stringify(header))
  })

  it('keeps the last gateway_sessionid and csrftoken, and the first of any other name', () => {
    const cookies = parse('gateway_sessionid=planted; csrftoken=planted; theme=first; gateway_sessionid=own; theme=second; csrftoken=own')
    assert.equal(cookies.gateway_sessionid, 'own')
    assert.equal(cookies.csrftoken, 'own')
    assert.equal(cookies.theme, 'first')
  })

  it('gives a cookie named like an object property no special meaning', () => {
    const cookies = parse('__proto__=x; constructor=y')
    assert.equal(Object.getPrototypeOf(cookies), Object.getPrototypeOf(parse('')))
    assert.equal(cookies.constructor, 'y')
    assert.equal(parse('a=1').toString, undefined)
  })
})
