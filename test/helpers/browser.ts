import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { root } from './process.ts'
import type { Teardown } from './service.ts'

/** Debian's Chromium (`apt-get install chromium`); `.ci/run` installs it when missing. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const ARTIFACTS = join(root, 'test', 'artifacts')

/** Headless Chromium, closed at teardown. Flags keep it off this machine's closed network. */
export async function launchBrowser (t: Teardown): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`)
  if (!existsSync(join(root, 'dist', 'web', 'index.html'))) throw new Error('the console is not built: npm run build')
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
  })
  t.teardown(() => browser.close())
  return browser
}

/** A page at a desktop's or a phone's width, with every console error collected. */
export async function openPage (browser: Browser, url: string, size: 'desktop' | 'phone' = 'desktop'): Promise<{ page: Page, errors: string[] }> {
  const context = await browser.newContext({ viewport: size === 'phone' ? { width: 390, height: 844 } : { width: 1280, height: 900 } })
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', error => errors.push(error.message))
  await page.goto(url)
  return { page, errors }
}

/** test/artifacts/<name>.png (ignored by git): look at them after a run. */
export async function screenshot (page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

/** Sign up through the console's own form; resolves once the networks page shows. */
export async function signUp (page: Page, username: string, password = 'correct horse battery'): Promise<void> {
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.getByRole('heading', { name: 'Networks' }).waitFor()
}

/** The console at `<serviceUrl>/#/<route>`, logged in with `token` (as the login form would leave it). */
export async function openAs (browser: Browser, serviceUrl: string, token: string, route: string): Promise<{ page: Page, errors: string[] }> {
  const { page, errors } = await openPage(browser, serviceUrl + '/')
  await page.getByRole('button', { name: 'Log in' }).waitFor()
  await page.evaluate(value => sessionStorage.setItem('devicelog.token', value), token)
  await page.goto(`${serviceUrl}/#/${route}`)
  await page.reload()
  return { page, errors }
}
