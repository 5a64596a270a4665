import { once } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { ManualClock } from '../src/clock.ts'
import { HISTORY_POINTS } from '../src/hosts/channels.ts'
import { MAX_BUFFERED_BYTES } from '../src/live/websocket.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, type Service, type Teardown } from './helpers/service.ts'
import { openWs, upgradeByHand, upgradeStatus, type TrackedSocket } from './helpers/websocket.ts'
import { committed } from './helpers/sockets.ts'

// The per-device live channels end to end: real HTTP upgrades on an ephemeral port, real `ws`
// clients (and a raw TCP client that never reads), real MQTT devices whose messages commit the
// events each channel is a view of. No sleeps: every wait is on a committed event or a message.

const T0 = 1767225600 // 2026-01-01T00:00:00Z, Unix seconds
const clockOf = (service: Service) => service.clock as ManualClock
const iso = (service: Service) => new Date(service.clock.now()).toISOString()

let counter = 0

/** A user and a network of theirs, through the public API. */
async function createUser (service: Service): Promise<{ token: string, networkId: string }> {
  const user = await http(service, 'POST', '/users', { body: { username: `dash-${process.pid}-${++counter}`, password: 'correct horse' } })
  if (user.status !== 201) throw new Error(`POST /users: ${user.status}`)
  const token = user.body.access_token as string
  const network = await http(service, 'POST', '/networks', { token, body: { network_name: `lab-${++counter}` } })
  if (network.status !== 201) throw new Error(`POST /networks: ${network.status}`)
  return { token, networkId: network.body.network_identifier as string }
}

interface HostFixture { token: string, networkId: string, id: string, password: string }

async function registerHost (service: Service, owner: { token: string, networkId: string }, name = `host-${++counter}`): Promise<HostFixture> {
  const created = await http(service, 'POST', '/api/v1/devices', { token: owner.token, body: { name, kind: 'host', network_identifier: owner.networkId } })
  if (created.status !== 201) throw new Error(`POST /api/v1/devices: ${created.status} ${JSON.stringify(created.body)}`)
  return { ...owner, id: created.body.id, password: created.body.mqtt.password }
}

const connectAgent = (t: Teardown, service: Service, host: HostFixture): Promise<MqttClient> =>
  connectMqtt(t, service.mqttUrl, { username: host.id, password: host.password, clientId: `agent-${randomUUID().slice(0, 8)}` })

const channelPath = (deviceId: string, token: string | null) =>
  `/api/v1/devices/${deviceId}/ws${token === null ? '' : `?access_token=${encodeURIComponent(token)}`}`

type Client = TrackedSocket

/** Opens a device's channel socket and reads its `connected` greeting. */
async function openDevice (t: Teardown, service: Service, deviceId: string, token: string): Promise<Client> {
  const client = await openWs(t, service, channelPath(deviceId, token))
  const greeting = await client.next()
  if (greeting.type !== 'connected') throw new Error(`expected connected first, got ${JSON.stringify(greeting)}`)
  return client
}

/**
 * Everything the server sent before it answered a ping now: the server handles a socket's
 * messages in order and sends each update while its event commits, so what is not here was
 * not sent. Proves absence without waiting for time to pass.
 */
async function drain (client: Client): Promise<any[]> {
  client.send({ type: 'ping' })
  const before: any[] = []
  for (;;) {
    const message = await client.next()
    if (message.type === 'pong') return before
    before.push(message)
  }
}

/** Subscribes and returns the snapshots, one per channel, after checking the acknowledgement. */
async function subscribe (t: Test, client: Client, channels: string[]): Promise<Record<string, any>> {
  client.send({ type: 'subscribe', channels })
  t.strictSame(await client.next(), { type: 'subscribed', channels }, `subscribed to ${channels.join(', ')}`)
  const snapshots: Record<string, any> = {}
  for (const channel of channels) {
    const snapshot = await client.next()
    t.equal(snapshot.type, channel, `the snapshot of ${channel}, in the order asked`)
    snapshots[channel] = snapshot
  }
  return snapshots
}

/** Waits for the next committed event of this type on this stream. */
const nextEvent = (service: Service, streamId: string, type: string): Promise<RecordedEvent> =>
  committed(service, e => e.stream_id === streamId && e.type === type)

t.test('POST /api/v1/devices registers a host and returns its MQTT credentials', async t => {
  const service = await startService(t)
  const owner = await createUser(service)
  const stranger = await createUser(service)

  const created = await http(service, 'POST', '/api/v1/devices', { token: owner.token, body: { name: 'build box', kind: 'host', network_identifier: owner.networkId } })
  t.equal(created.status, 201)
  t.match(created.body.id, /^[0-9a-f-]{36}$/, 'an id')
  t.strictSame(created.body, {
    id: created.body.id,
    kind: 'host',
    name: 'build box',
    network_identifier: owner.networkId,
    online: false,
    last_seen: null,
    connected_since: null,
    mqtt: { username: created.body.id, password: created.body.mqtt.password }
  }, 'the device view, offline, with its MQTT username (its id) and a password')
  t.ok(created.body.mqtt.password.length >= 20, 'a real secret')

  const listed = await http(service, 'GET', `/api/v1/devices/${created.body.id}`, { token: owner.token })
  t.equal(listed.status, 200)
  t.equal(listed.body.kind, 'host', 'readable as a device afterwards')

  // The credentials work: the agent connects (a wrong password does not).
  const agent = await connectMqtt(t, service.mqttUrl, { username: created.body.id, password: created.body.mqtt.password })
  t.ok(agent.connected, 'the agent connects with the returned credentials')
  const refused = await connectMqtt(t, service.mqttUrl, { username: created.body.id, password: 'wrong' }).then(() => 'connected', (error: Error) => error.message)
  t.match(refused, /Bad username or password|Not authorized/i, 'a wrong password is refused')

  const post = (body: unknown, token: string | null = owner.token) => http(service, 'POST', '/api/v1/devices', { token: token ?? undefined, body })
  t.equal((await post({ name: 'x', kind: 'sensor', network_identifier: owner.networkId })).status, 400, 'kind other than host: 400')
  t.equal((await post({ name: 'x', network_identifier: owner.networkId })).status, 400, 'no kind: 400')
  t.equal((await post({ kind: 'host', network_identifier: owner.networkId })).status, 400, 'missing name: 400')
  t.equal((await post({ name: '', kind: 'host', network_identifier: owner.networkId })).status, 400, 'empty name: 400')
  t.equal((await post({ name: 'x', kind: 'host' })).status, 400, 'missing network: 400')
  const foreign = await post({ name: 'x', kind: 'host', network_identifier: stranger.networkId })
  t.equal(foreign.status, 404, "another user's network: 404")
  t.equal((await post({ name: 'x', kind: 'host', network_identifier: randomUUID() })).status, 404, 'an unknown network: 404')
  t.equal((await post({ name: 'x', kind: 'host', network_identifier: owner.networkId }, null)).status, 401, 'no token: 401')
  t.equal((await post({ name: 'x', kind: 'host', network_identifier: owner.networkId }, 'not-a-token')).status, 401, 'a wrong token: 401')

  const mine = await http(service, 'GET', `/api/v1/devices?network=${owner.networkId}`, { token: owner.token })
  t.strictSame(mine.body.map((d: any) => d.id), [created.body.id], 'the refused registrations recorded nothing')
  t.strictSame(service.app.store.read({ type: 'HostRegistered' }).map(e => e.stream_id), [`host-${created.body.id}`], 'one HostRegistered, on host-<id>')
})

t.test('the channel socket: greeting, ping, subscribe, errors, and who may open it', async t => {
  const service = await startService(t)
  const owner = await createUser(service)
  const host = await registerHost(service, owner)
  const stranger = await createUser(service)
  const strangersHost = await registerHost(service, stranger)

  const client = await openWs(t, service, channelPath(host.id, host.token))
  t.strictSame(await client.next(), { type: 'connected', data: { deviceUuid: host.id, timestamp: iso(service) } }, 'connected first, with the device id and the time')

  clockOf(service).advance(1500)
  client.send({ type: 'ping' })
  t.strictSame(await client.next(), { type: 'pong', data: { timestamp: iso(service) } }, 'ping: pong with the time')

  // Subscribing gets the acknowledgement and then one snapshot per channel: nothing reported yet.
  const snapshots = await subscribe(t, client, ['system-info', 'processes', 'network-interfaces', 'history', 'status'])
  t.strictSame(snapshots['system-info'], { type: 'system-info', data: null, position: null }, 'no system info yet: null, no position')
  t.strictSame(snapshots.processes, { type: 'processes', data: null, position: null })
  t.strictSame(snapshots['network-interfaces'], { type: 'network-interfaces', data: null, position: null })
  t.strictSame(snapshots.history, { type: 'history', data: { cpu: [], memory: [], network: [] }, position: null }, 'no metrics yet: the empty charts')
  t.strictSame(snapshots.status, { type: 'status', data: { online: false, last_seen: null, connected_since: null }, position: null }, 'status: never connected')

  // Subscribing again to a channel already subscribed: acknowledged, no second snapshot.
  client.send({ type: 'subscribe', channels: ['status'] })
  t.strictSame(await drain(client), [{ type: 'subscribed', channels: ['status'] }], 'a repeated subscription sends no second snapshot')

  // Unknown channels: an error naming them; the known ones of the same message still subscribe.
  client.send({ type: 'subscribe', channels: ['cpu-temperature'] })
  const unknown = await client.next()
  t.equal(unknown.type, 'error')
  t.match(unknown.message, /cpu-temperature/, 'the error names the unknown channel')
  t.strictSame(Object.keys(unknown).sort(), ['message', 'type'], '{type: "error", message}')
  t.strictSame(await drain(client), [], 'nothing else for an unknown channel')

  client.send({ type: 'subscribe', channels: ['nope', 'measurements'] })
  const mixed = await drain(client)
  t.equal(mixed[0]?.type, 'error', 'the unknown one: an error')
  t.match(mixed[0]?.message, /nope/)
  t.strictSame(mixed.slice(1), [{ type: 'subscribed', channels: ['measurements'] }, { type: 'measurements', data: null, position: null }],
    'the known one: subscribed and its snapshot')

  // Malformed client messages: an error each, and the socket stays open.
  const malformed: Array<[string, string | Buffer]> = [
    ['not JSON', 'subscribe me'],
    ['truncated JSON', '{"type": "subscribe", "channels": ['],
    ['no type', JSON.stringify({ channels: ['status'] })],
    ['unknown type', JSON.stringify({ type: 'dance' })],
    ['channels missing', JSON.stringify({ type: 'subscribe' })],
    ['channels not an array', JSON.stringify({ type: 'subscribe', channels: 'status' })],
    ['channels empty', JSON.stringify({ type: 'unsubscribe', channels: [] })],
    ['a channel not a string', JSON.stringify({ type: 'subscribe', channels: [42] })],
    ['a JSON array', JSON.stringify([{ type: 'ping' }])],
    ['JSON null', 'null'],
    ['a binary frame', Buffer.from(JSON.stringify({ type: 'ping' }))]
  ]
  for (const [name, raw] of malformed) {
    client.ws.send(raw)
    const answer = await client.next()
    t.equal(answer.type, 'error', `${name}: an error`)
    t.type(answer.message, 'string', `${name}: with a message`)
  }
  client.send({ type: 'ping' })
  t.equal((await client.next()).type, 'pong', 'the socket is still open and answering after all of them')
  t.equal(client.ws.readyState, client.ws.OPEN)

  // A bearer header works as well as ?access_token=.
  const byHeader = await openWs(t, service, `/api/v1/devices/${host.id}/ws`, { headers: { authorization: `Bearer ${host.token}` } })
  t.equal((await byHeader.next()).type, 'connected', 'an Authorization header is accepted')

  // Refusals are plain HTTP answers to the upgrade.
  t.equal(await upgradeStatus(service, channelPath(host.id, null)), 401, 'no token: 401')
  t.equal(await upgradeStatus(service, channelPath(host.id, 'not-a-token')), 401, 'a wrong token: 401')
  t.equal(await upgradeStatus(service, channelPath(strangersHost.id, host.token)), 404, "another user's device: 404")
  t.equal(await upgradeStatus(service, channelPath(randomUUID(), host.token)), 404, 'an unknown id: 404')
  t.equal(await upgradeStatus(service, channelPath(host.id, stranger.token)), 404, "a stranger asking for this user's device: 404")
})

const systemInfo = { os: 'Debian GNU/Linux 12', architecture: 'x86_64', uptime: 86400, hostname: 'build-box', ipAddress: '10.0.0.7', macAddress: '52:54:00:12:34:56', kernel: '6.1.0' }
const processes = { top_processes: [{ pid: 1, name: 'systemd', cpu: 0.1, mem: 0.2 }, { pid: 4242, name: 'node', cpu: 12.5, mem: 3.4 }] }
const interfaces = { interfaces: [{ name: 'eth0', ip4: '10.0.0.7', mac: '52:54:00:12:34:56', operstate: 'up' }, { name: 'lo', ip4: '127.0.0.1', operstate: 'unknown' }] }
const MiB = 1024 * 1024
const metrics = (i: number) => ({ cpu_usage: i + 0.4, memory_usage: (512 + i) * MiB, memory_total: 2048 * MiB, network_rx: 1000 * i, network_tx: 10 * i })

t.test('host channels: each report pushes exactly one update, with its position, and is the next snapshot', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const owner = await createUser(service)
  const host = await registerHost(service, owner)
  const other = await registerHost(service, owner)
  const stream = `host-${host.id}`
  const agent = await connectAgent(t, service, host)
  const dashboard = await openDevice(t, service, host.id, host.token)
  const otherDashboard = await openDevice(t, service, other.id, other.token)
  const channels = ['system-info', 'processes', 'network-interfaces', 'history']
  await subscribe(t, dashboard, channels)
  await subscribe(t, otherDashboard, channels)

  /** Publishes as the agent and returns the event it committed. */
  async function report (topic: string, payload: object, type: string): Promise<RecordedEvent> {
    const event = nextEvent(service, stream, type)
    await publish(agent, `devices/${host.id}/${topic}`, payload)
    return event
  }

  const infoEvent = await report('system-info', systemInfo, 'SystemInfoReported')
  t.strictSame(await drain(dashboard), [{ type: 'system-info', data: systemInfo, position: infoEvent.position }],
    'system-info: one update, every field (extra ones too), the position of its event')

  const processesEvent = await report('processes', processes, 'ProcessesReported')
  t.strictSame(await drain(dashboard), [{ type: 'processes', data: processes, position: processesEvent.position }], 'processes: one update')

  const interfacesEvent = await report('network-interfaces', interfaces, 'NetworkInterfacesReported')
  t.strictSame(await drain(dashboard), [{ type: 'network-interfaces', data: interfaces, position: interfacesEvent.position }], 'network-interfaces: one update')

  // Metrics: each one pushes the history, the last 30 points in the reference's shape.
  const chartTime = /^\d{2}:\d{2} (AM|PM)$/
  let last: any
  for (let i = 0; i < HISTORY_POINTS + 1; i++) {
    clock.advance(60_000)
    const event = await report('metrics', metrics(i), 'MetricsReported')
    const updates = await drain(dashboard)
    t.equal(updates.length, 1, `metrics ${i}: exactly one update`)
    last = updates[0]
    if (last?.type !== 'history' || last.position !== event.position) t.fail(`metrics ${i}: the history with position ${event.position}`, { found: last })
    if (last?.data?.cpu?.length !== Math.min(i + 1, HISTORY_POINTS)) t.fail(`metrics ${i}: ${Math.min(i + 1, HISTORY_POINTS)} points`, { found: last?.data?.cpu?.length })
  }
  t.equal(HISTORY_POINTS, 30)
  t.equal(last.data.cpu.length, 30, 'after 31 reports: 30 cpu points')
  t.equal(last.data.memory.length, 30, '30 memory points')
  t.equal(last.data.network.length, 30, '30 network points')
  t.strictSame(Object.keys(last.data).sort(), ['cpu', 'memory', 'network'])
  // The oldest (i = 0) fell off; the rest are oldest first.
  t.strictSame(last.data.cpu.map((p: any) => p.value), Array.from({ length: 30 }, (_, k) => Math.round(k + 1 + 0.4)), 'cpu: rounded percent, points 1..30, oldest first')
  t.strictSame(last.data.memory[0], { time: last.data.memory[0].time, used: 513, available: 2048 - 513 }, 'memory: used and available in MiB')
  t.strictSame(last.data.memory[29], { time: last.data.memory[29].time, used: 542, available: 2048 - 542 })
  t.strictSame(last.data.network[29], { time: last.data.network[29].time, download: 30_000, upload: 300 }, 'network: rx as download, tx as upload')
  for (const series of ['cpu', 'memory', 'network'] as const) {
    t.ok(last.data[series].every((p: any) => chartTime.test(p.time)), `${series}: the reference's time labels`)
    t.strictSame(Object.keys(last.data[series][0]).sort(), { cpu: ['time', 'value'], memory: ['available', 'time', 'used'], network: ['download', 'time', 'upload'] }[series])
  }
  t.strictSame(await drain(otherDashboard), [], "another host's dashboard got none of it")

  // A second report of the same kind replaces the first in the snapshot.
  const newerInfo = { ...systemInfo, uptime: 90000 }
  const newerEvent = await report('system-info', newerInfo, 'SystemInfoReported')
  await drain(dashboard)

  // A dashboard that subscribes now gets the latest of each, once.
  const late = await openDevice(t, service, host.id, host.token)
  const snapshots = await subscribe(t, late, channels)
  t.strictSame(snapshots['system-info'], { type: 'system-info', data: newerInfo, position: newerEvent.position }, 'system-info snapshot: the latest report')
  t.strictSame(snapshots.processes, { type: 'processes', data: processes, position: processesEvent.position }, 'processes snapshot')
  t.strictSame(snapshots['network-interfaces'], { type: 'network-interfaces', data: interfaces, position: interfacesEvent.position }, 'network-interfaces snapshot')
  t.strictSame(snapshots.history, { type: 'history', data: last.data, position: last.position }, 'history snapshot: the same 30 points, the last metrics position')
  t.strictSame(await drain(late), [], 'one snapshot per channel, nothing more')
})

t.test('a channel read from the projections updates once per committed group, with the last position; the others once per event', async t => {
  const service = await startService(t)
  const owner = await createUser(service)
  const host = await registerHost(service, owner)
  const stream = `host-${host.id}`
  const dashboard = await openDevice(t, service, host.id, host.token)
  await subscribe(t, dashboard, ['history', 'metrics'])

  // Two reports committed together, as group commit does under load.
  const [first, second] = await service.app.store.transact(tx => tx.append(stream, [
    { type: 'MetricsReported', data: { device_identifier: host.id, ...metrics(1) } },
    { type: 'MetricsReported', data: { device_identifier: host.id, ...metrics(2) } }
  ], { metadata: { actor: 'test', correlation_id: randomUUID() } }))
  const updates = await drain(dashboard)
  const history = updates.filter(u => u.type === 'history')
  t.equal(history.length, 1, 'one history update for the group')
  t.equal(history[0]?.position, second!.position, 'with the position of its last report: the data it shows')
  t.strictSame(history[0]?.data.cpu.map((p: any) => p.value), [1, 2], 'both points')
  t.strictSame(updates.filter(u => u.type === 'metrics'), [
    { type: 'metrics', data: metrics(1), position: first!.position },
    { type: 'metrics', data: metrics(2), position: second!.position }
  ], 'metrics: each report as the agent sent it, with its own position')
})

t.test('bad host reports are rejected and recorded; the agent stays connected and the channels quiet', async t => {
  const service = await startService(t)
  const owner = await createUser(service)
  const host = await registerHost(service, owner)
  const other = await registerHost(service, owner)
  const stream = `host-${host.id}`
  const agent = await connectAgent(t, service, host)
  let closed = false
  agent.on('close', () => { closed = true })
  const dashboard = await openDevice(t, service, host.id, host.token)
  await subscribe(t, dashboard, ['system-info', 'processes', 'network-interfaces', 'history'])

  const cases: Array<{ name: string, topic: string, payload: string, reason: string, detail?: RegExp }> = [
    { name: 'bad JSON', topic: `devices/${host.id}/metrics`, payload: '{"cpu_usage": ', reason: 'invalid_json' },
    { name: 'cpu_usage not a number', topic: `devices/${host.id}/metrics`, payload: JSON.stringify({ ...metrics(1), cpu_usage: 'x' }), reason: 'invalid_payload', detail: /cpu_usage/ },
    { name: 'cpu_usage over 100', topic: `devices/${host.id}/metrics`, payload: JSON.stringify({ ...metrics(1), cpu_usage: 150 }), reason: 'invalid_payload', detail: /cpu_usage/ },
    { name: 'a metric missing', topic: `devices/${host.id}/metrics`, payload: JSON.stringify({ cpu_usage: 1 }), reason: 'invalid_payload', detail: /memory_usage/ },
    { name: 'processes not a list', topic: `devices/${host.id}/processes`, payload: JSON.stringify({ top_processes: 'many' }), reason: 'invalid_payload', detail: /top_processes/ },
    { name: 'system-info not an object', topic: `devices/${host.id}/system-info`, payload: '"linux"', reason: 'invalid_payload' },
    { name: "another device's topic", topic: `devices/${other.id}/metrics`, payload: JSON.stringify(metrics(1)), reason: 'foreign_topic' },
    { name: 'an unknown subtopic', topic: `devices/${host.id}/temperature`, payload: JSON.stringify({ celsius: 40 }), reason: 'unknown_topic' },
    { name: 'a deeper topic', topic: `devices/${host.id}/metrics/cpu`, payload: JSON.stringify(metrics(1)), reason: 'unknown_topic' },
    { name: 'a sensor topic', topic: `measurements/${host.id}`, payload: JSON.stringify(metrics(1)), reason: 'unknown_topic' }
  ]
  for (const c of cases) {
    const rejected = nextEvent(service, stream, 'MessageRejected')
    await publish(agent, c.topic, c.payload)
    const event = await rejected
    if (event.type !== 'MessageRejected') throw new Error('unreachable')
    t.equal(event.data.reason, c.reason, `${c.name}: ${c.reason}`)
    t.equal(event.data.topic, c.topic, `${c.name}: the topic recorded`)
    t.equal(event.data.username, host.id, `${c.name}: the agent's username recorded`)
    if (c.detail !== undefined) t.match(event.data.detail, c.detail, `${c.name}: the detail names the field`)
  }
  t.notOk(closed, 'the agent was never disconnected')
  t.ok(agent.connected)
  t.strictSame(await drain(dashboard), [], 'no channel got an update from a rejected report')
  t.strictSame(service.app.store.read({ stream, type: 'MetricsReported' }), [], 'nothing reported')
  t.strictSame(service.app.store.read({ stream: `host-${other.id}` }).map(e => e.type), ['HostRegistered'], "the other host's stream is untouched")

  // And a good report still goes through on the same connection.
  const accepted = nextEvent(service, stream, 'MetricsReported')
  await publish(agent, `devices/${host.id}/metrics`, metrics(7))
  const event = await accepted
  const [update] = await drain(dashboard)
  t.equal(update?.type, 'history')
  t.equal(update?.position, event.position, 'the next good report is pushed')
  t.equal(update?.data.cpu.length, 1, 'with only the accepted point')
})

t.test('sensor channels: measurements, logs, heartbeats and configuration, snapshot then each update', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service, { configuration: { interval: 60 } })
  const stream = `sensor-${sensor.sensorId}`
  const registered = service.app.store.read({ stream, type: 'SensorRegistered' })[0]!
  const client = await connectSensor(t, service, sensor)
  const dashboard = await openDevice(t, service, sensor.sensorId, sensor.token)

  const snapshots = await subscribe(t, dashboard, ['measurements', 'logs', 'heartbeats', 'configuration'])
  t.strictSame(snapshots.measurements, { type: 'measurements', data: null, position: null }, 'no measurements yet')
  t.strictSame(snapshots.logs, { type: 'logs', data: null, position: null }, 'no logs yet')
  t.strictSame(snapshots.heartbeats, { type: 'heartbeats', data: null, position: null }, 'no heartbeats yet')
  t.strictSame(snapshots.configuration, {
    type: 'configuration',
    data: { revision: 0, configuration: { interval: 60 }, revised_at: snapshots.configuration.data.revised_at, acknowledged: false, acknowledged_at: null, success: null },
    position: registered.position
  }, 'configuration: revision 0, not acknowledged, the registration position')
  t.match(snapshots.configuration.data.revised_at, /^\d{4}-\d{2}-\d{2}T/)

  const measured = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, {
    measurements: [{ revision: 0, timestamp: T0 + 1, value: { temperature: 21.5 } }, { revision: 0, timestamp: T0 + 2, value: { temperature: 22, humidity: 40 } }]
  })
  const measurementEvent = await measured
  t.strictSame(await drain(dashboard), [{
    type: 'measurements',
    data: [
      { revision: 0, creation_timestamp: T0 + 1, measurement: { temperature: 21.5 } },
      { revision: 0, creation_timestamp: T0 + 2, measurement: { temperature: 22, humidity: 40 } }
    ],
    position: measurementEvent.position
  }], 'measurements: the batch, as the HTTP API shows measurements, with its position')

  const logged = nextEvent(service, stream, 'LogMessagesRecorded')
  await publish(client, `log-messages/${sensor.sensorId}`, {
    log_messages: [{ severity: 'error', revision: 0, timestamp: T0 + 3, subject: 'too hot', details: 'over 80' }, { severity: 'info', revision: 0, timestamp: T0 + 4, subject: 'ok' }]
  })
  const logEvent = await logged
  t.strictSame(await drain(dashboard), [{
    type: 'logs',
    data: [
      { revision: 0, creation_timestamp: T0 + 3, severity: 'error', subject: 'too hot', details: 'over 80' },
      { revision: 0, creation_timestamp: T0 + 4, severity: 'info', subject: 'ok', details: null }
    ],
    position: logEvent.position
  }], 'logs: the batch, details null when absent')

  // A heartbeat acknowledging revision 0: the heartbeat, then the configuration acknowledged.
  const beat = nextEvent(service, stream, 'HeartbeatsReceived')
  const acknowledged = nextEvent(service, stream, 'ConfigurationAcknowledged')
  const heartbeats = [{ revision: 0, timestamp: T0 + 5, success: true }]
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats })
  const [beatEvent, ackEvent] = [await beat, await acknowledged]
  t.ok(ackEvent.position > beatEvent.position)
  t.strictSame(await drain(dashboard), [
    { type: 'heartbeats', data: heartbeats, position: beatEvent.position },
    {
      type: 'configuration',
      data: { revision: 0, configuration: { interval: 60 }, revised_at: snapshots.configuration.data.revised_at, acknowledged: true, acknowledged_at: T0 + 5, success: true },
      position: ackEvent.position
    }
  ], 'heartbeats update, then configuration acknowledged')

  // A second heartbeat for the same revision acknowledges nothing: only the heartbeats channel moves.
  const again = nextEvent(service, stream, 'HeartbeatsReceived')
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 0, timestamp: T0 + 6, success: true }] })
  const againEvent = await again
  t.strictSame(await drain(dashboard), [{ type: 'heartbeats', data: [{ revision: 0, timestamp: T0 + 6, success: true }], position: againEvent.position }],
    'a repeated acknowledgement changes no configuration')

  // A new configuration over HTTP: revision 1, not acknowledged yet.
  const current = await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: sensor.token })
  const revised = nextEvent(service, stream, 'SensorConfigurationRevised')
  clockOf(service).advance(10_000)
  const put = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: current.body.sensor_name, network_identifier: sensor.networkId, configuration: { interval: 30 } }
  })
  t.equal(put.status, 200)
  const revisedEvent = await revised
  const [update, ...rest] = await drain(dashboard)
  t.strictSame(rest, [], 'one update for the revision')
  t.strictSame(update, {
    type: 'configuration',
    data: { revision: 1, configuration: { interval: 30 }, revised_at: update.data.revised_at, acknowledged: false, acknowledged_at: null, success: null },
    position: revisedEvent.position
  }, 'configuration: revision 1, not acknowledged')
  t.not(update.data.revised_at, snapshots.configuration.data.revised_at, 'revised at the later time')

  // The snapshots a newcomer gets are the latest of each.
  const late = await openDevice(t, service, sensor.sensorId, sensor.token)
  const latest = await subscribe(t, late, ['measurements', 'logs', 'heartbeats', 'configuration'])
  t.equal(latest.measurements.position, measurementEvent.position, 'measurements snapshot: the latest batch')
  t.equal(latest.measurements.data.length, 2)
  t.equal(latest.logs.position, logEvent.position, 'logs snapshot: the latest batch')
  t.strictSame(latest.heartbeats, { type: 'heartbeats', data: [{ revision: 0, timestamp: T0 + 6, success: true }], position: againEvent.position }, 'heartbeats snapshot: the latest')
  t.strictSame(latest.configuration, update, 'configuration snapshot: revision 1, as last pushed')
})

t.test('the status channel follows the device connecting and disconnecting', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const dashboard = await openDevice(t, service, sensor.sensorId, sensor.token)
  const { status } = await subscribe(t, dashboard, ['status'])
  t.strictSame(status, { type: 'status', data: { online: false, last_seen: null, connected_since: null }, position: null }, 'never connected')

  clock.advance(5_000)
  const connectedAt = iso(service)
  const connected = nextEvent(service, stream, 'DeviceConnected')
  const client = await connectSensor(t, service, sensor)
  const connectEvent = await connected
  t.strictSame(await drain(dashboard), [{ type: 'status', data: { online: true, last_seen: connectedAt, connected_since: connectedAt }, position: connectEvent.position }],
    'connect: online, since now, seen now')

  // A report moves last_seen; within 10 s of the last push it is held back, not dropped...
  clock.advance(5_000)
  const seenAt = iso(service)
  const measured = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0, value: { t: 1 } }] })
  const report = await measured
  t.strictSame(await drain(dashboard), [], 'a report within 10 s of the last push pushes nothing yet')

  // ...and pushed when the 10 s are over, with the latest of the reports held back.
  clock.advance(2_000)
  const laterSeenAt = iso(service)
  const measuredLater = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0 + 1, value: { t: 2 } }] })
  const later = await measuredLater
  t.not(laterSeenAt, seenAt)
  t.strictSame(await drain(dashboard), [], 'nor a second one')
  clock.advance(3_000)
  t.strictSame(await drain(dashboard), [{ type: 'status', data: { online: true, last_seen: laterSeenAt, connected_since: connectedAt }, position: later.position }],
    '10 s after the last push: one update, the latest last_seen, its position')
  t.ok(later.position > report.position)

  // A disconnect is pushed at once, and replaces a report held back.
  clock.advance(1_000)
  const measuredLast = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0 + 2, value: { t: 3 } }] })
  await measuredLast
  t.strictSame(await drain(dashboard), [], 'held back')

  clock.advance(5_000)
  const disconnectedAt = iso(service)
  const disconnected = nextEvent(service, stream, 'DeviceDisconnected')
  await client.endAsync()
  const disconnectEvent = await disconnected
  t.strictSame(await drain(dashboard), [{ type: 'status', data: { online: false, last_seen: disconnectedAt, connected_since: null }, position: disconnectEvent.position }],
    'disconnect: offline, seen at the disconnect')
  clock.advance(10_000)
  t.strictSame(await drain(dashboard), [], 'the report held back was replaced by the disconnect')

  const late = await openDevice(t, service, sensor.sensorId, sensor.token)
  const snapshot = await subscribe(t, late, ['status'])
  t.strictSame(snapshot.status, { type: 'status', data: { online: false, last_seen: disconnectedAt, connected_since: null }, position: disconnectEvent.position },
    'the snapshot: the latest presence, with its position')

  clock.advance(5_000)
  const reconnectedAt = iso(service)
  const reconnected = nextEvent(service, stream, 'DeviceConnected')
  await connectSensor(t, service, sensor)
  const reconnectEvent = await reconnected
  const expected = [{ type: 'status', data: { online: true, last_seen: reconnectedAt, connected_since: reconnectedAt }, position: reconnectEvent.position }]
  t.strictSame(await drain(dashboard), expected, 'reconnect: online again, to the first dashboard')
  t.strictSame(await drain(late), expected, 'and to the second')
})

t.test('unsubscribe stops that channel at once; the others go on', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const client = await connectSensor(t, service, sensor)
  const dashboard = await openDevice(t, service, sensor.sensorId, sensor.token)
  await subscribe(t, dashboard, ['measurements', 'logs'])

  const logMessage = (subject: string) => ({ log_messages: [{ severity: 'info', revision: 0, timestamp: T0, subject }] })
  const measurement = (n: number) => ({ measurements: [{ revision: 0, timestamp: T0 + n, value: { n } }] })

  // Both channels live.
  const firstLog = nextEvent(service, stream, 'LogMessagesRecorded')
  await publish(client, `log-messages/${sensor.sensorId}`, logMessage('before'))
  t.equal((await dashboard.next()).position, (await firstLog).position, 'logs pushed while subscribed')

  dashboard.send({ type: 'unsubscribe', channels: ['logs'] })
  t.strictSame(await dashboard.next(), { type: 'unsubscribed', channels: ['logs'] }, 'unsubscribed')

  // A log, then a measurement: the measurement's update is the very next message.
  const mutedLog = nextEvent(service, stream, 'LogMessagesRecorded')
  await publish(client, `log-messages/${sensor.sensorId}`, logMessage('while unsubscribed'))
  const mutedEvent = await mutedLog
  const measured = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, measurement(1))
  const measuredEvent = await measured
  t.ok(mutedEvent.position < measuredEvent.position, 'the log committed first')
  const next = await dashboard.next()
  t.equal(next.type, 'measurements', 'the next message is the still-subscribed channel: no logs update came before it')
  t.equal(next.position, measuredEvent.position)
  t.strictSame(await drain(dashboard), [], 'and none after it either')

  // Unsubscribing from a channel not subscribed, or unknown: acknowledged / an error, nothing else.
  dashboard.send({ type: 'unsubscribe', channels: ['heartbeats'] })
  t.strictSame(await dashboard.next(), { type: 'unsubscribed', channels: ['heartbeats'] })
  dashboard.send({ type: 'unsubscribe', channels: ['bogus'] })
  t.equal((await dashboard.next()).type, 'error')

  // Subscribing again: the snapshot is the log sent while unsubscribed, then live again.
  const again = await subscribe(t, dashboard, ['logs'])
  t.equal(again.logs.position, mutedEvent.position, 'the resubscription snapshot is the latest log')
  t.equal(again.logs.data[0].subject, 'while unsubscribed')
  const liveAgain = nextEvent(service, stream, 'LogMessagesRecorded')
  await publish(client, `log-messages/${sensor.sensorId}`, logMessage('after'))
  t.strictSame(await drain(dashboard), [{ type: 'logs', data: [{ revision: 0, creation_timestamp: T0, severity: 'info', subject: 'after', details: null }], position: (await liveAgain).position }],
    'logs live again')

  // Unsubscribing from everything: a new event of each produces nothing.
  dashboard.send({ type: 'unsubscribe', channels: ['logs', 'measurements'] })
  t.strictSame(await dashboard.next(), { type: 'unsubscribed', channels: ['logs', 'measurements'] })
  const bothDone = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(client, `log-messages/${sensor.sensorId}`, logMessage('ignored'))
  await publish(client, `measurements/${sensor.sensorId}`, measurement(2))
  await bothDone
  t.strictSame(await drain(dashboard), [], 'nothing for either')
})

/** A WebSocket frame as a client must send it: masked. */
function clientFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = randomBytes(4)
  const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))])
}

/**
 * A device channel client that does the upgrade by hand, subscribes, reads until its snapshot
 * arrived, then never reads again.
 */
async function stalledClient (t: Teardown, service: Service, path: string, channels: string[]): Promise<Socket> {
  const socket = await upgradeByHand(t, service.url, path)
  let received = Buffer.alloc(0)
  const readUntil = async (marker: string) => {
    while (!received.includes(marker)) {
      const [chunk] = await once(socket, 'data') as [Buffer]
      received = Buffer.concat([received, chunk])
    }
  }
  await readUntil('"type":"connected"')
  const status = received.subarray(0, received.indexOf('\r\n')).toString()
  if (!status.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${status}`)
  socket.write(clientFrame(JSON.stringify({ type: 'subscribe', channels })))
  await readUntil(`"type":"${channels.at(-1)}"`)
  socket.pause()
  return socket
}

t.test('a client that stops reading is dropped once its buffer passes the bound; the others keep receiving', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const device = await connectSensor(t, service, sensor)

  // The service's side of the stalled client: its 'close' is the service dropping it.
  const serverSide = new Promise<WebSocket>(resolve => service.app.websocketServer.once('connection', resolve))
  const stalled = await stalledClient(t, service, channelPath(sensor.sensorId, sensor.token), ['measurements'])
  const server = await serverSide
  let dropped = false
  server.once('close', () => { dropped = true })

  const healthy = await openDevice(t, service, sensor.sensorId, sensor.token)
  await subscribe(t, healthy, ['measurements'])
  t.equal(service.app.websocketServer.clients.size, 2, 'two clients on the device')

  // Batches as big as a sensor may send (256 KiB): each update is about that size.
  const pad = 'x'.repeat(250_000)
  const batch = (n: number) => JSON.stringify({ measurements: [{ revision: 0, timestamp: T0 + n, value: { n, pad } }] })
  const updateBytes = JSON.stringify({ type: 'measurements', data: [{ revision: 0, creation_timestamp: T0, measurement: { n: 0, pad } }], position: 1 }).length
  const LIMIT_BYTES = 64 * MiB
  let sent = 0
  let published = 0
  let peakBuffered = 0
  while (!dropped && sent < LIMIT_BYTES) {
    const recorded = nextEvent(service, stream, 'MeasurementsRecorded')
    await publish(device, `measurements/${sensor.sensorId}`, batch(published))
    await recorded
    published++
    sent += updateBytes
    if (server.readyState === server.OPEN) peakBuffered = Math.max(peakBuffered, server.bufferedAmount)
    // The healthy client reads each update as it comes.
    const update = await healthy.next()
    if (update.type !== 'measurements' || update.data[0].measurement.n !== published - 1) t.fail(`update ${published - 1} reached the healthy client`, { found: update.type })
  }
  await new Promise(setImmediate)
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
  t.ok(dropped, `the stalled client was dropped after ${published} updates (${mib(sent)})`)
  t.ok(sent < LIMIT_BYTES, `well within ${mib(LIMIT_BYTES)}`)
  t.ok(peakBuffered <= MAX_BUFFERED_BYTES + updateBytes + 1024, `the service never held more than the bound plus one update (and frame headers) for it (peak ${mib(peakBuffered)})`)
  t.equal(service.app.websocketServer.clients.size, 1, 'only the healthy client remains on the server')

  // The stalled side sees its connection end once it reads again; it got less than was sent.
  let received = 0
  stalled.on('data', (chunk: Buffer) => { received += chunk.length })
  const closed = once(stalled, 'close')
  stalled.resume()
  await closed
  t.ok(received < sent, `it got ${mib(received)} of the ${mib(sent)} sent meanwhile`)

  // The healthy client still receives, and is still connected.
  const recorded = nextEvent(service, stream, 'MeasurementsRecorded')
  await publish(device, `measurements/${sensor.sensorId}`, JSON.stringify({ measurements: [{ revision: 0, timestamp: T0, value: { after: true } }] }))
  const event = await recorded
  t.strictSame(await drain(healthy), [{ type: 'measurements', data: [{ revision: 0, creation_timestamp: T0, measurement: { after: true } }], position: event.position }],
    'the healthy client gets the next update')
  t.equal(healthy.ws.readyState, healthy.ws.OPEN, 'and is still connected')
})
