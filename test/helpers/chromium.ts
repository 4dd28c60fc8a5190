import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core'
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

/**
 * Logs `username` in once, in a context of its own, and returns that session's cookies: tests that need someone
 * signed in, but do not test the login, start their contexts from them instead of logging in again.
 */
export async function signIn(browser: Browser, baseUrl: string, username: string, password: string): Promise<SignedIn> {
  const { page, context } = await openPage(browser)
  try {
    await logIn(page, baseUrl, username, password)
    return await context.storageState()
  } finally {
    await context.close()
  }
}

/** Opens `path` in a page whose context started signed in, and waits for it to be drawn as logIn does. */
export async function openSignedIn(page: Page, baseUrl: string, path = '/ui/'): Promise<void> {
  await page.goto(baseUrl + path)
  assert.match(new URL(page.url()).pathname, /^\/ui\//, 'the session lets the page open, without a login')
  await page.locator('main h1').first().waitFor()
}

/** Waits for the page of the interface to draw its data: its main area is `aria-busy` until then. */
export async function pageDrawn(page: Page): Promise<void> {
  await page.locator('main:not([aria-busy]) h1').first().waitFor()
}

/** Chooses in a field that finds its choices as one types (a combobox): types `text`, then clicks the option named `option`. */
export async function choose(combobox: Locator, text: string, option: string): Promise<void> {
  await combobox.fill(text)
  await combobox.page().getByRole('option', { name: option, exact: true }).click()
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

/**
 * Colour arithmetic for the contrast checks, run in the page: `rgba(css)` parses a computed colour, `over(top,
 * bottom)` lays a translucent colour over another, `contrast(a, b)` is WCAG 2's ratio, and `behind(element)` is the
 * colour under an element's content: its and its ancestors' backgrounds layered as drawn, on the page's canvas.
 */
const COLOUR_MATH = `
  const rgba = (css) => {
    const parts = /rgba?\\(([^)]+)\\)/.exec(css)?.[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number)
    return parts ? [parts[0], parts[1], parts[2], parts[3] ?? 1] : [0, 0, 0, 0]
  }
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1)
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
  }
  const contrast = (a, b) => {
    const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x)
    return (light + 0.05) / (dark + 0.05)
  }
  const canvas = () => {
    const probe = document.createElement('div')
    probe.style.background = 'Canvas'
    document.body.append(probe)
    const color = rgba(getComputedStyle(probe).backgroundColor)
    probe.remove()
    return color
  }
  const behind = (element) => {
    const layers = []
    for (let e = element; e; e = e.parentElement) {
      const color = rgba(getComputedStyle(e).backgroundColor)
      if (color[3] > 0) layers.push(color)
      if (color[3] === 1) break
    }
    if (!layers.length || layers.at(-1)[3] < 1) layers.push(canvas())
    return layers.reduceRight((under, layer) => over(layer, under))
  }
  const describe = (element) => element.tagName.toLowerCase() + (element.className ? '.' + element.className.replaceAll(' ', '.') : '')
`

/**
 * The text on the page whose colour contrast with what is behind it is below WCAG 2's AA minimum (4.5:1, or 3:1 for
 * large text), as `<ratio> <element> "<text>"` lines. The text of disabled buttons is exempt, as WCAG says.
 */
export async function lowContrastText(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {${COLOUR_MATH}
    const low = []
    const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT)
    const checked = new Set()
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
      const element = node.parentElement
      if (!node.textContent.trim() || checked.has(element)) continue
      checked.add(element)
      const style = getComputedStyle(element)
      const box = element.getBoundingClientRect()
      if (!box.width || !box.height || style.visibility === 'hidden' || element.closest('button:disabled')) continue
      let opacity = 1
      for (let e = element; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity)
      const background = behind(element)
      const color = rgba(style.color)
      const text = over([color[0], color[1], color[2], color[3] * opacity], background)
      const size = parseFloat(style.fontSize)
      const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66)
      const ratio = contrast(text, background)
      if (ratio < (large ? 3 : 4.5)) low.push(ratio.toFixed(2) + ' ' + describe(element) + ' "' + node.textContent.trim().slice(0, 60) + '"')
    }
    return low
  })()`)
}

/**
 * The form fields (text inputs and selects) whose border, which is all that shows where a field is, has less than WCAG
 * 2's 3:1 contrast (1.4.11, non-text contrast) with both the field's inside and what is around it, as
 * `<ratio> <element> <name>` lines.
 */
export async function lowContrastFields(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {${COLOUR_MATH}
    const low = []
    for (const field of document.querySelectorAll('input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea')) {
      const style = getComputedStyle(field)
      const box = field.getBoundingClientRect()
      if (!box.width || !box.height || field.disabled || parseFloat(style.borderBottomWidth) === 0) continue
      const around = behind(field.parentElement)
      const inside = over(rgba(style.backgroundColor), around)
      const border = over(rgba(style.borderBottomColor), around)
      const ratio = Math.min(contrast(border, around), contrast(border, inside))
      if (ratio < 3) low.push(ratio.toFixed(2) + ' ' + describe(field) + ' ' + (field.name || field.id))
    }
    return low
  })()`)
}
