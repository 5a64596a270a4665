// A few hundred devices reconnecting at once after a restart (the 10,000 are npm run
// bench:fleet's): every one configured from the log, shown online, its connection recorded
// once; and connections that never say CONNECT hold up nobody for long.
import { connect as connectTcp, type Socket } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { http, startService, tempDir, type Service, type Teardown } from './helpers/service.ts'

const FLEET = 300

interface Sensor { id: string, password: string }

async function registerFleet (service: Service, count: number): Promise<{ token: string, network: string, sensors: Sensor[] }> {
  const user = await http(service, 'POST', '/users', { body: { username: 'fleet', password: 'correct horse' } })
  const token = user.body.access_token as string
  const network = (await http(service, 'POST', '/networks', { token, body: { network_name: 'fleet' } })).body.network_identifier as string
  const sensors: Sensor[] = []
  for (let start = 0; start < count; start += 25) {
    sensors.push(...await Promise.all(Array.from({ length: Math.min(25, count - start) }, async (_, k) => {
      const sensor = await http(service, 'POST', '/sensors', {
        token, body: { sensor_name: `sensor-${start + k}`, network_identifier: network, configuration: { interval: start + k } }
      })
      return { id: sensor.body.sensor_identifier as string, password: sensor.body.mqtt.password as string }
    })))
  }
  return { token, network, sensors }
}

/** Connects every sensor at once; each resolves with its retained configuration. */
function connectAll (t: Teardown, service: Service, sensors: Sensor[]): Array<Promise<{ client: MqttClient, configuration: any, retain: boolean }>> {
  return sensors.map(sensor => new Promise((resolve, reject) => {
    const client = mqtt.connect(service.mqttUrl, { username: sensor.id, password: sensor.password, reconnectPeriod: 0, connectTimeout: 60_000 })
    t.teardown(() => client.endAsync(true))
    client.once('error', reject)
    client.once('connect', () => client.subscribe(`configurations/${sensor.id}`, { qos: 1 }))
    client.once('message', (_topic, payload, packet) => resolve({ client, configuration: JSON.parse(payload.toString()), retain: packet.retain }))
  }))
}

t.test('after a restart, a few hundred sensors reconnecting at once are all configured from the log, online, and recorded once', async t => {
  const dir = tempDir(t)
  const first = await startService(t, { dir })
  const { token, network, sensors } = await registerFleet(first, FLEET)
  // One revision, so the configuration that comes back is the log's latest, not the first.
  const revised = await http(first, 'PUT', `/sensors/${sensors[0]!.id}`, {
    token, body: { sensor_name: 'sensor-0', network_identifier: network, configuration: { interval: 999 } }
  })
  t.equal(revised.status, 200, 'a revision of the first sensor')
  await first.close()

  const service = await startService(t, { dir })
  const received = await Promise.all(connectAll(t, service, sensors))
  t.equal(received.length, FLEET, 'every sensor got its configuration')
  t.ok(received.every(r => r.retain), 'each as a retained message')
  t.same(received[0]!.configuration, { revision: 1, configuration: { interval: 999 } }, 'the revised one its latest revision')
  t.ok(received.slice(1).every((r, k) => r.configuration.revision === 0 && r.configuration.configuration.interval === k + 1),
    'every other one its own registration configuration')

  // Presence is recorded after the CONNACK: wait until the log holds every connection. The
  // listener is registered before the count is read, so a commit in between is not missed.
  await new Promise<void>(resolve => {
    const connectedCount = () => service.app.store.read({ type: 'DeviceConnected' }).length
    const stop = service.app.store.subscribe(() => { if (connectedCount() >= FLEET) { stop(); resolve() } })
    if (connectedCount() >= FLEET) { stop(); resolve() }
  })
  const devices = (await http(service, 'GET', `/api/v1/devices?network=${network}`, { token })).body as Array<{ online: boolean }>
  t.equal(devices.length, FLEET)
  t.ok(devices.every(d => d.online), 'every device is shown online')

  const ofType = (type: string) => service.app.store.read({ type })
  const connected = ofType('DeviceConnected')
  t.equal(connected.length, FLEET, 'one DeviceConnected per sensor')
  t.equal(new Set(connected.map(e => e.stream_id)).size, FLEET, 'on each sensor\'s own stream')
  t.same(['ConnectionRefused', 'SubscriptionRefused', 'MessageRejected'].flatMap(ofType), [], 'nothing refused')
})

t.test('connections that never send CONNECT give up their place in the connect queue', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { sensors } = await registerFleet(service, 1)
  // More silent connections than the broker sets up at once: every place is taken.
  const silent: Socket[] = await Promise.all(Array.from({ length: 60 }, () => new Promise<Socket>((resolve, reject) => {
    const socket = connectTcp(service.mqttPort, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
    t.teardown(() => socket.destroy())
  })))
  t.equal(silent.length, 60)
  const [configured] = connectAll(t, service, sensors)
  let done = false
  void configured!.then(() => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  // Ten silent connections and the sensor's wait for a place.
  while (service.app.broker.connectionsWaiting < 11) await new Promise(resolve => setImmediate(resolve))
  t.equal(done, false, 'the sensor waits behind the silent connections')
  clock.advance(1000)
  const { configuration } = await configured!
  t.same(configuration, { revision: 0, configuration: { interval: 0 } }, 'once they have held their places for a second, it connects')
})
