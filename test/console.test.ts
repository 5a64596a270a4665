import t from 'tap'
import { launchBrowser, openPage, screenshot, signUp } from './helpers/browser.ts'
import { connectSensor, publish, startService } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { systemClock } from '../src/clock.ts'

// The web console in a real browser (Debian's Chromium, headless, driven by playwright-core)
// against the real service on ephemeral ports. Waits are on what the page shows.

t.test('sign up, create a network and a sensor, see its measurements and logs arrive live', async t => {
  const service = await startService(t, { clock: systemClock })
  const browser = await launchBrowser(t)
  const { page, errors } = await openPage(browser, service.url + '/')
  await screenshot(page, 'login')
  await signUp(page, `console-${process.pid}`)

  await page.getByLabel('New network').fill('greenhouse')
  await page.getByRole('button', { name: 'Create network' }).click()
  await page.getByRole('link', { name: 'greenhouse' }).click()
  await page.getByRole('heading', { name: 'Devices' }).waitFor()

  await page.getByLabel('Name').fill('bulbasaur')
  await page.getByRole('button', { name: 'Register' }).click()
  const credentials = page.getByRole('region', { name: 'Device credentials' })
  await credentials.waitFor()
  const username = await credentials.locator('[data-field="username"]').textContent()
  const password = await credentials.locator('[data-field="password"]').textContent()
  t.match(username, /^[0-9a-f-]{36}$/, 'the sensor identifier is shown as its MQTT username')
  t.match(await credentials.textContent(), new RegExp(`MQTT port${service.mqttPort}`), "the broker's real port is shown")
  await screenshot(page, 'network-registered')

  await page.getByRole('link', { name: 'Open the new sensor' }).click()
  await page.getByRole('heading', { name: /bulbasaur/ }).waitFor()
  await page.getByText('not acknowledged yet').waitFor()
  t.equal(await page.locator('.presence').first().getAttribute('data-online'), 'false', 'offline before it connects')

  const sensor = await connectSensor(t, service, { sensorId: username!, password: password!, token: '', userId: '', networkId: '' })
  await page.locator('.presence[data-online="true"]').first().waitFor()
  t.pass('the online dot turned on when the sensor connected')

  const now = Date.now() / 1000
  await publish(sensor, `measurements/${username}`, { measurements: [0, 1, 2].map(i => ({ revision: 0, timestamp: now + i, value: { temperature: 20 + i, humidity: 50 } })) })
  await page.getByTestId('measurement-count').getByText('3').waitFor()
  await page.locator('.chart[data-points="3"]').waitFor()
  t.pass('the chart plots the three measurements as they arrive')

  await publish(sensor, `log-messages/${username}`, { log_messages: [{ revision: 0, timestamp: now, severity: 'error', subject: 'pump', details: 'dry run' }] })
  await page.locator('tr.severity-error', { hasText: 'pump' }).first().waitFor()
  t.pass('an error log appears in red')

  const acknowledged = committed(service, e => e.type === 'ConfigurationAcknowledged')
  await publish(sensor, `heartbeats/${username}`, { heartbeats: [{ revision: 0, timestamp: now, success: true }] })
  await acknowledged
  await page.getByText(/Revision 0: acknowledged/).waitFor()
  await page.getByLabel('New configuration (JSON)').fill('{"interval": 30}')
  await page.getByRole('button', { name: 'Push configuration' }).click()
  await page.getByText('Saved as revision 1').waitFor()
  await page.getByText('Revision 1: not acknowledged yet').waitFor()
  await screenshot(page, 'sensor')
  t.same(errors, [], 'no script error on the page')
})
