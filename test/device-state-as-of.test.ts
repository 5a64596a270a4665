// GET /api/v1/devices/<id>/state?at=|position=: each kind of device driven through a scenario,
// the live API read at each step, and the state as of that step read afterwards must say the same.
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, type Service } from './helpers/service.ts'
import { createSocket, startPlug } from './helpers/sockets.ts'
import { connectValve, createZone } from './helpers/zones.ts'

const T0 = 1767225600
const stateAt = async (service: Service, token: string, id: string, query: string) => {
  const response = await http(service, 'GET', `/api/v1/devices/${id}/state?${query}`, { token })
  if (response.status !== 200) throw new Error(`state?${query}: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body
}
const now = (service: Service) => new Date(service.clock.now()).toISOString()

t.test('a sensor: its configuration and last measurement as of each moment, as the live API showed them', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const sensor = await createSensor(service, { configuration: { interval: 10 } })
  const client = await connectSensor(t, service, sensor)
  const live = async () => (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: sensor.token })).body
  const steps: Array<{ position: number, at: string, live: any, measurement: unknown }> = []
  const step = async (measurement: unknown) => {
    steps.push({ position: service.app.store.headPosition, at: now(service), live: await live(), measurement })
    clock.advance(60_000)
  }

  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0 + 1, value: { t: 1 } }] })
  await step({ t: 1 })
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 0, timestamp: T0 + 2, success: true }] })
  await step({ t: 1 })
  const put = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'renamed', network_identifier: sensor.networkId, configuration: { interval: 20 } }
  })
  t.equal(put.status, 200)
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 1, timestamp: T0 + 3, value: { t: 2 } }] })
  await step({ t: 2 })

  for (const [i, s] of steps.entries()) {
    for (const query of [`position=${s.position}`, `at=${encodeURIComponent(s.at)}`]) {
      const asOf = await stateAt(service, sensor.token, sensor.sensorId, query)
      const { sensor_identifier: _, ...live } = s.live
      t.match(asOf, { kind: 'sensor', online: true, state: { ...live, last_measurement: { measurement: s.measurement } } }, `step ${i} by ${query.split('=')[0]}`)
      t.ok(asOf.position <= s.position, 'the last event folded is at or before the moment')
    }
  }
  const before = await stateAt(service, sensor.token, sensor.sensorId, 'position=1')
  t.match(before, { position: null, state: null, online: false }, 'before its registration: no state')
  t.same(await stateAt(service, sensor.token, sensor.sensorId, ''), await stateAt(service, sensor.token, sensor.sensorId, `at=${encodeURIComponent(now(service))}`), 'no moment: now')

  const changes = (await http(service, 'GET', `/api/v1/devices/${sensor.sensorId}/state/changes?to=${encodeURIComponent(steps[1]!.at)}`, { token: sensor.token })).body.changes
  t.same(changes.map((c: any) => c.type), ['SensorRegistered', 'DeviceConnected', 'MeasurementsRecorded', 'HeartbeatsReceived', 'ConfigurationAcknowledged'])
  t.match(changes.at(-1).state, { revision: 0, success: true }, 'each with the state right after it')
  t.equal(changes[0].state.last_measurement, null)
})

t.test('a zone: mode, since, to and valve as of each moment', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const zone = await createZone(service)
  const valve = await connectValve(t, service, zone)
  await valve.subscribeAsync(`zones/${zone.zoneId}/valve`, { qos: 1 })
  const live = async () => (await http(service, 'GET', `/api/v1/zones/${zone.zoneId}`, { token: zone.token })).body
  const steps: Array<{ position: number, live: any }> = []
  const step = async () => { steps.push({ position: service.app.store.headPosition, live: await live() }); clock.advance(1000) }
  await step()
  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/manual`, { token: zone.token })).status, 200)
  await publish(valve, `zones/${zone.zoneId}/state`, { open: true })
  await step()
  t.equal((await http(service, 'POST', `/api/v1/zones/${zone.zoneId}/stop`, { token: zone.token })).status, 200)
  await step()
  for (const [i, s] of steps.entries()) {
    const asOf = await stateAt(service, zone.token, zone.zoneId, `position=${s.position}`)
    const { mode, since, to, valve_open, valve_mismatch, timer_seconds } = s.live
    t.same(asOf.state, { name: s.live.name, timer_seconds, mode, since, to, valve_open, valve_mismatch }, `step ${i}`)
  }
})

t.test('a plug: power and running instances as of each moment', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const socket = await createSocket(service)
  await startPlug(t, service, socket, { firmware: 'real' })
  const before = service.app.store.headPosition
  const started = await http(service, 'POST', '/api/instance', { token: socket.token })
  t.equal(started.status, 200)
  const running = service.app.store.headPosition
  t.equal((await http(service, 'PUT', `/api/instance/${started.body.instance.id}`, { token: socket.token })).status, 200)
  const stopped = service.app.store.headPosition
  t.match((await stateAt(service, socket.token, socket.socketId, `position=${before}`)).state, { power: 'OFF', running_instances: [] })
  t.match((await stateAt(service, socket.token, socket.socketId, `position=${running}`)).state,
    { power: 'ON', desired_power: 'ON', running_instances: [{ instance_identifier: started.body.instance.id }] })
  t.match((await stateAt(service, socket.token, socket.socketId, `position=${stopped}`)).state, { power: 'OFF', desired_power: 'OFF', running_instances: [] })
})

t.test('a charger and a host: their last reports as of each moment; non-members get 404', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const user = await http(service, 'POST', '/users', { body: { username: 'owner', password: 'correct horse' } })
  const token = user.body.access_token
  const network = (await http(service, 'POST', '/networks', { token, body: { network_name: 'garage' } })).body.network_identifier
  const pair = (await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: 'c1', widget_id: 'w1', network_identifier: network } })).body
  const charger = await connectMqtt(t, service.mqttUrl, { username: 'c1', password: pair.mqtt.password })
  await publish(charger, 'chargers/c1/state-of-charge', { soc: 50 })
  const half = service.app.store.headPosition
  clock.advance(2000)
  await publish(charger, 'chargers/c1/state-of-charge', { soc: 100 })
  t.match((await stateAt(service, token, 'c1', `position=${half}`)).state, { soc: 50, status: 'charging' })
  t.match((await stateAt(service, token, 'c1', '')).state, { soc: 100, status: 'charged' })

  const host = (await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'nas', kind: 'host', network_identifier: network } })).body
  const agent = await connectMqtt(t, service.mqttUrl, { username: host.id, password: host.mqtt.password })
  const metrics = { cpu_usage: 0.5, memory_usage: 1024, memory_total: 4096, network_rx: 1, network_tx: 2 }
  const registered = service.app.store.headPosition
  await publish(agent, `devices/${host.id}/metrics`, metrics)
  t.match((await stateAt(service, token, host.id, `position=${registered}`)).state, { name: 'nas', metrics: null })
  t.match((await stateAt(service, token, host.id, '')).state, { name: 'nas', metrics })

  const stranger = (await http(service, 'POST', '/users', { body: { username: 'stranger', password: 'correct horse' } })).body.access_token
  t.equal((await http(service, 'GET', `/api/v1/devices/${host.id}/state`, { token: stranger })).status, 404, 'not a member: 404')
  t.equal((await http(service, 'GET', `/api/v1/devices/${host.id}/state?at=yesterday`, { token })).status, 400, 'a bad instant: 400')
  t.equal((await http(service, 'GET', `/api/v1/devices/${host.id}/state?at=${encodeURIComponent(now(service))}&position=3`, { token })).status, 400, 'both: 400')
})
