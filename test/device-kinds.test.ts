import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { deviceKinds } from '../src/kinds.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { launchBrowser, openAs } from './helpers/browser.ts'
import { rawClient } from './helpers/raw-mqtt.ts'
import { createSensor, http, startService, type Service } from './helpers/service.ts'
import { createSocket } from './helpers/sockets.ts'
import { createZone } from './helpers/zones.ts'

// The list of kinds (src/kinds.ts) is the one source: every layer that derives from it knows every
// kind; a QoS 1 redelivery is recognised whatever the kind; and a unit of work that is run again
// cannot count a refusal twice.

let counter = 0
const pairId = (prefix: string) => `${prefix}${randomBytes(4).toString('hex')}${++counter}`
const clientIds = (prefix: string) => `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`

interface Device { id: string, kind: string, stream: string, username: string, password: string, report: { topic: string, payload: string, type: string } }

/** One device of every kind in one network, through the public API, each with a report it may publish. */
async function everyKind (service: Service) {
  const sensor = await createSensor(service)
  const { token, networkId } = sensor
  const socket = await createSocket(service, { token, networkId })
  const zone = await createZone(service, { token, networkId })
  const chargerId = pairId('c')
  const charger = await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: chargerId, widget_id: pairId('w'), network_identifier: networkId } })
  if (charger.status !== 201) throw new Error(`POST /api/v1/chargers: ${charger.status} ${JSON.stringify(charger.body)}`)
  const host = await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'build box', kind: 'host', network_identifier: networkId } })
  if (host.status !== 201) throw new Error(`POST /api/v1/devices: ${host.status} ${JSON.stringify(host.body)}`)
  const hostId = host.body.id as string
  const devices: Device[] = [
    {
      id: sensor.sensorId, kind: 'sensor', stream: `sensor-${sensor.sensorId}`, username: sensor.sensorId, password: sensor.password,
      report: { topic: `measurements/${sensor.sensorId}`, payload: JSON.stringify({ measurements: [{ revision: 0, timestamp: 1767225600, value: { t: 1 } }] }), type: 'MeasurementsRecorded' }
    },
    {
      id: socket.socketId, kind: 'socket', stream: `socket-${socket.socketId}`, username: socket.topic, password: socket.password,
      report: { topic: `tele/${socket.topic}/SENSOR`, payload: JSON.stringify({ Time: '2026-01-01T00:00:00', ENERGY: { Total: 1.5, Yesterday: 0.5, Today: 1, Power: 10, Voltage: 230, Current: 0.05 } }), type: 'EnergyReported' }
    },
    {
      id: zone.zoneId, kind: 'zone', stream: `zone-${zone.zoneId}`, username: zone.zoneId, password: zone.password,
      report: { topic: `zones/${zone.zoneId}/state`, payload: '{"open":true}', type: 'ValveStateReported' }
    },
    {
      id: chargerId, kind: 'charger', stream: `charger-${chargerId}`, username: chargerId, password: charger.body.mqtt.password as string,
      report: { topic: `chargers/${chargerId}/state-of-charge`, payload: '{"soc":42}', type: 'StateOfChargeReported' }
    },
    {
      id: hostId, kind: 'host', stream: `host-${hostId}`, username: hostId, password: host.body.mqtt.password as string,
      report: { topic: `devices/${hostId}/metrics`, payload: JSON.stringify({ cpu_usage: 12, memory_usage: 1, memory_total: 2, network_rx: 3, network_tx: 4 }), type: 'MetricsReported' }
    }
  ]
  return { token, networkId, devices }
}

const eventsOf = async (service: Service, token: string, stream: string, type: string): Promise<RecordedEvent[]> => {
  const response = await http(service, 'GET', `/api/v1/events?stream=${encodeURIComponent(stream)}&type=${type}`, { token })
  if (response.status !== 200) throw new Error(`GET /api/v1/events: ${response.status}`)
  return response.body.events
}

t.test('every kind in src/kinds.ts is known to credentials, the registry, stream access, the device list and the console', async t => {
  const service = await startService(t)
  const { token, networkId, devices } = await everyKind(service)
  // A kind added to the list but not here fails this line: give it a device above.
  t.strictSame(devices.map(d => d.kind), deviceKinds.map(k => k.kind), 'the test covers every declared kind, in the list\'s order')

  const outsider = await createSensor(service)
  for (const device of devices) {
    const credentials = service.app.devices.credentials(device.username)
    t.match(credentials, { kind: device.kind, device_id: device.id, stream_id: device.stream, network_id: networkId }, `credentials know the ${device.kind}`)
    t.match(service.app.deviceRegistry.device(device.id), { kind: device.kind, stream_id: device.stream, network_id: networkId }, `the registry knows the ${device.kind}`)
    const own = await http(service, 'GET', `/api/v1/events?stream=${encodeURIComponent(device.stream)}`, { token })
    t.ok(own.body.events.length >= 1, `a member reads the ${device.kind}'s stream (stream access)`)
    const foreign = await http(service, 'GET', `/api/v1/events?stream=${encodeURIComponent(device.stream)}`, { token: outsider.token })
    t.same(foreign.body.events, [], `a stranger reads nothing of the ${device.kind}'s stream`)
    const state = await http(service, 'GET', `/api/v1/devices/${device.id}/state`, { token })
    t.equal(state.status, 200, `the ${device.kind} has a state as of now`)
  }
  const listed = await http(service, 'GET', `/api/v1/devices?network=${networkId}`, { token })
  t.strictSame(listed.body.map((d: { kind: string }) => d.kind), deviceKinds.map(k => k.kind), 'the device list names every kind')

  const browser = await launchBrowser(t)
  const { page } = await openAs(browser, service.url, token, `networks/${networkId}`)
  await page.getByLabel('Kind').waitFor()
  const options = await page.locator('select[name="kind"] option').evaluateAll(nodes => nodes.map(node => (node as HTMLOptionElement).value))
  t.strictSame(options, deviceKinds.map(k => k.kind), "the console's registration form offers every kind")
})

t.test('a QoS 1 report resent with DUP is recorded once, for every kind', async t => {
  const service = await startService(t)
  const { token, devices } = await everyKind(service)
  for (const device of devices) {
    const clientId = clientIds(device.kind)
    const payload = Buffer.from(device.report.payload)
    const first = await rawClient(t, service, device, clientId)
    await first.publish({ topic: device.report.topic, payload, messageId: 5, dup: false })
    // The PUBACK was lost: the device reconnects and resends with DUP.
    first.end()
    await first.closed
    const again = await rawClient(t, service, device, clientId)
    await again.publish({ topic: device.report.topic, payload, messageId: 5, dup: true })
    const recorded = await eventsOf(service, token, device.stream, device.report.type)
    t.equal(recorded.length, 1, `the ${device.kind}'s ${device.report.type} is recorded once`)
    again.end()
    await again.closed
  }
})

t.test('a refusal is counted once even when its group is run again: limit 3, two refused messages beside a unit that throws', async t => {
  const service = await startService(t, { env: { MQTT_MAX_REFUSALS_PER_MINUTE: '3' } })
  const sensor = await createSensor(service)
  const device = { username: sensor.sensorId, password: sensor.password }
  const client = await rawClient(t, service, device, clientIds('rerun'))
  const topic = `measurements/${sensor.sensorId}`

  // A unit that throws (as a POST /users with a taken name does) queued in the same tick as the
  // two refused messages' units: the store runs the rest of their group again.
  const aedes = service.app.broker.aedes
  const authorize = aedes.authorizePublish!
  let queued = false
  aedes.authorizePublish = function (this: unknown, client, packet, done) {
    if (!queued && packet.topic === topic) {
      queued = true
      service.app.store.transact(() => { throw new Error('a name already taken') }).catch(() => {})
    }
    return authorize.call(this, client, packet, done)
  }
  t.teardown(() => { aedes.authorizePublish = authorize })
  const groups: Array<readonly RecordedEvent[]> = []
  const unsubscribe = service.app.store.subscribe(events => { if (events.some(e => e.type === 'MessageRejected')) groups.push(events) })
  t.teardown(unsubscribe)

  await client.publish(
    { topic, payload: Buffer.from('not json'), messageId: 1, dup: false },
    { topic, payload: Buffer.from('{"measurements": "none"}'), messageId: 2, dup: false }
  )
  t.equal(groups.length, 1, 'both refusals committed in one group')
  t.equal(groups[0]!.filter(e => e.type === 'MessageRejected').length, 2, 'each refusal recorded once')
  // Counted twice, two refusals would be four, past the limit of 3: the device would be cut off.
  const valid = JSON.stringify({ measurements: [{ revision: 0, timestamp: 1767225600, value: { t: 1 } }] })
  await client.publish({ topic, payload: Buffer.from(valid), messageId: 3, dup: false })
  const recorded = await eventsOf(service, sensor.token, `sensor-${sensor.sensorId}`, 'MeasurementsRecorded')
  t.equal(recorded.length, 1, 'the device is still connected: its next message is acknowledged and recorded')
  const cutOff = (await eventsOf(service, sensor.token, `sensor-${sensor.sensorId}`, 'DeviceDisconnected'))
  t.same(cutOff, [], 'no disconnection recorded')
})

t.test('a kind is declared once, whole, and only if the list has it', async t => {
  const service = await startService(t)
  const sensor = deviceKinds[0]
  const behaviour = (kind: string) => ({
    mqtt: { kind, interpretPublish: () => ({ refused: true as const, reason: 'unknown_topic' as const, detail: '' }), refuseSubscription: () => null },
    state: { ...service.app.deviceStates.of('sensor')!, kind },
    topics: []
  })
  t.throws(() => service.app.deviceKinds.declare({ kind: 'lock', registration: {} }, behaviour('lock')), /lock is not in the list/, 'a kind missing from src/kinds.ts')
  t.throws(() => service.app.deviceKinds.declare(sensor, behaviour('sensor')), /sensor is declared twice/, 'a kind declared twice')
  t.throws(() => service.app.deviceKinds.declare({ ...sensor, kind: 'socket' }, behaviour('sensor')), /socket declares the mqtt of sensor/, 'parts of another kind')
})
