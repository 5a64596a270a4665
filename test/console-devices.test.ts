import t from 'tap'
import type { Browser, Locator, Page } from 'playwright-core'
import { WebSocket } from 'ws'
import { launchBrowser, openPage, screenshot, signUp } from './helpers/browser.ts'
import { connectMqtt, connectSensor, http, publish, startService, type Service } from './helpers/service.ts'
import { startPlug } from './helpers/sockets.ts'
import { ManualClock, systemClock } from '../src/clock.ts'

// The console's device pages, the audit view, reconnection, phone width, keyboard and log out,
// in a real browser (Debian's Chromium via playwright-core) against the real service.
// No sleeps: every wait is on what the page shows.

const PASSWORD = 'correct horse battery'
let browser: Browser
t.before(async () => { browser = await launchBrowser(t) })

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
/** Resolves once the locator's whole text is `text` (or matches the pattern). */
const shows = (locator: Locator, text: string | RegExp) =>
  locator.filter({ hasText: typeof text === 'string' ? new RegExp(`^\\s*${escape(text)}\\s*$`) : text }).first().waitFor()

/** Signed up through the console, with a new network open on its devices page. */
async function enter (service: Service, user: string, size: 'desktop' | 'phone' = 'desktop') {
  const { page, errors } = await openPage(browser, service.url + '/', size)
  await signUp(page, user)
  await page.getByLabel('New network').fill(`${user}-home`)
  await page.getByRole('button', { name: 'Create network' }).click()
  await page.getByRole('link', { name: `${user}-home` }).click()
  await page.getByRole('heading', { name: 'Devices' }).waitFor()
  return { page, errors }
}

interface Registered { id: string, username: string, password: string, token: string | null }

/** Register a device with the console's form; its credentials as the box shows them. */
async function register (page: Page, kind: string, fields: Record<string, string>): Promise<Registered> {
  await page.getByLabel('Kind').selectOption({ label: kind })
  for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value)
  await page.getByRole('button', { name: 'Register' }).click()
  const credentials = page.getByRole('region', { name: 'Device credentials' })
  await credentials.waitFor()
  const field = (name: string) => credentials.locator(`[data-field="${name}"]`)
  const href = await credentials.getByRole('link', { name: /^Open the new / }).getAttribute('href')
  return {
    id: decodeURIComponent(href!.replace('#/devices/', '')),
    username: (await field('username').textContent())!,
    password: (await field('password').textContent())!,
    token: await field('token').count() === 0 ? null : await field('token').textContent()
  }
}

const openDevice = async (page: Page, kind: string, name: string | RegExp) => {
  await page.getByRole('link', { name: `Open the new ${kind}` }).click()
  await page.getByRole('heading', { name }).waitFor()
}

t.test('socket: start an instance against the simulated plug, stop it, emergency stop and recover', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await enter(service, 'plugger')
  const topic = `desk_lamp_${process.pid}`
  const socket = await register(page, 'Smart socket (Tasmota)', { Name: 'desk lamp', 'Tasmota topic': topic })
  t.equal(socket.username, topic, "the plug's MQTT username is its topic")

  await startPlug(t, service, { token: '', networkId: '', socketId: socket.id, topic, password: socket.password })
  await openDevice(page, 'socket', /desk lamp/)
  await page.locator('.presence[data-online="true"]').first().waitFor()
  await shows(page.getByTestId('power'), 'OFF')
  await page.getByText('Nothing running.').waitFor()

  await page.getByLabel('Duration (s)').fill('120')
  await page.getByRole('button', { name: 'Start', exact: true }).click()
  await shows(page.getByTestId('power'), 'ON')
  const rows = page.locator('table.instances tbody tr')
  await rows.first().waitFor()
  t.equal(await rows.count(), 1, 'one running instance')
  t.match(await rows.first().locator('td').nth(1).textContent(), /^\d+:\d\d:\d\d$/, 'with its elapsed time')
  await screenshot(page, 'socket-running')

  await rows.first().getByRole('button', { name: 'Stop' }).click()
  await shows(page.getByTestId('power'), 'OFF')
  await page.getByText('Nothing running.').waitFor()
  t.equal(await rows.count(), 0, 'no running instance after Stop')

  const recover = page.getByRole('button', { name: 'Recover' })
  t.ok(await recover.isDisabled(), 'Recover is disabled while not emergency-stopped')
  await page.getByRole('button', { name: 'Emergency stop' }).click()
  const alert = page.getByRole('alert').filter({ hasText: 'Emergency stop: new instances are refused until you recover.' })
  await alert.waitFor()
  await page.getByRole('button', { name: 'Start', exact: true }).click()
  await page.getByRole('status').filter({ hasText: /emergency/i }).first().waitFor()
  t.equal(await rows.count(), 0, 'a start is refused while emergency-stopped')
  await screenshot(page, 'socket')

  await recover.click()
  await alert.waitFor({ state: 'detached' })
  await page.getByRole('status').filter({ hasText: 'recovered: new instances may start' }).waitFor()
  t.ok(await recover.isDisabled(), 'Recover is disabled again')
  t.same(errors, [], 'no script error on the page')
})

t.test('zone: the server clock ticks, a timer counts down, Stop ends it into the history', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { page, errors } = await enter(service, 'gardener')
  await register(page, 'Irrigation zone', { Name: 'tomatoes', 'Timer (seconds)': '30' })
  await openDevice(page, 'zone', /tomatoes/)
  await shows(page.getByTestId('mode'), 'Waiting')
  await page.getByText('Nothing yet.').waitFor()

  const clockText = page.getByTestId('clock')
  clock.advance(1000)
  await page.waitForFunction(() => /\d\d:\d\d:\d\d$/.test(document.querySelector('[data-testid="clock"]')?.textContent ?? ''))
  const first = await clockText.textContent()
  clock.advance(1000)
  await page.waitForFunction(before => document.querySelector('[data-testid="clock"]')?.textContent !== before, first)
  t.not(await clockText.textContent(), first, 'the server clock ticks')

  await page.getByRole('button', { name: 'Timer', exact: true }).click()
  await shows(page.getByTestId('mode'), 'Timer')
  await shows(page.getByTestId('countdown'), '30 s left')
  clock.advance(1000)
  await shows(page.getByTestId('countdown'), '29 s left')
  clock.advance(5000)
  await shows(page.getByTestId('countdown'), '24 s left')
  t.pass('the countdown follows the server clock')
  await screenshot(page, 'zone-timer')

  await page.getByRole('button', { name: 'Stop', exact: true }).click()
  await shows(page.getByTestId('mode'), 'Waiting')
  await page.getByTestId('countdown').waitFor({ state: 'detached' })
  const history = page.locator('table.history tbody tr')
  await history.first().waitFor()
  t.equal(await history.count(), 1, 'the timer run is in the history')
  t.equal(await history.first().locator('td').first().textContent(), 'Timer', 'as a timer run')
  await screenshot(page, 'zone')
  t.same(errors, [], 'no script error on the page')
})

t.test('charger: the widget light follows the state of charge sent over the WebSocket', async t => {
  const service = await startService(t, { clock: systemClock, env: { CHARGER_MAX_RATE: '1000' } })
  const { page, errors } = await enter(service, 'driver')
  const pair = await register(page, 'Charger and widget', { 'Charger id': 'c1234', 'Widget id': 'wABCD' })
  t.ok(pair.token !== null && pair.token.length > 10, 'the WebSocket token is shown')
  await openDevice(page, 'charger', /c1234/)
  const light = page.locator('.light')
  t.equal(await light.getAttribute('data-colour'), 'off', 'no reading yet')

  const charger = new WebSocket(`${service.url.replace('http', 'ws')}/chargers/c1234?token=${encodeURIComponent(pair.token!)}`)
  t.teardown(() => charger.terminate())
  await new Promise((resolve, reject) => { charger.once('open', resolve); charger.once('error', reject) })
  const send = (soc: number) => charger.send(JSON.stringify({ event: 'StateOfCharge', data: { soc } }))

  send(50)
  await page.locator('.light[data-colour="red"]').waitFor()
  await shows(page.getByTestId('charging-status'), 'charging · 50%')
  send(85)
  await page.locator('.light[data-colour="yellow"]').waitFor()
  await shows(page.getByTestId('charging-status'), 'charging80 · 85%')
  send(100)
  await page.locator('.light[data-colour="green"]').waitFor()
  await shows(page.getByTestId('charging-status'), 'charged · 100%')
  await screenshot(page, 'charger')
  t.same(errors, [], 'no script error on the page')
})

t.test('host: system info, processes and the three history charts, live', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await enter(service, 'admin')
  const host = await register(page, 'Host agent', { Name: 'build box' })
  await openDevice(page, 'host', /build box/)
  t.equal(await page.getByText('No report yet.').count(), 2, 'nothing reported yet')

  const agent = await connectMqtt(t, service.mqttUrl, { username: host.username, password: host.password })
  const topic = (channel: string) => `devices/${host.id}/${channel}`
  await publish(agent, topic('system-info'), { os: 'Debian GNU/Linux 13', architecture: 'x86_64', hostname: 'build-box', uptime: 86400 })
  await publish(agent, topic('processes'), {
    top_processes: [{ pid: 101, name: 'node', cpu: 42.5 }, { pid: 202, name: 'postgres', cpu: 7.25 }, { pid: 303, name: 'sshd', cpu: 0.1 }]
  })
  const GiB = 1024 ** 3
  for (let i = 0; i < 4; i++) {
    await publish(agent, topic('metrics'), { cpu_usage: 10 + 20 * i, memory_usage: (2 + i) * GiB, memory_total: 8 * GiB, network_rx: 1000 * i, network_tx: 500 * i })
  }

  const info = page.locator('dl.info')
  await info.getByText('build-box').waitFor()
  t.match(await info.textContent(), /osDebian GNU\/Linux 13/, 'the system info is shown')
  const processRows = page.locator('table.processes tbody tr')
  await processRows.nth(2).waitFor()
  t.same(await page.locator('table.processes thead th').allTextContents(), ['pid', 'name', 'cpu'], 'process columns')
  t.same(await processRows.first().locator('td').allTextContents(), ['101', 'node', '42.5'], 'the top process')
  await page.locator('.chart[data-points="4"]').nth(2).waitFor()
  t.equal(await page.locator('.chart[data-points="4"]').count(), 3, 'three charts of four points each')
  t.same(await page.locator('.chart').evaluateAll(charts => charts.map(c => c.getAttribute('aria-label'))), ['CPU %', 'Memory (MiB)', 'Network (bytes)'])
  t.equal(await page.locator('.chart canvas').count(), 3, 'each chart is drawn')
  await screenshot(page, 'host')
  t.same(errors, [], 'no script error on the page')
})

t.test('audit: the verified hash chain, newest first, filtered by type, live', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await enter(service, 'auditor')
  const cellar = await register(page, 'Sensor', { Name: 'cellar' })
  await page.getByRole('link', { name: 'Networks', exact: true }).click()
  await page.getByLabel('New network').fill('second')
  await page.getByRole('button', { name: 'Create network' }).click()
  await page.getByRole('link', { name: 'second' }).waitFor()

  await page.getByRole('link', { name: 'Audit', exact: true }).click()
  const verification = page.getByTestId('verification')
  await shows(verification, /^Hash chain verified: \d+ events, head [0-9a-f]{16}…$/)
  const count = Number(/verified: (\d+) events/.exec((await verification.textContent())!)![1])
  const rows = page.locator('table.events tbody tr')
  await rows.nth(3).waitFor()
  const positions = (await rows.locator('td:first-child').allTextContents()).map(Number)
  t.ok(count >= positions.length, `the chain holds every listed event (${count} ≥ ${positions.length})`)
  t.ok(positions[0]! > positions.at(-1)!, 'newest first')
  t.same(positions, [...positions].sort((a, b) => b - a), 'in descending order')
  const types = await rows.locator('td:nth-child(4)').allTextContents()
  t.ok(types.includes('SensorRegistered') && types.includes('NetworkCreated'), 'the activity is listed')
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'long identifiers and data wrap within the page')
  await screenshot(page, 'audit')

  // Live: the sensor connects and measures; its events come in at the top, with no reload.
  const feeds: URL[] = []
  page.on('websocket', ws => { const url = new URL(ws.url()); if (url.pathname === '/api/v1/events/ws') feeds.push(url) })
  await page.evaluate(() => { (window as any).auditMarker = true })
  const mqtt = await connectSensor(t, service, { sensorId: cellar.username, password: cellar.password, token: '', userId: '', networkId: '' })
  await publish(mqtt, `measurements/${cellar.username}`, { measurements: [{ revision: 0, timestamp: Date.now() / 1000, value: { temperature: 12 } }] })
  await shows(rows.first().locator('td:nth-child(4)'), 'MeasurementsRecorded')
  const live = (await rows.locator('td:first-child').allTextContents()).map(Number)
  t.same((await rows.locator('td:nth-child(4)').allTextContents()).slice(0, 2), ['MeasurementsRecorded', 'DeviceConnected'], 'the new events, newest first')
  t.same(live.slice(2), positions, 'above the rows shown before')
  const token = (await page.evaluate(() => sessionStorage.getItem('devicelog.token')))!
  const since = (await http(service, 'GET', `/api/v1/events?after=${positions[0]}`, { token })).body.events as Array<{ position: number }>
  t.same(live.slice(0, 2), since.map(e => e.position).reverse(), 'exactly what the feed has after them: none missed')
  t.equal(await page.evaluate(() => (window as any).auditMarker), true, 'the page was not reloaded')
  await screenshot(page, 'audit-live')

  // A dropped connection comes back by itself, from the newest row shown: nothing missed, nothing twice.
  for (const client of service.app.websocketServer.clients) client.terminate()
  await publish(mqtt, `measurements/${cellar.username}`, { measurements: [{ revision: 0, timestamp: Date.now() / 1000, value: { temperature: 12.5 } }] })
  await rows.nth(live.length).waitFor()
  const shown = (await rows.locator('td:first-child').allTextContents()).map(Number)
  const feed = (await http(service, 'GET', `/api/v1/events?order=desc&limit=${shown.length}`, { token })).body.events as Array<{ position: number }>
  t.same(shown, feed.map(e => e.position), 'the rows are the newest of the feed, each once')
  await page.getByText('Connection lost: reconnecting…').waitFor({ state: 'detached' })
  t.equal(feeds.at(-1)?.searchParams.get('after'), String(live[0]), 'it reconnected from the newest row shown')

  await page.getByLabel('Type').fill('NetworkCreated')
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('table.events tbody tr td:nth-child(4)')].map(td => td.textContent)
    return cells.length > 0 && cells.every(type => type === 'NetworkCreated')
  })
  t.equal(await rows.count(), 2, 'only the two NetworkCreated events')
  await screenshot(page, 'audit-filtered')

  // The filtered view is live too: a measurement does not show, a network created elsewhere does.
  await publish(mqtt, `measurements/${cellar.username}`, { measurements: [{ revision: 0, timestamp: Date.now() / 1000, value: { temperature: 13 } }] })
  t.equal((await http(service, 'POST', '/networks', { token, body: { network_name: 'third' } })).status, 201)
  await rows.nth(2).waitFor()
  t.same(await rows.locator('td:nth-child(4)').allTextContents(), ['NetworkCreated', 'NetworkCreated', 'NetworkCreated'], 'only the new NetworkCreated came in, at the top')
  t.equal(await page.evaluate(() => (window as any).auditMarker), true, 'still without a reload')

  // By device: the sensor's own stream only.
  await page.getByLabel('Type').fill('')
  await page.getByLabel('Device').selectOption({ label: 'cellar (sensor)' })
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('table.events tbody tr td:nth-child(3)')].map(td => td.textContent ?? '')
    return cells.length > 0 && cells.every(stream => stream.startsWith('sensor-'))
  })
  t.ok((await rows.locator('td:nth-child(4)').allTextContents()).includes('SensorRegistered'), "the sensor's registration is in its stream")
  t.same(errors, [], 'no script error on the page')
})

t.test('reconnecting: a dropped WebSocket shows the banner, recovers by itself, and updates arrive again', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await enter(service, 'watcher')
  const sensor = await register(page, 'Sensor', { Name: 'attic' })
  await openDevice(page, 'sensor', /attic/)
  const mqtt = await connectSensor(t, service, { sensorId: sensor.username, password: sensor.password, token: '', userId: '', networkId: '' })
  await page.locator('.presence[data-online="true"]').first().waitFor()
  const now = Date.now() / 1000
  const measure = (i: number) => publish(mqtt, `measurements/${sensor.username}`, { measurements: [{ revision: 0, timestamp: now + i, value: { temperature: 20 + i } }] })
  await measure(0)
  await measure(1)
  const count = page.getByTestId('measurement-count')
  await shows(count, '2')

  // Every value the count takes, to catch a measurement counted twice even for a moment.
  await page.evaluate(() => {
    const element = document.querySelector('[data-testid="measurement-count"]')!
    const seen: string[] = (window as any).counts = [element.textContent ?? '']
    new MutationObserver(() => seen.push(element.textContent ?? '')).observe(element, { childList: true, characterData: true, subtree: true })
  })
  const banner = page.getByText('Connection lost: reconnecting…')
  t.equal(await banner.count(), 0, 'no banner while connected')
  const clients = [...service.app.websocketServer.clients]
  t.ok(clients.length >= 2, 'the page holds live connections (presence and sensor)')
  for (const client of clients) client.terminate()
  await banner.waitFor()
  await screenshot(page, 'reconnecting')
  await banner.waitFor({ state: 'detached' })
  t.pass('the banner went away by itself')
  t.ok(service.app.websocketServer.clients.size >= clients.length, 'the console opened its connections again')

  await measure(2)
  await shows(count, '3')
  await page.locator('.chart[data-points="3"]').waitFor()
  const counts = await page.evaluate(() => (window as any).counts as string[])
  t.same(counts.filter((count, i) => count !== counts[i - 1]), ['2', '3'], `a measurement after the reconnect arrives live, and none is counted twice (the count went ${counts.join(' → ')})`)
  await screenshot(page, 'reconnected')
  t.same(errors, [], 'no script error on the page')
})

t.test("phone width: no horizontal overflow; the login form works from the keyboard", async t => {
  const service = await startService(t, { clock: systemClock })
  const user = await http(service, 'POST', '/users', { body: { username: 'thumbs', password: PASSWORD } })
  t.equal(user.status, 201)

  const { page, errors } = await openPage(browser, service.url + '/', 'phone')
  await page.getByLabel('Username').focus()
  await page.keyboard.type('thumbs')
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'password', 'Tab moves to the password')
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { name: 'Networks' }).waitFor()
  t.pass('logged in with the keyboard only')

  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  await page.getByLabel('New network').fill('balcony')
  await page.getByRole('button', { name: 'Create network' }).click()
  await page.getByRole('link', { name: 'balcony' }).click()
  await page.getByRole('heading', { name: 'Devices' }).waitFor()
  await register(page, 'Irrigation zone', { Name: 'a zone with a rather long name for a small screen' })
  t.ok(await overflow() <= 0, 'the network page with its credentials fits a phone')
  await screenshot(page, 'phone-network')

  await openDevice(page, 'zone', /rather long name/)
  await page.getByTestId('clock').filter({ hasText: /\d\d:\d\d:\d\d/ }).waitFor()
  await page.getByRole('button', { name: 'Timer', exact: true }).click()
  await page.getByTestId('countdown').waitFor()
  await page.getByRole('button', { name: 'Stop', exact: true }).click()
  await page.locator('table.history tbody tr').first().waitFor()
  t.ok(await overflow() <= 0, 'the zone page with its history fits a phone')
  await screenshot(page, 'phone-zone')

  await page.getByRole('link', { name: 'Audit', exact: true }).click()
  await page.locator('table.events tbody tr').nth(2).waitFor()
  t.ok(await overflow() <= 0, 'the audit log fits a phone')
  await screenshot(page, 'phone-audit')
  t.same(errors, [], 'no script error on the page')
})

t.test('log out revokes the token and shows the login form', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await openPage(browser, service.url + '/')
  await signUp(page, 'leaver')
  const token = await page.evaluate(() => sessionStorage.getItem('devicelog.token'))
  t.ok(token !== null && token !== '', 'a token is kept for the session')
  t.equal((await http(service, 'GET', '/networks', { token: token! })).status, 200, 'the token works')

  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('button', { name: 'Log in' }).waitFor()
  t.equal(await page.evaluate(() => sessionStorage.getItem('devicelog.token')), null, 'the token is gone from the session')
  t.equal((await http(service, 'GET', '/networks', { token: token! })).status, 401, 'the old token is refused')
  await screenshot(page, 'logged-out')

  await page.reload()
  await page.getByRole('button', { name: 'Log in' }).waitFor()
  t.equal(await page.getByRole('link', { name: 'Audit', exact: true }).count(), 0, 'still logged out after a reload')
  t.same(errors, [], 'no script error on the page')
})
