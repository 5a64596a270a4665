import t from 'tap'
import Database from 'better-sqlite3'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, openAs as openAsUser, screenshot, signUp } from './helpers/browser.ts'
import { connectSensor, createSensor, http, publish, startService, type Service } from './helpers/service.ts'
import { createSocket, startPlug } from './helpers/sockets.ts'
import { ManualClock, systemClock } from '../src/clock.ts'
import { localIso } from '../src/irrigation/views.ts'

// Console behaviour a review found untested, in a real browser (Debian's Chromium via
// playwright-core) against the real service. No sleeps: every wait is on what the page shows.

let browser: Browser
t.before(async () => { browser = await launchBrowser(t) })

const openAs = (service: Service, token: string, route: string) => openAsUser(browser, service.url, token, route)

/** The cells' texts of each row of `table.<name>`. */
const cells = (page: Page, table: string) =>
  page.locator(`table.${table} tbody tr`).evaluateAll(rows => rows.map(r => [...(r as HTMLTableRowElement).cells].map(c => c.textContent ?? '')))
/** Resolves once a row of `table.<name>` starts with these cells. */
const rowShows = (page: Page, table: string, expected: string[]) => page.waitForFunction(([table, expected]) =>
  [...document.querySelectorAll<HTMLTableRowElement>(`table.${table} tbody tr`)]
    .some(r => expected.every((text, i) => r.cells[i]?.textContent === text)), [table, expected] as const)
/** The server's local time as the zone page writes it. */
const zoneTime = (ms: number) => localIso(ms).replace('T', ' ').replace(/\.\d+$/, '')
/** A user with a network, through the public API. */
async function account (service: Service, name: string) {
  const user = await http(service, 'POST', '/users', { body: { username: name, password: 'correct horse battery' } })
  const token = user.body.access_token as string
  const network = await http(service, 'POST', '/networks', { token, body: { network_name: `${name}-net` } })
  return { token, networkId: network.body.network_identifier as string }
}
async function createZone (service: Service, name: string) {
  const { token, networkId } = await account(service, name)
  const zone = await http(service, 'POST', '/api/v1/zones', { token, body: { name: `${name} bed`, network_identifier: networkId, timer_seconds: 30 } })
  if (zone.status !== 201) throw new Error(`POST /api/v1/zones: ${zone.status}`)
  return { token, networkId, zoneId: zone.body.zone_identifier as string }
}

t.test('sensor: each severity has its own style; aggregates by (severity, subject), updated live', async t => {
  const service = await startService(t, { clock: systemClock })
  const sensor = await createSensor(service)
  const mqtt = await connectSensor(t, service, sensor)
  const now = Math.floor(Date.now() / 1000)
  const log = (i: number, severity: string, subject: string) => ({ revision: 0, timestamp: now - 100 + i, severity, subject, details: `${severity} ${i}` })
  await publish(mqtt, `log-messages/${sensor.sensorId}`, {
    log_messages: [log(0, 'debug', 'boot'), log(1, 'info', 'wifi'), log(2, 'warning', 'battery'), log(3, 'error', 'pump'),
      log(4, 'error', 'pump'), log(5, 'warning', 'battery'), log(6, 'warning', 'pump'), log(7, 'error', 'pump'), log(8, 'info', 'wifi')]
  })

  const { page, errors } = await openAs(service, sensor.token, `devices/${sensor.sensorId}`)
  await page.locator('table.logs tbody tr').nth(8).waitFor()
  const styleOf = (severity: string) => page.locator(`table.logs tbody tr.severity-${severity}`).first().evaluate(row => ({
    background: getComputedStyle(row).backgroundColor, colour: getComputedStyle(row.querySelector('td')!).color, text: (row as HTMLTableRowElement).cells[1]!.textContent
  }))
  const styles = {
    debug: await styleOf('debug'), info: await styleOf('info'), warning: await styleOf('warning'), error: await styleOf('error')
  }
  const clear = 'rgba(0, 0, 0, 0)'
  t.same(styles.debug, { background: clear, colour: 'rgb(100, 116, 139)', text: 'debug' }, 'debug: grey text')
  t.same(styles.info, { background: clear, colour: 'rgb(31, 41, 55)', text: 'info' }, 'info: plain')
  t.same(styles.warning, { background: 'rgb(254, 243, 199)', colour: 'rgb(31, 41, 55)', text: 'warning' }, 'warning: amber background')
  t.same(styles.error, { background: 'rgb(254, 226, 226)', colour: 'rgb(153, 27, 27)', text: 'error' }, 'error: red background, dark red text')
  const looks = Object.values(styles).map(s => `${s.background} ${s.colour}`)
  t.equal(new Set(looks).size, 4, 'the four severities look different')

  // Only warnings and errors, one row per (severity, subject).
  await rowShows(page, 'aggregates', ['error', 'pump', '3'])
  const sorted = async () => (await cells(page, 'aggregates')).map(r => r.slice(0, 3).join(' ')).sort()
  t.same(await sorted(), ['error pump 3', 'warning battery 2', 'warning pump 1'], 'grouped by severity and subject')
  t.equal(await page.locator('table.aggregates tbody tr.severity-error').count(), 1, 'the error aggregate has the error style')

  await page.evaluate(() => { (window as any).marker = true })
  await publish(mqtt, `log-messages/${sensor.sensorId}`, { log_messages: [log(9, 'warning', 'battery'), log(10, 'warning', 'door'), log(11, 'debug', 'boot')] })
  await rowShows(page, 'aggregates', ['warning', 'battery', '3'])
  await rowShows(page, 'aggregates', ['warning', 'door', '1'])
  t.same(await sorted(), ['error pump 3', 'warning battery 3', 'warning door 1', 'warning pump 1'], 'the new warnings counted live')
  t.equal(await page.evaluate(() => (window as any).marker), true, 'without a reload')
  await screenshot(page, 'coverage-sensor-severities')
  t.same(errors, [], 'no script error on the page')
})

t.test("socket: energy today and an instance's energy from the plug's readings", async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  // 6 kW: a minute on adds 0.1 kWh to Total and Today.
  await startPlug(t, service, socket, { watts: 6000 })
  const { page, errors } = await openAs(service, socket.token, `devices/${socket.socketId}`)
  const today = page.getByTestId('energy-today')
  await today.filter({ hasText: /^0\.000 kWh$/ }).waitFor()
  await page.getByLabel('Duration (s)').fill('7200')
  await page.getByRole('button', { name: 'Start', exact: true }).click()
  const energy = page.locator('table.instances tbody tr td').nth(2)
  // The reading at its start (STATUS 10): nothing counted yet.
  await energy.filter({ hasText: /^0\.0000 kWh$/ }).waitFor()

  clock.advance(60_000)
  await today.filter({ hasText: /^0\.100 kWh$/ }).waitFor()
  await energy.filter({ hasText: /^0\.1000 kWh$/ }).waitFor()
  t.equal(await today.textContent(), '0.100 kWh', "today's energy as the plug reports it")
  t.equal(await energy.textContent(), '0.1000 kWh', "the instance's energy since its start")
  await screenshot(page, 'coverage-socket-energy')
  t.same(errors, [], 'no script error on the page')
})

t.test('zone: Manual and its since time from the server clock, Stop into the history; a timer with since and to', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { token, zoneId } = await createZone(service, 'grower')
  const { page, errors } = await openAs(service, token, `devices/${zoneId}`)
  const mode = page.getByTestId('mode')
  await mode.filter({ hasText: /^Waiting$/ }).waitFor()
  const span = page.locator('p', { hasText: /^since / })

  clock.advance(1000)
  const manualAt = clock.now()
  await page.getByRole('button', { name: 'Manual', exact: true }).click()
  await mode.filter({ hasText: /^Manual$/ }).waitFor()
  t.equal(await span.textContent(), `since ${zoneTime(manualAt)}`, 'manual since the server clock, no end')
  t.equal(await mode.evaluate(e => getComputedStyle(e).color), 'rgb(22, 163, 74)', 'manual mode in green')

  clock.advance(45_000)
  await page.getByRole('button', { name: 'Stop', exact: true }).click()
  await mode.filter({ hasText: /^Waiting$/ }).waitFor()
  await span.waitFor({ state: 'detached' })
  await rowShows(page, 'history', ['Manual'])
  t.same(await cells(page, 'history'), [['Manual', zoneTime(manualAt), zoneTime(manualAt + 45_000), '—']], 'the manual run, ended by Stop, with no `to`')

  clock.advance(5000)
  const timerAt = clock.now()
  await page.getByRole('button', { name: 'Timer', exact: true }).click()
  await mode.filter({ hasText: /^Timer$/ }).waitFor()
  t.equal(await span.textContent(), `since ${zoneTime(timerAt)} until ${zoneTime(timerAt + 30_000)}`, 'the timer shows since and to')
  await screenshot(page, 'coverage-zone-timer')
  clock.advance(30_000)
  await mode.filter({ hasText: /^Waiting$/ }).waitFor()
  await rowShows(page, 'history', ['Timer'])
  t.same((await cells(page, 'history'))[0], ['Timer', zoneTime(timerAt), zoneTime(timerAt + 30_000), zoneTime(timerAt + 30_000)], 'the completed timer, with its to')
  t.equal((await cells(page, 'history')).length, 2, 'both runs in the history')
  t.same(errors, [], 'no script error on the page')
})

t.test('network page: the online dot and last seen follow connects and disconnects live; the networks list', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const sensor = await createSensor(service)
  const { page, errors } = await openAs(service, sensor.token, `networks/${sensor.networkId}`)
  const presence = page.locator(`table.devices tr[data-device="${sensor.sensorId}"] .presence`)
  const local = (ms: number) => page.evaluate(iso => new Date(iso).toLocaleString(), new Date(ms).toISOString())
  await presence.filter({ hasText: 'offline · last seen —' }).waitFor()
  t.equal(await presence.getAttribute('data-online'), 'false', 'offline before it connects')
  await page.evaluate(() => { (window as any).marker = true })

  clock.advance(1000)
  const connectedAt = clock.now()
  const mqtt = await connectSensor(t, service, sensor)
  await page.locator(`tr[data-device="${sensor.sensorId}"] .presence[data-online="true"]`).waitFor()
  t.equal(await presence.textContent(), `online · last seen ${await local(connectedAt)}`, 'online, seen when it connected')
  t.equal(await presence.locator('.dot').evaluate(d => `${d.className} ${getComputedStyle(d).backgroundColor}`), 'dot on rgb(22, 163, 74)', 'a green dot')
  await screenshot(page, 'coverage-network-online')

  clock.advance(90_000)
  await mqtt.endAsync()
  await page.locator(`tr[data-device="${sensor.sensorId}"] .presence[data-online="false"]`).waitFor()
  t.equal(await presence.textContent(), `offline · last seen ${await local(connectedAt + 90_000)}`, 'offline, seen when it left')
  t.equal(await presence.locator('.dot').evaluate(d => `${d.className} ${getComputedStyle(d).backgroundColor}`), 'dot off rgb(148, 163, 184)', 'a grey dot')
  t.equal(await page.evaluate(() => (window as any).marker), true, 'the page was not reloaded')

  await http(service, 'POST', '/networks', { token: sensor.token, body: { network_name: 'orchard' } })
  await page.getByRole('link', { name: 'Networks', exact: true }).click()
  await page.getByRole('link', { name: 'orchard' }).waitFor()
  const listed = await page.locator('ul.cards li a').allTextContents()
  t.equal(listed.length, 2, 'both networks, as links')
  t.ok(listed.includes('orchard') && listed.some(n => /^network-\d+$/.test(n)), `the networks are listed (${listed.join(', ')})`)
  await screenshot(page, 'networks')
  t.same(errors, [], 'no script error on the page')
})

t.test('audit: a tampered row shows the broken hash chain and its position', async t => {
  const service = await startService(t, { clock: systemClock })
  const sensor = await createSensor(service)
  const mqtt = await connectSensor(t, service, sensor)
  await publish(mqtt, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: Date.now() / 1000, value: { t: 1 } }] })
  const { page, errors } = await openAs(service, sensor.token, 'audit')
  const verification = page.getByTestId('verification')
  await verification.filter({ hasText: /^Hash chain verified: \d+ events/ }).waitFor()

  // Someone edits history in the file, past the append-only trigger.
  const db = new Database(service.databasePath)
  db.exec('DROP TRIGGER events_are_append_only_update')
  const position = db.prepare(`SELECT position FROM event_rows WHERE type = 'MeasurementsRecorded'`).pluck().get() as number
  db.prepare(`UPDATE events SET data = replace(data, '"t":1', '"t":100') WHERE position = ?`).run(position)
  db.close()

  await page.reload()
  const broken = `Hash chain broken at position ${position}: hash does not match the row and its predecessor`
  await verification.filter({ hasText: broken }).waitFor()
  t.equal(await verification.textContent(), broken, 'the first edited row is named')
  t.equal(await verification.evaluate(e => `${e.className} ${getComputedStyle(e).color}`), 'error rgb(185, 28, 28)', 'in red')
  await screenshot(page, 'coverage-audit-broken')
  t.same(errors, [], 'no script error on the page')
})

t.test('keyboard: Tab reaches Manual, Timer, Stop in order and Enter/Space press them; every control is named', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { token, networkId, zoneId } = await createZone(service, 'typist')
  const { page, errors } = await openAs(service, token, `devices/${zoneId}`)
  const mode = page.getByTestId('mode')
  await mode.filter({ hasText: /^Waiting$/ }).waitFor()
  const focused = () => page.evaluate(() => document.activeElement?.textContent ?? '')
  await page.getByRole('link', { name: '← network' }).focus()
  const order: string[] = []
  for (let i = 0; i < 3; i++) { await page.keyboard.press('Tab'); order.push(await focused()) }
  t.same(order, ['Manual', 'Timer', 'Stop'], 'Tab goes Manual, Timer, Stop')
  t.equal(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle + ' ' + getComputedStyle(document.activeElement!).outlineColor),
    'solid rgb(245, 158, 11)', 'the focused button shows its focus ring')

  await page.keyboard.press('Shift+Tab')
  await page.keyboard.press('Shift+Tab')
  t.equal(await focused(), 'Manual')
  await page.keyboard.press('Enter')
  await mode.filter({ hasText: /^Manual$/ }).waitFor()
  t.pass('Enter pressed Manual')
  await page.keyboard.press('Tab')
  await page.keyboard.press('Tab')
  t.equal(await focused(), 'Stop')
  await page.keyboard.press('Space')
  await mode.filter({ hasText: /^Waiting$/ }).waitFor()
  await rowShows(page, 'history', ['Manual'])
  t.pass('Space pressed Stop')

  // Chromium's own accessibility tree: every button and field has a name.
  const sensor = await createSensor(service, { token, networkId })
  const mqtt = await connectSensor(t, service, sensor)
  await publish(mqtt, `log-messages/${sensor.sensorId}`, { log_messages: [{ revision: 0, timestamp: 1767225600, severity: 'info', subject: 'hello', details: null }] })
  const socket = await createSocket(service, { token: sensor.token, networkId: sensor.networkId })
  await startPlug(t, service, socket)
  t.equal((await http(service, 'POST', `/api/sockets/${socket.socketId}/start-wait-stop`, { token: sensor.token, body: { duration: 600 } })).status, 200)
  const controls = ['button', 'textbox', 'spinbutton', 'combobox', 'checkbox', 'radio', 'slider', 'searchbox', 'listbox']
  const named = async (route: string, ready: string) => {
    await page.goto(`${service.url}/#/${route}`)
    await page.locator(ready).first().waitFor()
    const cdp = await page.context().newCDPSession(page)
    const { nodes } = await cdp.send('Accessibility.getFullAXTree') as { nodes: Array<{ ignored: boolean, role?: { value: string }, name?: { value: string } }> }
    await cdp.detach()
    const found = nodes.filter(n => !n.ignored && controls.includes(n.role?.value ?? ''))
    const inDom = await page.locator('button, input, textarea, select').count()
    // (At least: a date-and-time field is several spinbuttons in Chromium's tree, one per part.)
    t.ok(found.length >= inDom, `${route}: each of the ${inDom} controls is in the accessibility tree`)
    t.same(found.filter(n => (n.name?.value ?? '').trim() === '').map(n => n.role?.value), [], `${route}: no unnamed control`)
    return found.map(n => n.name?.value)
  }
  const sensorNames = await named(`devices/${sensor.sensorId}`, 'table.logs tbody tr')
  for (const name of ['Older', 'Newer', 'Latest', 'New configuration (JSON)', 'Push configuration']) t.ok(sensorNames.includes(name), `sensor page: ${name}`)
  const socketNames = await named(`devices/${socket.socketId}`, 'table.instances tbody tr')
  for (const name of ['Emergency stop', 'Recover', 'Duration (s)', 'Start']) t.ok(socketNames.includes(name), `socket page: ${name}`)
  t.ok(socketNames.some(n => n?.startsWith('Stop instance started ')), "socket page: the instance's Stop")
  t.same(errors, [], 'no script error on the page')
})

t.test('no CDN: logging in and every page kind ask nothing of any other origin', async t => {
  const service = await startService(t, { clock: systemClock })
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  t.teardown(() => context.close())
  const origin = new URL(service.url).origin
  const own: string[] = []
  const elsewhere: string[] = []
  await context.route('**/*', route => {
    const url = route.request().url()
    if (new URL(url).origin === origin) { own.push(url); return route.continue() }
    elsewhere.push(url)
    return route.abort('blockedbyclient')
  })
  const sockets: string[] = []
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', error => errors.push(error.message))
  page.on('websocket', ws => sockets.push(ws.url()))
  await page.goto(service.url + '/')
  await signUp(page, 'offline')
  const token = (await page.evaluate(() => sessionStorage.getItem('devicelog.token')))!

  const sensor = await createSensor(service, { token })
  const networkId = sensor.networkId
  const mqtt = await connectSensor(t, service, sensor)
  const now = Date.now() / 1000
  await publish(mqtt, `measurements/${sensor.sensorId}`, { measurements: [0, 1].map(i => ({ revision: 0, timestamp: now + i, value: { temperature: 20 + i } })) })
  const socket = await createSocket(service, { token, networkId })
  await startPlug(t, service, socket)
  const zone = await http(service, 'POST', '/api/v1/zones', { token, body: { name: 'herbs', network_identifier: networkId, timer_seconds: 10 } })
  const charger = await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: 'c9001', widget_id: 'w9001', network_identifier: networkId } })
  const host = await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'nas', kind: 'host', network_identifier: networkId } })
  t.same([zone.status, charger.status, host.status], [201, 201, 201], 'one device of each kind')

  const visit = async (route: string, ready: string) => {
    // A full load of each page, not only a change of route.
    await page.goto(`${service.url}/#/${route}`)
    await page.reload()
    await page.locator(ready).first().waitFor()
  }
  await visit('', 'ul.cards li')
  await visit(`networks/${networkId}`, `tr[data-device="${host.body.id}"]`)
  await visit(`devices/${sensor.sensorId}`, '.chart[data-points="2"] canvas')
  await visit(`devices/${socket.socketId}`, '[data-testid="power"]')
  await visit(`devices/${zone.body.zone_identifier}`, '[data-testid="mode"]')
  await visit('devices/c9001', '.light')
  await visit(`devices/${host.body.id}`, 'h1:has-text("nas")')
  await visit('audit', 'table.events tbody tr')
  await screenshot(page, 'coverage-no-cdn-audit')

  t.same(elsewhere, [], 'no request left the service\'s origin')
  t.ok(own.some(u => u.includes('/assets/')) && own.some(u => u.endsWith('/networks')), `the console's own requests were seen (${own.length})`)
  t.ok(sockets.length > 0, 'live pages opened WebSockets')
  t.same(sockets.filter(u => new URL(u).host !== new URL(service.url).host), [], 'every WebSocket to the service itself')
  // The blocker does see a request elsewhere: the zero above is not for want of looking.
  await page.evaluate(() => fetch('http://cdn.invalid/probe.js').catch(() => undefined))
  t.same(elsewhere, ['http://cdn.invalid/probe.js'], 'an off-origin request is caught and aborted')
  t.same(errors, [], 'no script error on the page')
})
