import t from 'tap'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, openAs as openAsUser, openPage, screenshot, signUp } from './helpers/browser.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, type Service } from './helpers/service.ts'
import { committed, createSocket, startPlug } from './helpers/sockets.ts'
import { ManualClock, systemClock } from '../src/clock.ts'

// Fixes from a review of the console, each in a real browser (Debian's Chromium via
// playwright-core) against the real service. No sleeps: every wait is on what the page shows.

let browser: Browser
t.before(async () => { browser = await launchBrowser(t) })

const openAs = (service: Service, token: string, route: string) => openAsUser(browser, service.url, token, route)

const rowsText = (page: Page, table: string) => page.locator(`table.${table} tbody tr`).allTextContents()

t.test("socket: elapsed times follow the service's clock, not the browser's; each Stop is named by its instance", async t => {
  // The manual clock starts on 2026-01-01, far from the browser's clock.
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  await startPlug(t, service, socket)
  const start = async () => {
    const started = await http(service, 'POST', `/api/sockets/${socket.socketId}/start-wait-stop`, { token: socket.token, body: { duration: 7200 } })
    t.equal(started.status, 200, 'an instance started')
    return started.body.instance.id as string
  }
  const first = await start()
  clock.advance(60_000)
  const second = await start()
  clock.advance(3_540_000)

  const { page, errors } = await openAs(service, socket.token, `devices/${socket.socketId}`)
  const elapsedOf = (id: string) => page.locator(`tr[data-instance="${id}"] td`).nth(1)
  await elapsedOf(first).waitFor()
  // The page ticks by itself from the last status; a slow run may add a few real seconds.
  t.match(await elapsedOf(first).textContent(), /^1:00:0\d$/, 'an hour since the first instance started, by the service clock')
  t.match(await elapsedOf(second).textContent(), /^0:59:0\d$/, 'fifty-nine minutes since the second')

  await page.getByRole('columnheader', { name: 'Actions' }).waitFor()
  t.pass("the Stop buttons' column has a name")
  const stops = page.getByRole('button', { name: /^Stop instance started / })
  t.equal(await stops.count(), 2, 'one Stop per instance')
  const names = await stops.evaluateAll(buttons => buttons.map(b => b.getAttribute('aria-label')))
  t.equal(new Set(names).size, 2, `each Stop has its own name (${names.join(', ')})`)
  const secondName = await page.locator(`tr[data-instance="${second}"] button`).getAttribute('aria-label')
  await screenshot(page, 'fixes-socket-elapsed')

  await page.getByRole('button', { name: secondName!, exact: true }).click()
  await page.locator(`tr[data-instance="${second}"]`).waitFor({ state: 'detached' })
  t.equal(await page.locator('table.instances tbody tr').count(), 1, 'the named instance stopped, the other runs on')
  t.match(await elapsedOf(first).textContent(), /^1:00:\d\d$/, 'still by the service clock after the refresh')
  t.same(errors, [], 'no script error on the page')
})

t.test('sensor logs: paging past the oldest or newest page keeps the page and disables that direction', async t => {
  const service = await startService(t, { clock: systemClock })
  const sensor = await createSensor(service)
  const mqtt = await connectSensor(t, service, sensor)
  const base = Math.floor(Date.now() / 1000) - 1000
  // 70 logs (more than a page of 64), in batches so a subscription's snapshot repeats only the last ten.
  for (let batch = 0; batch < 7; batch++) {
    const log_messages = Array.from({ length: 10 }, (_, j) => batch * 10 + j).map(i => ({ revision: 0, timestamp: base + i, severity: 'info', subject: `log-${i}`, details: null }))
    await publish(mqtt, `log-messages/${sensor.sensorId}`, { log_messages })
  }

  const { page, errors } = await openAs(service, sensor.token, `devices/${sensor.sensorId}`)
  const rows = page.locator('table.logs tbody tr')
  const row = (i: number) => rows.filter({ hasText: new RegExp(`log-${i}(?!\\d)`) })
  const older = page.getByRole('button', { name: 'Older', exact: true })
  const newer = page.getByRole('button', { name: 'Newer', exact: true })
  const disabled = (name: string) => page.locator('button:disabled', { hasText: new RegExp(`^${name}$`) }).waitFor()
  const enabled = (name: string) => page.locator('button:enabled', { hasText: new RegExp(`^${name}$`) }).waitFor()

  await row(69).waitFor()
  await row(6).waitFor()
  t.equal(await rows.count(), 64, 'the newest page: logs 6 to 69')

  await older.click()
  await row(0).waitFor()
  await row(69).waitFor({ state: 'detached' })
  t.equal(await rows.count(), 6, 'the oldest page: logs 0 to 5')
  const oldest = await rowsText(page, 'logs')

  await older.click()
  await disabled('Older')
  t.same(await rowsText(page, 'logs'), oldest, 'nothing older: the oldest page stays')
  t.ok(await newer.isEnabled(), 'Newer still works')
  await screenshot(page, 'fixes-sensor-oldest')

  await newer.click()
  await row(69).waitFor()
  await enabled('Older')
  t.equal(await rows.count(), 64, 'back to logs 6 to 69')
  const newest = await rowsText(page, 'logs')

  await newer.click()
  await disabled('Newer')
  t.same(await rowsText(page, 'logs'), newest, 'nothing newer: the newest page stays')
  t.ok(await older.isEnabled(), 'Older still works')

  await page.getByRole('button', { name: 'Latest', exact: true }).click()
  await enabled('Newer')
  t.equal(await rows.count(), 64, 'Latest shows the newest page again')
  t.same(errors, [], 'no script error on the page')
})

t.test('sensor: an acknowledgement with an absurd timestamp (microseconds) does not blank the page', async t => {
  const service = await startService(t, { clock: systemClock })
  const sensor = await createSensor(service)
  const { page, errors } = await openAs(service, sensor.token, `devices/${sensor.sensorId}`)
  await page.getByText('Revision 0: not acknowledged yet').waitFor()

  const mqtt = await connectSensor(t, service, sensor)
  const acknowledged = committed(service, e => e.type === 'ConfigurationAcknowledged')
  const microseconds = 1.7e15
  await publish(mqtt, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 0, timestamp: microseconds, success: true }] })
  t.equal(((await acknowledged).data as { acknowledged_at: number }).acknowledged_at, microseconds, 'the service took the timestamp as sent')
  await page.getByTestId('configuration-state').filter({ hasText: `Revision 0: acknowledged invalid time (${microseconds})` }).waitFor()
  t.ok(await page.getByRole('heading', { name: 'Measurements' }).isVisible(), 'the rest of the page is still there')
  await screenshot(page, 'fixes-sensor-absurd-timestamp')
  t.same(errors, [], 'no script error on the page')
})

t.test('a revoked token: the refused reconnect logs out to the login form instead of reconnecting forever', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await openPage(browser, service.url + '/')
  await signUp(page, 'revoked')
  const token = (await page.evaluate(() => sessionStorage.getItem('devicelog.token')))!
  const sensor = await createSensor(service, { token })
  await page.evaluate(id => { location.hash = `#/devices/${id}` }, sensor.sensorId)
  await page.getByRole('heading', { name: /sensor-/ }).waitFor()
  await page.getByText('not acknowledged yet').waitFor()
  t.ok(service.app.websocketServer.clients.size >= 1, 'the page is live')

  t.equal((await http(service, 'DELETE', '/authentication', { token })).status, 204, 'the token is revoked elsewhere')
  for (const client of service.app.websocketServer.clients) client.terminate()
  await page.getByRole('button', { name: 'Log in' }).waitFor()
  t.equal(await page.evaluate(() => sessionStorage.getItem('devicelog.token')), null, 'the dead token is gone from the session')
  t.equal(await page.getByText('Connection lost: reconnecting…').count(), 0, 'no reconnecting banner')
  await screenshot(page, 'fixes-revoked')
  t.same(errors, [], 'no script error on the page')
})

t.test('sign up goes through the form\'s checks (required, at least 8 characters)', async t => {
  const service = await startService(t, { clock: systemClock })
  const { page, errors } = await openPage(browser, service.url + '/')
  const signUps: string[] = []
  page.on('request', request => { if (request.method() === 'POST' && new URL(request.url()).pathname === '/users') signUps.push(request.postData() ?? '') })
  const signUpButton = page.getByRole('button', { name: 'Sign up' })

  await signUpButton.click()
  t.equal(await page.locator('input[name="username"]:invalid').count(), 1, 'the empty username is flagged')
  await page.getByLabel('Username').fill('checked')
  await page.getByLabel('Password').focus()
  await page.keyboard.type('short')
  await signUpButton.click()
  t.equal(await page.locator('input[name="password"]:invalid').count(), 1, 'the short password is flagged')
  await page.getByLabel('Password').fill('')
  await page.keyboard.type('correct horse battery')
  await signUpButton.click()
  await page.getByRole('heading', { name: 'Networks' }).waitFor()
  t.equal(signUps.length, 1, `only the valid sign-up reached the service (${signUps.join(' | ')})`)
  t.same(errors, [], 'no script error on the page')
})

t.test('host: system info entries keep their elements when an entry is added before them (keyed)', async t => {
  const service = await startService(t, { clock: systemClock })
  const sensor = await createSensor(service)
  const host = await http(service, 'POST', '/api/v1/devices', { token: sensor.token, body: { name: 'keyed box', kind: 'host', network_identifier: sensor.networkId } })
  t.equal(host.status, 201)
  const agent = await connectMqtt(t, service.mqttUrl, { username: host.body.mqtt.username, password: host.body.mqtt.password })
  const topic = `devices/${host.body.id}/system-info`
  // The service keeps its schema's order: os, architecture, uptime, hostname, ...
  await publish(agent, topic, { os: 'Debian GNU/Linux 13', hostname: 'keyed-box' })

  const { page, errors } = await openAs(service, sensor.token, `devices/${host.body.id}`)
  const term = (name: string) => page.locator('dl.info dt', { hasText: new RegExp(`^${name}$`) })
  await term('hostname').waitFor()
  await term('hostname').evaluate(dt => { (dt as any).marked = true })

  await publish(agent, topic, { os: 'Debian GNU/Linux 13', architecture: 'x86_64', hostname: 'keyed-box' })
  await term('architecture').waitFor()
  t.same(await page.locator('dl.info dt').allTextContents(), ['os', 'architecture', 'hostname'], 'architecture comes in before hostname')
  t.equal(await term('hostname').evaluate(dt => (dt as any).marked === true), true, "the hostname's term is the same element, moved")
  t.same(errors, [], 'no script error on the page')
})
