import t from 'tap'
import type { Page, WebSocket } from 'playwright-core'
import { launchBrowser, openAs, screenshot } from './helpers/browser.ts'
import { connectMqtt, createSensor, http, publish, startService } from './helpers/service.ts'
import { createSocket, startPlug } from './helpers/sockets.ts'
import { ManualClock } from '../src/clock.ts'

// The past in the console: a device's page as of a moment (GET /api/v1/devices/<id>/state), in a
// real browser (Debian's Chromium via playwright-core) against the real service. No sleeps: every
// wait is on what the page shows or on its sockets' events.

/** An instant as the page's datetime-local input takes it: the browser's local time, to the second. */
// (No named function inside: tsx keeps names with a helper, `__name`, that the page does not have.)
const localValue = (page: Page, iso: string) => page.evaluate(value => {
  const d = new Date(value)
  const [month, day, hours, minutes, seconds] = [d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()]
    .map(n => String(n).padStart(2, '0'))
  return `${d.getFullYear()}-${month}-${day}T${hours}:${minutes}:${seconds}`
}, iso)

t.test('a sensor page as of an earlier moment shows the earlier configuration; the audit view links each event to the state after it', async t => {
  // The manual clock starts at 2026-01-01T00:00:00Z: the registration is then, the revision a minute later.
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const sensor = await createSensor(service, { configuration: { interval: 10, unit: 'celsius' } })
  clock.advance(60_000)
  const revised = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'greenhouse', network_identifier: sensor.networkId, configuration: { interval: 20, unit: 'kelvin' } }
  })
  t.equal(revised.body.revision, 1, 'the configuration was revised')
  const browser = await launchBrowser(t)

  // Opened before the registration (position 0), then now: every live socket of the page is seen opening.
  const { page, errors } = await openAs(browser, service.url, sensor.token, `devices/${sensor.sensorId}?position=0`)
  const configurationState = page.getByTestId('configuration-state')
  const banner = page.getByTestId('as-of-banner')
  await page.getByTestId('not-registered').waitFor()
  await banner.getByText('(before its first event)').waitFor()
  t.pass('before its registration the page says so')
  const sockets: WebSocket[] = []
  page.on('websocket', socket => sockets.push(socket))
  await page.getByRole('button', { name: 'Now', exact: true }).click()
  await configurationState.getByText('Revision 1: not acknowledged yet').waitFor()
  t.equal(await banner.count(), 0, 'now: no banner')

  await page.getByLabel('As of').fill(await localValue(page, '2026-01-01T00:00:30Z'))
  await page.getByRole('button', { name: 'Show', exact: true }).click()
  await banner.waitFor()
  await configurationState.getByText('Revision 0: not acknowledged yet').waitFor()
  t.pass('as of 00:00:30 the page shows revision 0')
  const configuration = JSON.parse(await page.getByTestId('configuration').textContent() ?? 'null')
  t.same(configuration, { interval: 10, unit: 'celsius' }, 'with the configuration it had then')
  t.match(await banner.textContent(), /Live updates are paused/, 'the banner says the page is not live')
  const shown = await page.evaluate(() => new Date('2026-01-01T00:00:30.999Z').toLocaleString())
  t.ok((await banner.textContent())?.includes(`as of ${shown}`), `and which moment it shows (${shown})`)
  t.match(await page.evaluate(() => location.hash), /\?at=2026-01-01T00%3A00%3A30\.999Z$/, 'the moment is in the address (the end of the chosen second)')
  t.equal(await page.getByRole('button', { name: 'Push configuration' }).count(), 0, 'the past is read-only')
  await Promise.all(sockets.map(socket => socket.isClosed() ? undefined : socket.waitForEvent('close')))
  t.ok(sockets.length > 0, `every live socket of the page (${sockets.length}) closed: live updates pause`)
  await screenshot(page, 'as-of-sensor')

  const reopened = page.waitForEvent('websocket')
  await page.getByRole('button', { name: 'Now', exact: true }).click()
  await configurationState.getByText('Revision 1: not acknowledged yet').waitFor()
  await reopened
  await banner.waitFor({ state: 'detached' })
  await page.getByRole('button', { name: 'Push configuration' }).waitFor()
  t.pass('back to now: the revised configuration, live again')

  const events = (await http(service, 'GET', `/api/v1/events?stream=sensor-${sensor.sensorId}`, { token: sensor.token })).body.events as Array<{ position: number, type: string }>
  const registered = events.find(e => e.type === 'SensorRegistered')!
  const revision = events.find(e => e.type === 'SensorConfigurationRevised')!
  await page.getByRole('link', { name: 'Audit', exact: true }).click()
  const stateAfter = (position: number) => page.getByRole('link', { name: `State of sensor-${sensor.sensorId} right after event ${position}` })
  await stateAfter(registered.position).waitFor()
  await screenshot(page, 'as-of-audit-links')
  await stateAfter(registered.position).click()
  await banner.getByText(`right after event #${registered.position} of the log`).waitFor()
  await configurationState.getByText('Revision 0: not acknowledged yet').waitFor()
  t.match(await page.evaluate(() => location.hash), new RegExp(`^#/devices/${sensor.sensorId}\\?position=${registered.position}$`), "the audit link opens the device's page at that event's position")
  t.same(JSON.parse(await page.getByTestId('configuration').textContent() ?? 'null'), { interval: 10, unit: 'celsius' }, 'the state right after the registration')
  await screenshot(page, 'as-of-from-audit')

  await page.goBack()
  await stateAfter(revision.position).click()
  await banner.getByText(`right after event #${revision.position} of the log`).waitFor()
  await configurationState.getByText('Revision 1: not acknowledged yet').waitFor()
  t.same(JSON.parse(await page.getByTestId('configuration').textContent() ?? 'null'), { interval: 20, unit: 'kelvin' }, 'right after the revision: the revised one')
  // (The input's value is normalized: a zero second is left out.)
  const control = await page.getByLabel('As of').inputValue()
  t.equal(await page.evaluate(value => new Date(value).toISOString(), control), '2026-01-01T00:01:00.000Z', `the control shows when that event was recorded (${control})`)

  await banner.getByRole('link', { name: 'Back to now' }).click()
  await banner.waitFor({ state: 'detached' })
  await configurationState.getByText('Revision 1: not acknowledged yet').waitFor()
  t.equal(await page.evaluate(() => location.hash), `#/devices/${sensor.sensorId}`, 'the banner leads back to now')

  t.same(errors, [], 'no script error on the page')
})

t.test("a plug, a charger and a host as of a moment: each kind's state then", async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  const { token, networkId } = socket
  await startPlug(t, service, socket)
  const started = await http(service, 'POST', `/api/sockets/${socket.socketId}/start-wait-stop`, { token, body: { duration: 7200 } })
  t.equal(started.status, 200, 'an instance started')
  const startedAt = new Date(clock.now()).toISOString()
  clock.advance(90_000)
  // A second before the stop (the simulated plug's reports on the advanced clock are recorded at its end).
  const running = new Date(clock.now() - 1000).toISOString()
  t.equal((await http(service, 'PUT', `/api/sockets/${socket.socketId}/instance/${started.body.instance.id}`, { token })).status, 200, 'and stopped')

  const pair = (await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: 'c1', widget_id: 'w1', network_identifier: networkId } })).body
  const charger = await connectMqtt(t, service.mqttUrl, { username: 'c1', password: pair.mqtt.password })
  await publish(charger, 'chargers/c1/state-of-charge', { soc: 50 })
  const half = service.app.store.headPosition
  await publish(charger, 'chargers/c1/state-of-charge', { soc: 100 })

  const host = (await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'nas', kind: 'host', network_identifier: networkId } })).body
  const agent = await connectMqtt(t, service.mqttUrl, { username: host.id, password: host.mqtt.password })
  await publish(agent, `devices/${host.id}/metrics`, { cpu_usage: 12.5, memory_usage: 1024, memory_total: 4096, network_rx: 1, network_tx: 2 })
  const reported = service.app.store.headPosition
  await publish(agent, `devices/${host.id}/metrics`, { cpu_usage: 99, memory_usage: 2048, memory_total: 4096, network_rx: 3, network_tx: 4 })

  const browser = await launchBrowser(t)
  const { page, errors } = await openAs(browser, service.url, token, `devices/${socket.socketId}?at=${encodeURIComponent(running)}`)
  const instance = page.locator(`tr[data-instance="${started.body.instance.id}"]`)
  await instance.waitFor()
  t.equal(await page.getByTestId('power').textContent(), 'ON', 'the plug was on')
  t.match(await instance.textContent(), new RegExp(`${new Date(startedAt).toLocaleString()}0:01:29`), 'the instance then running, for 89 s by then')
  await screenshot(page, 'as-of-socket')

  await page.evaluate(position => { location.hash = `#/devices/c1?position=${position}` }, half)
  await page.getByTestId('charging-status').getByText('charging · 50%').waitFor()
  t.equal(await page.locator('.light').getAttribute('data-colour'), 'red', "the charger's light was red at half charge")

  await page.evaluate(([id, position]) => { location.hash = `#/devices/${id}?position=${position}` }, [host.id, reported] as const)
  await page.locator('dl.info dd', { hasText: '12.5' }).waitFor()
  t.equal(await page.locator('dl.info dd', { hasText: '99' }).count(), 0, "the host's metrics then, not its later ones")
  await screenshot(page, 'as-of-host')
  t.same(errors, [], 'no script error on the page')
})
