import t from 'tap'
import type { MqttClient } from 'mqtt'
import { ManualClock } from '../src/clock.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { checkDeviceDiscovery, checkState, type Violation } from './helpers/home-assistant-rules.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, type SensorFixture, type Service, type Teardown } from './helpers/service.ts'
import { committed, createSocket, startPlug, type SocketFixture } from './helpers/sockets.ts'
import { connectValve, createZone, type ZoneFixture } from './helpers/zones.ts'
import { startService } from './helpers/service.ts'

const PREFIX = 'homeassistant'
const HA = { HA_DISCOVERY: 'true' }
/** What Home Assistant's MQTT integration subscribes to at start (discovery.py async_start), and its Tasmota integration's discovery. */
const HA_FILTERS = [`${PREFIX}/+/+/config`, `${PREFIX}/+/+/+/config`, `${PREFIX}/device/+/config`, `${PREFIX}/device/+/+/config`]
const REFUSED = 128

interface Received { topic: string, payload: string, retain: boolean }

/** An mqtt.js client playing Home Assistant: its account, its last will, everything it receives. */
class HomeAssistant {
  readonly received: Received[] = []
  private readonly waiters = new Set<() => void>()
  constructor (readonly client: MqttClient, readonly account: Account) {
    client.on('message', (topic, payload, packet) => {
      this.received.push({ topic, payload: payload.toString('utf8'), retain: packet.retain })
      for (const waiter of this.waiters) waiter()
    })
  }

  /** The first message from index `from` on that matches, as soon as it arrives. */
  next (match: (message: Received) => boolean, from = 0): Promise<Received> {
    return new Promise(resolve => {
      const check = () => {
        const found = this.received.slice(from).find(match)
        if (found === undefined) return false
        this.waiters.delete(waiter)
        resolve(found)
        return true
      }
      const waiter = () => { check() }
      if (!check()) this.waiters.add(waiter)
    })
  }

  /** The SUBACK's return codes (mqtt.js reports a refusal as an error carrying the SUBACK). */
  subscribe (filters: string[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.client.subscribe(filters, { qos: 1 }, (error, granted) => {
        const suback = (error as { packet?: { granted: number[] } } | null)?.packet
        if (suback !== undefined) resolve(suback.granted)
        else if (error != null) reject(error)
        else resolve(granted!.map(grant => grant.qos))
      })
    })
  }

  /** The latest config received for each object id ('' once removed). */
  configs (): Map<string, string> {
    const configs = new Map<string, string>()
    for (const { topic, payload } of this.received) if (topic.startsWith(`${PREFIX}/device/`)) configs.set(topic, payload)
    return configs
  }
}

interface Account { account_identifier: string, network_identifier: string, mqtt: { username: string, password: string } }

async function createAccount (service: Service, token: string, networkId: string): Promise<Account> {
  const created = await http(service, 'POST', '/api/v1/integrations/home-assistant', { token, body: { network_identifier: networkId } })
  if (created.status !== 201) throw new Error(`POST /api/v1/integrations/home-assistant: ${created.status} ${JSON.stringify(created.body)}`)
  return created.body as Account
}

async function connectHomeAssistant (t: Teardown, service: Service, account: Account): Promise<HomeAssistant> {
  const client = await connectMqtt(t, service.mqttUrl, {
    username: account.mqtt.username,
    password: account.mqtt.password,
    will: { topic: `${PREFIX}/status`, payload: Buffer.from('offline'), qos: 1, retain: false }
  })
  return new HomeAssistant(client, account)
}

interface Home {
  token: string
  networkId: string
  sensor: SensorFixture
  socket: SocketFixture
  zone: ZoneFixture
  chargerId: string
  chargerPassword: string
  hostId: string
}

let counter = 0
/** One network with a device of every kind, made through the public API. */
async function home (service: Service): Promise<Home> {
  const sensor = await createSensor(service)
  const { token, networkId } = sensor
  const socket = await createSocket(service, { token, networkId })
  const zone = await createZone(service, { token, networkId })
  const chargerId = `c${process.pid}.${++counter}`
  const charger = await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: chargerId, widget_id: `w${process.pid}_${counter}`, network_identifier: networkId } })
  if (charger.status !== 201) throw new Error(`POST /api/v1/chargers: ${charger.status}`)
  const host = await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'Build box', kind: 'host', network_identifier: networkId } })
  if (host.status !== 201) throw new Error(`POST /api/v1/devices: ${host.status}`)
  return { token, networkId, sensor, socket, zone, chargerId, chargerPassword: charger.body.mqtt.password, hostId: host.body.id }
}

const objectId = (kind: string, id: string) => `devicelog_${kind}_${id.replace(/_/g, '__').replace(/\./g, '_x2e_')}`
const configTopic = (kind: string, id: string) => `${PREFIX}/device/${objectId(kind, id)}/config`
const eventsOf = (service: Service, stream: string): RecordedEvent[] => service.app.store.read({ stream })
const describe = (violations: Violation[]) => violations.map(v => `${v.path}: ${v.message} (${v.source})`)

/** The component (by id) of a config, and every component reading a state topic. */
type Config = { components: Record<string, Record<string, any>>, availability: Array<{ topic: string }>, [key: string]: any }

t.test('Home Assistant finds every device of its network: configs and states pass its discovery rules, and another network sees none of them', async t => {
  const service = await startService(t, { env: HA })
  // The other network's devices come first in the log: a wildcard that let them through would deliver them first.
  const neighbour = await createSensor(service)
  const house = await home(service)
  const neighbourAccount = await createAccount(service, neighbour.token, neighbour.networkId)
  const account = await createAccount(service, house.token, house.networkId)

  // The devices report something, so that their states have values.
  const sensor = await connectSensor(t, service, house.sensor)
  await publish(sensor, `measurements/${house.sensor.sensorId}`, {
    measurements: [{ revision: 0, timestamp: 1767225600, value: { temperature: 21.5, humidity: 40, vibration: 3, label: 'kitchen' } }]
  })
  await publish(sensor, `log-messages/${house.sensor.sensorId}`, { log_messages: [{ severity: 'warning', revision: 0, timestamp: 1767225601, subject: 'battery low' }] })
  const charger = await connectMqtt(t, service.mqttUrl, { username: house.chargerId, password: house.chargerPassword })
  await publish(charger, `chargers/${house.chargerId}/state-of-charge`, { soc: 85 })
  await startPlug(t, service, house.socket)

  const ha = await connectHomeAssistant(t, service, account)
  const neighbourHa = await connectHomeAssistant(t, service, neighbourAccount)
  t.same(await ha.subscribe(HA_FILTERS), [1, 1, 1, 1], 'Home Assistant\'s discovery filters are granted')
  t.same(await neighbourHa.subscribe(HA_FILTERS), [1, 1, 1, 1])
  const kinds = [['sensor', house.sensor.sensorId], ['socket', house.socket.socketId], ['zone', house.zone.zoneId], ['charger', house.chargerId], ['host', house.hostId]] as const
  for (const [kind, id] of kinds) await ha.next(m => m.topic === configTopic(kind, id))
  await neighbourHa.next(m => m.topic === configTopic('sensor', neighbour.sensorId))
  t.notOk(ha.received.some(m => m.topic === configTopic('sensor', neighbour.sensorId)), 'another network\'s config does not reach this account, even through a wildcard')
  t.notOk(neighbourHa.received.some(m => kinds.some(([kind, id]) => m.topic === configTopic(kind, id))), 'nor this network\'s the other account')
  // Even asked for by name: the discovery prefix is open to every account, what it delivers is not.
  t.same(await ha.subscribe([configTopic('sensor', neighbour.sensorId)]), [1])

  const configs = new Map<string, Config>()
  for (const [topic, payload] of ha.configs()) {
    t.same(describe(checkDeviceDiscovery(PREFIX, topic, payload)), [], `${topic} passes Home Assistant's discovery rules`)
    configs.set(topic, JSON.parse(payload))
  }
  t.equal(configs.size, 5, 'one config per device')

  const sensorConfig = configs.get(configTopic('sensor', house.sensor.sensorId))!
  t.match(sensorConfig, {
    device: { identifiers: [objectId('sensor', house.sensor.sensorId)], manufacturer: 'devicelog' },
    origin: { name: 'devicelog' },
    availability_mode: 'all',
    availability: [{ topic: 'devicelog/ha/status' }, { topic: `devicelog/ha/sensor/${house.sensor.sensorId}/availability` }]
  })
  t.match(sensorConfig.components, {
    temperature: { platform: 'sensor', device_class: 'temperature', unit_of_measurement: '°C', state_class: 'measurement', unique_id: String },
    humidity: { platform: 'sensor', device_class: 'humidity', unit_of_measurement: '%' },
    log_severity: { platform: 'sensor', device_class: 'enum', options: ['debug', 'info', 'warning', 'error'] }
  })
  t.notOk('device_class' in sensorConfig.components.vibration!, 'a field whose name says nothing gets no device class')
  t.notOk('label' in sensorConfig.components, 'a field that is not a number is not a sensor')
  t.notOk(Object.values(configs).some(c => JSON.stringify(c).includes('"object_id"')), 'no deprecated object_id')
  t.match(sensorConfig.components.temperature, { default_entity_id: /^sensor\.[a-z0-9_]+_temperature$/ })
  const socketConfig = configs.get(configTopic('socket', house.socket.socketId))!
  t.match(socketConfig.components, {
    switch: { platform: 'switch', device_class: 'outlet', command_topic: `devicelog/ha/socket/${house.socket.socketId}/set` },
    power: { platform: 'sensor', device_class: 'power', unit_of_measurement: 'W' },
    energy: { platform: 'sensor', device_class: 'energy', unit_of_measurement: 'kWh', state_class: 'total_increasing' }
  })
  const zoneConfig = configs.get(configTopic('zone', house.zone.zoneId))!
  t.match(zoneConfig.components, {
    valve: { platform: 'valve', device_class: 'water', reports_position: false, command_topic: `devicelog/ha/zone/${house.zone.zoneId}/set` },
    mode: { platform: 'sensor', device_class: 'enum', options: ['wait_mode', 'timer_mode', 'manual_mode'] }
  })
  t.notOk('position_topic' in zoneConfig.components.valve!, 'the valve has no position')
  t.match(configs.get(configTopic('charger', house.chargerId))!.components, {
    state_of_charge: { platform: 'sensor', device_class: 'battery', unit_of_measurement: '%' },
    status: { platform: 'sensor', device_class: 'enum', options: ['charging', 'charging80', 'charged'] }
  })
  t.match(configs.get(configTopic('host', house.hostId))!.components, {
    cpu: { platform: 'sensor', unit_of_measurement: '%' },
    memory_used: { device_class: 'data_size' },
    network_received: { device_class: 'data_size', state_class: 'total_increasing' },
    network_sent: { device_class: 'data_size' }
  })
  const uniqueIds = [...configs.values()].flatMap(c => Object.values(c.components).map(component => component.unique_id))
  t.equal(new Set(uniqueIds).size, uniqueIds.length, 'unique ids are unique (homeassistant/helpers/entity_platform.py refuses a second)')

  // Home Assistant then subscribes to what the components read: every state passes its platform's rules.
  const stateTopics = new Set<string>()
  for (const config of configs.values()) {
    for (const component of Object.values(config.components)) stateTopics.add(component.state_topic)
    for (const { topic } of config.availability) stateTopics.add(topic)
  }
  t.ok([...await ha.subscribe([...stateTopics])].every(qos => qos === 1), 'the states and availability of its network\'s devices are granted')
  for (const topic of stateTopics) await ha.next(m => m.topic === topic)
  for (const config of configs.values()) {
    for (const [id, component] of Object.entries(config.components)) {
      const state = ha.received.find(m => m.topic === component.state_topic)!
      t.same(describe(checkState(component.platform, component, state.payload, id)), [], `${component.unique_id}: ${state.payload} passes ${component.platform}'s rules`)
    }
  }
  const states = (kind: string, id: string) => JSON.parse(ha.received.find(m => m.topic === `devicelog/ha/${kind}/${id}/state`)!.payload)
  t.match(states('sensor', house.sensor.sensorId), { temperature: 21.5, humidity: 40, vibration: 3, log_severity: 'warning' })
  t.match(states('charger', house.chargerId), { state_of_charge: 85, status: 'charging80' })
  t.match(states('zone', house.zone.zoneId), { valve: 'closed', mode: 'wait_mode' })
  t.equal(ha.received.find(m => m.topic === 'devicelog/ha/status')!.payload, 'online', 'the service is online')
  t.equal(ha.received.find(m => m.topic === `devicelog/ha/sensor/${house.sensor.sensorId}/availability`)!.payload, 'online', 'a connected device is available')
  t.equal(ha.received.find(m => m.topic === `devicelog/ha/host/${house.hostId}/availability`)!.payload, 'offline', 'one that is not, is not')

  // A new measurement field: the config is published again with its component, the state with its value.
  const from = ha.received.length
  await publish(sensor, `measurements/${house.sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1767225700, value: { co2: 612 } }] })
  const updated = await ha.next(m => m.topic === configTopic('sensor', house.sensor.sensorId), from)
  t.same(describe(checkDeviceDiscovery(PREFIX, updated.topic, updated.payload)), [])
  t.match(JSON.parse(updated.payload).components, { co2: { device_class: 'carbon_dioxide', unit_of_measurement: 'ppm' }, temperature: {} })
  const state = await ha.next(m => m.topic === `devicelog/ha/sensor/${house.sensor.sensorId}/state` && m.payload.includes('612'), from)
  t.match(JSON.parse(state.payload), { co2: 612, temperature: 21.5 })

  // The device disconnects: its availability follows presence.
  await sensor.endAsync()
  await ha.next(m => m.topic === `devicelog/ha/sensor/${house.sensor.sensorId}/availability` && m.payload === 'offline', from)

  // Home Assistant's birth message: after a short random delay, its network's configs again.
  const beforeBirth = ha.received.length
  const birth = committed(service, e => e.type === 'HomeAssistantStatusReported')
  await publish(ha.client, `${PREFIX}/status`, 'online')
  t.match(await birth, { stream_id: `homeassistant-${account.account_identifier}`, data: { status: 'online' } }, 'the birth message is recorded')
  await new Promise(resolve => setImmediate(resolve))
  t.notOk(ha.received.slice(beforeBirth).some(m => m.topic.startsWith(`${PREFIX}/device/`)), 'not at once')
  ;(service.clock as ManualClock).advance(3000)
  for (const [kind, id] of kinds) await ha.next(m => m.topic === configTopic(kind, id), beforeBirth)
  t.notOk(neighbourHa.received.some(m => kinds.some(([kind, id]) => m.topic === configTopic(kind, id))), 'the other account gets none of them')

  t.notOk(ha.received.some(m => m.topic === configTopic('sensor', neighbour.sensorId)), 'the other network\'s config never reached this account, even subscribed to by name')

  // The rules themselves catch what Home Assistant would refuse or drop.
  const good = ha.configs().get(configTopic('sensor', house.sensor.sensorId))!
  const broken = (change: (config: Config) => void) => {
    const config = JSON.parse(good) as Config
    change(config)
    return describe(checkDeviceDiscovery(PREFIX, configTopic('sensor', house.sensor.sensorId), JSON.stringify(config)))
  }
  t.match(broken(c => { c.components.temperature!.object_id = 'x' }), [/object_id: deprecated/])
  t.match(broken(c => { c.components.temperature!.unit_of_measurement = '%' }), [/% is not a unit of device class temperature/])
  t.match(broken(c => { c.components.temperature!.state_class = 'total_increasing' }), [/impossible for device class temperature/])
  t.match(broken(c => { c.components.log_severity!.state_class = 'measurement' }), [/options: not allowed together with state_class/])
  t.match(broken(c => { c.components.humidity!.default_entity_id = 'switch.humidity' }), [/not in the sensor domain/])
  t.match(broken(c => { delete c.components.humidity!.unique_id }), [/unique_id: required/])
  t.match(broken(c => { c.components.humidity!.stat_t = 'x' }), [/abbreviated key/, /dropped by sensor/])
  t.match(broken(c => { delete c.origin }), [/origin: required/])
  t.match(broken(c => { c.availability_topic = 'x' }), [/exclusive/])
  t.match(describe(checkDeviceDiscovery(PREFIX, `${PREFIX}/device/dev.ice/config`, good)), [/topic: .* is not/])
  t.match(describe(checkState('sensor', { device_class: 'temperature', value_template: "{{ value_json['t'] }}" }, '{"t":"warm"}', 't')), [/not numeric/])
  t.match(describe(checkState('valve', { value_template: "{{ value_json['v'] }}" }, '{"v":"ajar"}', 'v')), [/not one of/])

  // The service stops: offline, service-wide, before the connections close.
  const offline = ha.next(m => m.topic === 'devicelog/ha/status' && m.payload === 'offline')
  await service.close()
  await offline
  t.pass('devicelog/ha/status says offline at stop')
})

t.test('Home Assistant switches a plug and opens a valve through the same deciders as the API, recorded with its account as actor', async t => {
  const service = await startService(t, { env: HA })
  const house = await home(service)
  const account = await createAccount(service, house.token, house.networkId)
  const actor = `home_assistant:${account.account_identifier}`
  const plug = await startPlug(t, service, house.socket)
  const ha = await connectHomeAssistant(t, service, account)
  const socketState = `devicelog/ha/socket/${house.socket.socketId}/state`
  const zoneState = `devicelog/ha/zone/${house.zone.zoneId}/state`
  t.same(await ha.subscribe([socketState, zoneState]), [1, 1])
  await ha.next(m => m.topic === socketState)

  const started = committed(service, e => e.type === 'InstanceStarted' && e.stream_id === `socket-${house.socket.socketId}`)
  const switchedOn = ha.next(m => m.topic === socketState && JSON.parse(m.payload).switch === 'ON', ha.received.length)
  await publish(ha.client, `devicelog/ha/socket/${house.socket.socketId}/set`, 'ON')
  t.equal((await started).metadata.actor, actor, 'the instance Home Assistant started names its account')
  await switchedOn
  t.equal(plug.isOn, true, 'the plug is on')
  const command = eventsOf(service, `homeassistant-${account.account_identifier}`).find(e => e.type === 'HomeAssistantCommandReceived')
  t.match(command, { data: { device_kind: 'socket', device_identifier: house.socket.socketId, command: 'ON' } }, 'the command is recorded on the account\'s stream')
  const commanded = eventsOf(service, `socket-${house.socket.socketId}`).filter(e => e.type === 'SocketCommanded' && e.data.command === 'POWER')
  t.equal(commanded.at(-1)!.metadata.actor, actor, 'and so is the POWER it decided')

  const stopped = committed(service, e => e.type === 'InstanceStopped' && e.stream_id === `socket-${house.socket.socketId}`)
  const switchedOff = ha.next(m => m.topic === socketState && JSON.parse(m.payload).switch === 'OFF', ha.received.length)
  await publish(ha.client, `devicelog/ha/socket/${house.socket.socketId}/set`, 'OFF')
  t.match(await stopped, { metadata: { actor }, data: { reason: 'requested' } })
  await switchedOff
  t.equal(plug.isOn, false, 'the plug is off')

  // Pressed on at its button (no instance runs): OFF from Home Assistant still switches it off.
  const pressed = committed(service, e => e.type === 'PowerReported' && e.stream_id === `socket-${house.socket.socketId}` && e.data.outcome === 'pressed')
  await plug.press()
  t.match((await pressed).data, { power: 'ON' }, 'the press is recorded')
  const offAgain = committed(service, e => e.type === 'PowerReported' && e.stream_id === `socket-${house.socket.socketId}` && e.data.outcome === 'confirmed' && e.data.power === 'OFF')
  await publish(ha.client, `devicelog/ha/socket/${house.socket.socketId}/set`, 'OFF')
  await offAgain
  t.equal(plug.isOn, false, 'a plug pressed on is switched off from Home Assistant')
  const off = eventsOf(service, `socket-${house.socket.socketId}`).filter(e => e.type === 'SocketCommanded' && e.data.command === 'POWER').at(-1)!
  t.match(off, { data: { payload: 'OFF', instance_identifier: null }, metadata: { actor } }, 'its POWER OFF names the account')

  // The valve: its controller follows the retained valve command, as the real one does.
  const valve = await connectValve(t, service, house.zone)
  valve.on('message', (_topic, payload) => {
    void publish(valve, `zones/${house.zone.zoneId}/state`, { open: JSON.parse(payload.toString()).open })
  })
  await valve.subscribeAsync(`zones/${house.zone.zoneId}/valve`, { qos: 1 })
  const manual = committed(service, e => e.type === 'ManualModeStarted' && e.stream_id === `zone-${house.zone.zoneId}`)
  const beforeOpen = ha.received.length
  const open = ha.next(m => m.topic === zoneState && JSON.parse(m.payload).valve === 'open', beforeOpen)
  await publish(ha.client, `devicelog/ha/zone/${house.zone.zoneId}/set`, 'OPEN')
  t.equal((await manual).metadata.actor, actor, 'manual mode started by Home Assistant names its account')
  t.match(JSON.parse((await open).payload), { valve: 'open', mode: 'manual_mode' }, 'the valve reads open once the controller reports it')
  t.ok(ha.received.slice(beforeOpen).some(m => m.topic === zoneState && JSON.parse(m.payload).valve === 'opening'), 'opening while commanded and not yet reported')
  const ended = committed(service, e => e.type === 'ZoneRunEnded' && e.stream_id === `zone-${house.zone.zoneId}`)
  const closed = ha.next(m => m.topic === zoneState && JSON.parse(m.payload).valve === 'closed', ha.received.length)
  await publish(ha.client, `devicelog/ha/zone/${house.zone.zoneId}/set`, 'CLOSE')
  t.equal((await ended).metadata.actor, actor)
  await closed

  // Bad commands are refused and recorded, the connection stays.
  const accountStream = `homeassistant-${account.account_identifier}`
  await publish(ha.client, `devicelog/ha/socket/${house.socket.socketId}/set`, 'TOGGLE')
  await publish(ha.client, `devicelog/ha/zone/${house.zone.zoneId}/set`, 'ON')
  await publish(ha.client, `devicelog/ha/sensor/${house.sensor.sensorId}/set`, 'ON')
  const other = await createSensor(service)
  await publish(ha.client, `devicelog/ha/sensor/${other.sensorId}/set`, 'ON')
  await publish(ha.client, 'measurements/anything', '{}')
  const refused = eventsOf(service, accountStream).filter(e => e.type === 'MessageRejected').map(e => e.data)
  t.match(refused, [
    { topic: `devicelog/ha/socket/${house.socket.socketId}/set`, reason: 'invalid_payload', detail: 'expected ON or OFF' },
    { topic: `devicelog/ha/zone/${house.zone.zoneId}/set`, reason: 'invalid_payload', detail: 'expected OPEN or CLOSE' },
    { topic: `devicelog/ha/sensor/${house.sensor.sensorId}/set`, reason: 'invalid_payload', detail: 'a sensor takes no commands' },
    { topic: `devicelog/ha/sensor/${other.sensorId}/set`, reason: 'foreign_topic' },
    { topic: 'measurements/anything', reason: 'foreign_topic' }
  ])
  t.ok(ha.client.connected, 'still connected')
  t.equal(eventsOf(service, accountStream).filter(e => e.type === 'HomeAssistantCommandReceived').length, 5, 'no refused command was taken (ON, OFF, OFF after the press, OPEN, CLOSE)')
})

t.test('the account\'s ACL: other subscriptions get 0x80 and are recorded; devices may not publish under either prefix', async t => {
  const service = await startService(t, { env: HA })
  const house = await home(service)
  const other = await createSensor(service)
  const account = await createAccount(service, house.token, house.networkId)
  const ha = await connectHomeAssistant(t, service, account)
  const refusedFilters = ['tasmota/discovery/#', '#', 'devicelog/ha/#', 'devicelog/ha/sensor/+/state', `devicelog/ha/sensor/${other.sensorId}/state`,
    `configurations/${house.sensor.sensorId}`, `stat/${house.socket.topic}/#`]
  t.same(await ha.subscribe(refusedFilters), refusedFilters.map(() => REFUSED), 'each refused with 0x80')
  t.same(await ha.subscribe([`${PREFIX}/#`, 'devicelog/ha/status', `devicelog/ha/socket/${house.socket.socketId}/#`]), [1, 1, 1], 'what it may have is granted')
  const refusals = eventsOf(service, `homeassistant-${account.account_identifier}`).filter(e => e.type === 'SubscriptionRefused').map(e => e.data)
  t.same(refusals.map(r => r.topic), refusedFilters, 'each refusal is recorded on the account\'s stream')
  t.match(refusals[0], { reason: 'foreign_topic', detail: /Tasmota plugs are devicelog's.*HA_TASMOTA=native/ })
  t.ok(ha.client.connected)

  // A device publishing where Home Assistant reads is refused and recorded, and reaches nobody.
  const sensor = await connectSensor(t, service, house.sensor)
  const forged = `${PREFIX}/device/${objectId('sensor', house.sensor.sensorId)}/config`
  await publish(sensor, forged, '{"device":{}}')
  await publish(sensor, `devicelog/ha/sensor/${house.sensor.sensorId}/state`, '{"temperature":99}')
  await publish(sensor, `${PREFIX}/status`, 'online')
  const rejected = eventsOf(service, `sensor-${house.sensor.sensorId}`).filter(e => e.type === 'MessageRejected').map(e => e.data)
  t.match(rejected, [
    { topic: forged, reason: 'foreign_topic', detail: /reserved for home_assistant/ },
    { topic: `devicelog/ha/sensor/${house.sensor.sensorId}/state`, reason: 'foreign_topic' },
    { topic: `${PREFIX}/status`, reason: 'foreign_topic' }
  ])
  // A round trip after them: had they been delivered, they would have arrived before.
  await ha.next(m => m.topic === 'devicelog/ha/status')
  await publish(ha.client, `${PREFIX}/status`, 'online')
  t.notOk(ha.received.some(m => m.payload === '{"device":{}}' || m.payload === '{"temperature":99}'), 'none of them reached Home Assistant')

  // Off, the account may do nothing; the route is not there.
  const off = await startService(t)
  const offHouse = await createSensor(off)
  t.equal((await http(off, 'POST', '/api/v1/integrations/home-assistant', { token: offHouse.token, body: { network_identifier: offHouse.networkId } })).status, 404)
})

t.test('the account route: a network member only; the password is shown once and kept as SHA-256', async t => {
  const service = await startService(t, { env: HA })
  const house = await createSensor(service)
  const stranger = await createSensor(service)
  const route = '/api/v1/integrations/home-assistant'
  t.equal((await http(service, 'POST', route, { body: { network_identifier: house.networkId } })).status, 401, 'no token')
  t.equal((await http(service, 'POST', route, { token: stranger.token, body: { network_identifier: house.networkId } })).status, 404, 'not a member')
  t.equal((await http(service, 'POST', route, { token: house.token, body: {} })).status, 400, 'no network')
  const created = await http(service, 'POST', route, { token: house.token, body: { network_identifier: house.networkId } })
  t.equal(created.status, 201)
  t.match(created.body, { network_identifier: house.networkId, discovery_prefix: PREFIX, birth_topic: `${PREFIX}/status`, mqtt: { username: String, password: String } })
  const [event] = eventsOf(service, `homeassistant-${created.body.account_identifier}`)
  t.equal(event!.type, 'HomeAssistantAccountCreated')
  t.notOk(JSON.stringify(event).includes(created.body.mqtt.password), 'the password is not in the log')
  t.match(event!.metadata, { actor: `user:${house.userId}` })
  await t.rejects(connectMqtt(t, service.mqttUrl, { username: created.body.mqtt.username, password: 'wrong' }), 'a wrong password is refused')
})

t.test('a removed charger gets an empty retained config', async t => {
  const service = await startService(t, { env: HA })
  const house = await home(service)
  const account = await createAccount(service, house.token, house.networkId)
  const ha = await connectHomeAssistant(t, service, account)
  await ha.subscribe(HA_FILTERS)
  await ha.next(m => m.topic === configTopic('charger', house.chargerId))
  const from = ha.received.length
  t.equal((await http(service, 'DELETE', `/api/v1/chargers/${house.chargerId}`, { token: house.token })).status, 204)
  // (Home Assistant's filters overlap: each retained config comes once per matching filter, so the
  // first one's copy may still arrive after `from`. The removal is the empty one; none comes, the test times out.)
  const removal = await ha.next(m => m.topic === configTopic('charger', house.chargerId) && m.payload === '', from)
  t.match(removal, { payload: '', retain: false }, 'an empty config removes the device from Home Assistant')
  // A Home Assistant that subscribes now finds no config for it.
  const late = await connectHomeAssistant(t, service, account)
  await late.subscribe(HA_FILTERS)
  await late.next(m => m.topic === configTopic('host', house.hostId))
  t.notOk(late.received.some(m => m.topic === configTopic('charger', house.chargerId)))
})

t.test('HA_TASMOTA=native leaves plugs to Home Assistant\'s Tasmota integration', async t => {
  const service = await startService(t, { env: { ...HA, HA_TASMOTA: 'native' } })
  const house = await home(service)
  const other = await createSocket(service)
  const account = await createAccount(service, house.token, house.networkId)
  // Stock firmware: it announces itself on tasmota/discovery/<MAC>/config (retained).
  const plug = await startPlug(t, service, house.socket, { firmware: 'real' })
  const ha = await connectHomeAssistant(t, service, account)
  t.same(await ha.subscribe([...HA_FILTERS, 'tasmota/discovery/#', `stat/${house.socket.topic}/#`, `stat/${other.topic}/#`]), [1, 1, 1, 1, 1, 1, REFUSED],
    'Tasmota\'s discovery and its network\'s plugs\' topics are open; another network\'s plug is not')
  const config = JSON.parse((await ha.next(m => m.topic === configTopic('socket', house.socket.socketId))).payload) as Config
  t.same(describe(checkDeviceDiscovery(PREFIX, configTopic('socket', house.socket.socketId), JSON.stringify(config))), [])
  t.notOk('switch' in config.components, 'no switch: the Tasmota integration has the plug')
  t.ok('energy' in config.components)
  await ha.next(m => m.topic.startsWith('tasmota/discovery/') && m.topic.endsWith('/config'))
  // Its Tasmota integration commands the plug directly: relayed, and recorded.
  const relayed = committed(service, e => e.type === 'HomeAssistantMessageRelayed')
  const on = committed(service, e => e.type === 'PowerReported' && e.data.power === 'ON')
  await publish(ha.client, `cmnd/${house.socket.topic}/POWER`, 'ON')
  t.match(await relayed, { data: { device_identifier: house.socket.socketId, topic: `cmnd/${house.socket.topic}/POWER`, payload: 'ON' } })
  await on
  t.equal(plug.isOn, true, 'the plug did as Home Assistant asked')
  await publish(ha.client, `cmnd/${other.topic}/POWER`, 'ON')
  t.match(eventsOf(service, `homeassistant-${account.account_identifier}`).filter(e => e.type === 'MessageRejected').map(e => e.data), [{ topic: `cmnd/${other.topic}/POWER`, reason: 'foreign_topic' }],
    'another network\'s plug is not Home Assistant\'s to command')
})

t.test('a command recorded but not run when the service stopped is run at the next start, if recent; an older one is not', async t => {
  const clock = new ManualClock()
  const first = await startService(t, { env: HA, clock })
  const { dir } = first
  const house = await home(first)
  const account = await createAccount(first, house.token, house.networkId)
  await first.close()

  // As if the service had stopped between committing each command and running it: recorded with
  // discovery off, so that nothing runs them.
  const recording = await startService(t, { dir, clock })
  const receive = async (device_kind: string, device_identifier: string, command: 'ON' | 'OPEN') => {
    const [received] = await recording.app.store.append(`homeassistant-${account.account_identifier}`, [{
      type: 'HomeAssistantCommandReceived', data: { account_identifier: account.account_identifier, device_kind, device_identifier, command }
    }], { metadata: { actor: `mqtt:${account.mqtt.username}` }, expectedVersion: 'any' })
    return received!
  }
  const stale = await receive('zone', house.zone.zoneId, 'OPEN')
  clock.advance(61_000)
  const recent = await receive('socket', house.socket.socketId, 'ON')
  await recording.close()

  const service = await startService(t, { env: HA, clock, dir })
  const socketStream = `socket-${house.socket.socketId}`
  const caused = (received: RecordedEvent, stream: string) =>
    eventsOf(service, stream).filter(e => e.metadata.correlation_id === `home_assistant_command:${received.position}`)
  await new Promise<void>(resolve => {
    const done = () => caused(recent, socketStream).some(e => e.type === 'InstanceStarted')
    const stop = service.app.store.subscribe(() => { if (done()) { stop(); resolve() } })
    if (done()) { stop(); resolve() }
  })
  t.match(caused(recent, socketStream).find(e => e.type === 'InstanceStarted'), { metadata: { actor: `home_assistant:${account.account_identifier}` } },
    'the recent ON is decided at start, by the socket\'s decider, with the account as actor')
  t.same(caused(stale, `zone-${house.zone.zoneId}`), [], 'the OPEN recorded over a minute before is not run')
  t.notOk(eventsOf(service, `zone-${house.zone.zoneId}`).some(e => e.type === 'ManualModeStarted'), 'the valve was not opened')
})
