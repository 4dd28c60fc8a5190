import { isIP } from 'node:net'
import { domainToASCII } from 'node:url'

// The platform's users/ takes an address as Django's EmailValidator does (django-ansible-base's user is Django's
// AbstractUser, its serializer's field Django REST framework's EmailField): the ansible.platform `user` module sends
// whatever a playbook holds, `root@localhost` included, and a refusal here fails a task that passes there.
// Python's IGNORECASE folds as the `u` flag does: `ſ` and the Kelvin sign are letters of A-Z to both.
const DOT_ATOM = /^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*$/iu
const QUOTED_STRING = /^"([\x01-\x08\x0b\x0c\x0e-\x1f!#-[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"$/
const DOMAIN = /^(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+[A-Z0-9-]{2,63}(?<!-)$/i
const ADDRESS_LITERAL = /^\[([A-F0-9:.]+)\]$/i
// Python's IDNA codec leaves an ASCII domain as it is; the URL standard's domainToASCII would also drop its tabs and
// line breaks, and so take `a@example.com\n`. A domain with a joiner, which Python's older IDNA deletes, is refused.
const NON_ASCII = /[^\x00-\x7f]/
// RFC 3696 §3, as Django bounds it before anything else.
const MAX_ADDRESS = 320

/**
 * Whether Django's EmailValidator takes `value`: a dot-atom or quoted local part, then a domain of ASCII labels with a
 * top-level label of at least two characters, an internationalised one that is such a domain in punycode, an IPv4 or
 * IPv6 literal in brackets, or `localhost`.
 */
export function isPlatformEmailAddress(value: string): boolean {
  if (value.length > MAX_ADDRESS || !value.isWellFormed()) return false
  const at = value.lastIndexOf('@')
  if (at < 0) return false
  const local = value.slice(0, at)
  const domain = value.slice(at + 1)
  if (!DOT_ATOM.test(local) && !QUOTED_STRING.test(local)) return false
  return domain === 'localhost' || isDomain(domain) || (NON_ASCII.test(domain) && isDomain(domainToASCII(domain)))
}

function isDomain(domain: string): boolean {
  if (DOMAIN.test(domain)) return true
  const literal = ADDRESS_LITERAL.exec(domain)
  return literal !== null && isIP(literal[1]!) !== 0
}
