import assert from 'node:assert/strict'
import { Browser, linksTo, type Page } from './browser.ts'
import type { TestGateway } from './gateway.ts'
import type { UpstreamIdp } from './upstream-idp.ts'

export const LOGIN = '/api/gateway/v1/login/'
export const SSO = '/api/gateway/v1/login/sso/'

/** Clicks "Sign in with <label>" on the gateway's login page and follows the redirects to the provider's login form. */
export async function openProviderLogin(gw: Pick<TestGateway, 'url'>, browser: Browser, label: string, next?: string): Promise<Page> {
  const loginPage = await browser.navigate(gw.url + LOGIN + (next ? `?next=${encodeURIComponent(next)}` : ''))
  assert.equal(loginPage.response.status, 200)
  const [button] = linksTo(loginPage.body, new RegExp(`Sign in with ${label}`))
  assert.ok(button, `the login page offers "Sign in with ${label}"`)
  const providerLogin = await browser.navigate(new URL(button, loginPage.url).href)
  assert.equal(providerLogin.response.status, 200, providerLogin.body)
  assert.match(providerLogin.body, /name="password"/, 'the provider asks for the password')
  return providerLogin
}

/** The provider's login and consent forms; returns the redirect back to the gateway's callback, unfollowed. */
export async function signInUpstream(gw: Pick<TestGateway, 'url'>, browser: Browser, page: Page, login: string, password: string, decision = 'allow'): Promise<string> {
  const consent = await browser.submit(page, { username: login, password })
  assert.equal(consent.response.status, 200, consent.body)
  assert.match(consent.body, /decision/, 'the provider asks for consent')
  const back = await browser.submit(consent, { decision }, { stopBefore: (url) => url.startsWith(gw.url + SSO) })
  assert.ok(back.stoppedAt, 'the provider redirects back to the gateway')
  return back.stoppedAt
}

/** A whole sign-in; returns the browser (with its session cookie) and the last page. */
export async function signInWithSso(gw: Pick<TestGateway, 'url'>, label: string, login: string, idp: UpstreamIdp, next?: string): Promise<{ browser: Browser; page: Page }> {
  const browser = new Browser()
  const callback = await signInUpstream(gw, browser, await openProviderLogin(gw, browser, label, next), login, idp.users.get(login)!.password)
  return { browser, page: await browser.navigate(callback) }
}
