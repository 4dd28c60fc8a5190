import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { repoRoot } from './gateway.ts'

/** Debian's Chromium (`apt-get install chromium`); Playwright never downloads a browser here. */
export const CHROMIUM = process.env.GATEHOUSE_TEST_CHROMIUM ?? '/usr/bin/chromium'
export const SCREENSHOTS = join(repoRoot, 'test-results/screenshots')

export const VIEWPORTS = {
  phone: { width: 360, height: 740 },
  desktop: { width: 1280, height: 860 },
} as const
export type ViewportName = keyof typeof VIEWPORTS

/**
 * Headless Chromium with nothing running in the background. Each launch gets a fresh temporary profile
 * (user-data-dir) that Playwright creates and removes; each context is a separate cookie jar.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

export interface WatchedPage {
  page: Page
  context: BrowserContext
  /** Console errors and uncaught exceptions seen so far. */
  problems: string[]
  /** `<status> <method> <path>` of every answer of 400 or more, which tests compare with the ones they caused. */
  failedResponses: string[]
}

/** The cookies of a browser that logged in, for a new context to start signed in to the same session. */
export type SignedIn = Awaited<ReturnType<BrowserContext['storageState']>>

/**
 * A page in its own context (its own cookies) that records every console error and uncaught exception, and
 * every 4xx/5xx answer. Chromium also logs each such answer to the console ("Failed to load resource"); those
 * lines are left to `failedResponses`, where a test can tell an expected refusal from a broken page. With
 * `signedIn`, the context starts with that session's cookies.
 */
export async function openPage(browser: Browser, viewport: ViewportName = 'desktop', signedIn?: SignedIn): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: VIEWPORTS[viewport], locale: 'en-GB', timezoneId: 'UTC', storageState: signedIn })
  const page = await context.newPage()
  const problems: string[] = []
  const failedResponses: string[] = []
  page.on('console', (message) => {
    if (message.type() !== 'error' || message.text().startsWith('Failed to load resource: the server responded with a status of')) return
    problems.push(`console: ${message.text()} (${message.location().url})`)
  })
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('response', (response) => {
    if (response.status() >= 400) failedResponses.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`)
  })
  return { page, context, problems, failedResponses }
}

/** Logs in through the login page, starting from `path`, and waits to be back on it. */
export async function logIn(page: Page, baseUrl: string, username: string, password: string, path = '/ui/'): Promise<void> {
  await page.goto(baseUrl + path)
  assert.match(new URL(page.url()).pathname, /^\/api\/gateway\/v1\/login\/$/, 'a visitor without a session is sent to the login page')
  await page.fill('#username', username)
  await page.fill('#password', password)
  await Promise.all([page.waitForURL((url) => url.pathname.startsWith('/ui/')), page.click('button[type=submit]')])
  await page.locator('main h1').first().waitFor()
}

/** Waits for the page of the interface to draw its data: its main area is `aria-busy` until then. */
export async function pageDrawn(page: Page): Promise<void> {
  await page.locator('main:not([aria-busy]) h1').first().waitFor()
}

/** The page fits its width: nothing sticks out to the right. */
export async function assertNoHorizontalOverflow(page: Page, what: string): Promise<void> {
  const { scrollWidth, innerWidth } = await page.evaluate<{ scrollWidth: number; innerWidth: number }>('({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })')
  assert.ok(scrollWidth <= innerWidth, `${what}: the page is ${scrollWidth} px wide in a ${innerWidth} px window`)
}

/** Saves a full-page screenshot as test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}
