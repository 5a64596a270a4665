import { once } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t from 'tap'
import WebSocket from 'ws'
import type { ManualClock } from '../src/clock.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { spawnServer } from './helpers/process.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, tempDir, type Service, type Teardown } from './helpers/service.ts'
import { committed, createSocket } from './helpers/sockets.ts'
import { track } from './helpers/websocket.ts'
import { createZone } from './helpers/zones.ts'

// Presence for every kind of device, end to end: real MQTT connections whose connect, DISCONNECT,
// loss, keep-alive silence and last will become DeviceConnected / DeviceDisconnected, read back
// over real HTTP. No sleeps: every wait is on a committed event.

const T0 = 1767225600
const clockOf = (service: Service) => service.clock as ManualClock
const iso = (service: Service) => new Date(service.clock.now()).toISOString()
const clientIds = (prefix: string) => `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`

const nextEvent = (service: Service, streamId: string, type: string): Promise<RecordedEvent> =>
  committed(service, e => e.stream_id === streamId && e.type === type)

/** DeviceDisconnected's data, typed. */
function disconnection (event: RecordedEvent): { client_id: string, reason: string, detail: string } {
  if (event.type !== 'DeviceDisconnected') throw new Error(`expected DeviceDisconnected, got ${event.type}`)
  return event.data
}

async function device (service: Service, token: string, id: string): Promise<any> {
  const response = await http(service, 'GET', `/api/v1/devices/${id}`, { token })
  if (response.status !== 200) throw new Error(`GET /api/v1/devices/${id}: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body
}

let counter = 0
const pairId = (prefix: string) => `${prefix}${randomBytes(4).toString('hex')}${++counter}`

/** One device of every kind in one network, through the public API. */
async function everyKind (service: Service) {
  const sensor = await createSensor(service)
  const { token, networkId } = sensor
  const socket = await createSocket(service, { token, networkId })
  const zoneName = `zone-${++counter}`
  const zone = await createZone(service, { token, networkId, name: zoneName })
  const chargerId = pairId('c')
  const charger = await http(service, 'POST', '/api/v1/chargers', { token, body: { charger_id: chargerId, widget_id: pairId('w'), network_identifier: networkId } })
  if (charger.status !== 201) throw new Error(`POST /api/v1/chargers: ${charger.status} ${JSON.stringify(charger.body)}`)
  const host = await http(service, 'POST', '/api/v1/devices', { token, body: { name: 'build box', kind: 'host', network_identifier: networkId } })
  if (host.status !== 201) throw new Error(`POST /api/v1/devices: ${host.status}`)
  const sensorName = (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token })).body.sensor_name as string
  return {
    token,
    networkId,
    devices: [
      { id: sensor.sensorId, kind: 'sensor', name: sensorName, stream: `sensor-${sensor.sensorId}`, username: sensor.sensorId, password: sensor.password },
      { id: socket.socketId, kind: 'socket', name: `plug ${socket.topic}`, stream: `socket-${socket.socketId}`, username: socket.topic, password: socket.password },
      { id: zone.zoneId, kind: 'zone', name: zoneName, stream: `zone-${zone.zoneId}`, username: zone.zoneId, password: zone.password },
      { id: chargerId, kind: 'charger', name: chargerId, stream: `charger-${chargerId}`, username: chargerId, password: charger.body.mqtt.password as string },
      { id: host.body.id as string, kind: 'host', name: 'build box', stream: `host-${host.body.id}`, username: host.body.id as string, password: host.body.mqtt.password as string }
    ]
  }
}

t.test('GET /api/v1/devices lists devices of every kind, with presence; GET /api/v1/devices/<id> each', async t => {
  const service = await startService(t)
  const fixture = await everyKind(service)
  const { token, networkId } = fixture
  const offline = { online: false, last_seen: null, connected_since: null }

  const listed = await http(service, 'GET', `/api/v1/devices?network=${networkId}`, { token })
  t.equal(listed.status, 200)
  t.strictSame(listed.body.map((d: any) => d.kind), ['sensor', 'socket', 'zone', 'charger', 'host'], 'every kind, in registration order')
  for (const [i, expected] of fixture.devices.entries()) {
    const row = listed.body[i]
    t.strictSame(Object.keys(row).sort(), ['connected_since', 'id', 'kind', 'last_seen', 'name', 'network_identifier', 'online'], `${expected.kind}: exactly the device fields`)
    t.match(row, { id: expected.id, kind: expected.kind, network_identifier: networkId, ...offline }, `${expected.kind}: its id, kind, network, offline`)
    t.equal(row.name, expected.name, `${expected.kind}: its name`)
    t.strictSame(await device(service, token, expected.id), row, `GET /api/v1/devices/<${expected.kind}>: the same view`)
  }

  // A second network of the same user: listed without ?network=, not with the first's.
  const second = await createSensor(service, { token })
  const secondList = await http(service, 'GET', `/api/v1/devices?network=${second.networkId}`, { token })
  t.strictSame(secondList.body.map((d: any) => d.id), [second.sensorId], '?network= lists only that network')
  const all = await http(service, 'GET', '/api/v1/devices', { token })
  t.equal(all.status, 200)
  t.strictSame(all.body.map((d: any) => d.id).sort(), [...fixture.devices.map(d => d.id), second.sensorId].sort(), "without ?network=: every one of the caller's networks")

  // Someone else sees none of it.
  const stranger = await createSensor(service)
  t.equal((await http(service, 'GET', `/api/v1/devices?network=${networkId}`, { token: stranger.token })).status, 404, "?network= of another user's network: 404")
  t.equal((await http(service, 'GET', `/api/v1/devices?network=${randomUUID()}`, { token })).status, 404, 'an unknown network: 404')
  const strangersAll = await http(service, 'GET', '/api/v1/devices', { token: stranger.token })
  t.strictSame(strangersAll.body.map((d: any) => d.id), [stranger.sensorId], 'the stranger lists only their own')
  for (const d of fixture.devices) {
    t.equal((await http(service, 'GET', `/api/v1/devices/${d.id}`, { token: stranger.token })).status, 404, `another user's ${d.kind}: 404`)
  }
  t.equal((await http(service, 'GET', `/api/v1/devices/${randomUUID()}`, { token })).status, 404, 'an unknown id: 404')
  t.equal((await http(service, 'GET', '/api/v1/devices')).status, 401, 'no token: 401')
  t.equal((await http(service, 'GET', `/api/v1/devices/${second.sensorId}`)).status, 401, 'no token: 401 for one device too')

  // A removed charger is no longer a device.
  const charger = fixture.devices.find(d => d.kind === 'charger')!
  t.equal((await http(service, 'DELETE', `/api/v1/chargers/${charger.id}`, { token })).status, 204)
  t.equal((await http(service, 'GET', `/api/v1/devices/${charger.id}`, { token })).status, 404, 'a removed charger: 404')
  t.notOk((await http(service, 'GET', `/api/v1/devices?network=${networkId}`, { token })).body.some((d: any) => d.id === charger.id), 'and not listed')
})

t.test('an MQTT connection makes a device of any kind online; its end, offline', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const { token, networkId, devices } = await everyKind(service)

  clock.advance(60_000)
  const connectedAt = iso(service)
  const clients: MqttClient[] = []
  const connectedEvents: RecordedEvent[] = []
  for (const d of devices) {
    const clientId = clientIds(d.kind)
    const connected = committed(service, e => e.type === 'DeviceConnected' && e.data.client_id === clientId)
    clients.push(await connectMqtt(t, service.mqttUrl, { clientId, username: d.username, password: d.password }))
    const event = await connected
    connectedEvents.push(event)
    t.equal(event.stream_id, d.stream, `${d.kind}: DeviceConnected on its own stream`)
  }
  const listed = await http(service, 'GET', `/api/v1/devices?network=${networkId}`, { token })
  for (const [i, d] of devices.entries()) {
    t.match(listed.body[i], { id: d.id, kind: d.kind, online: true, last_seen: connectedAt, connected_since: connectedAt }, `${d.kind}: online since the connect`)
  }

  clock.advance(60_000)
  const endedAt = iso(service)
  for (const [i, d] of devices.entries()) {
    const ended = nextEvent(service, connectedEvents[i]!.stream_id, 'DeviceDisconnected')
    await clients[i]!.endAsync()
    t.match(disconnection(await ended), { reason: 'closed', detail: /disconnected/ }, `${d.kind}: a clean DISCONNECT recorded`)
    t.match(await device(service, token, d.id), { online: false, last_seen: endedAt, connected_since: null }, `${d.kind}: offline, last seen at the disconnect`)
  }

  // A refused CONNECT (wrong password) records no presence.
  const refused = committed(service, e => e.type === 'ConnectionRefused')
  const error = await connectMqtt(t, service.mqttUrl, { username: devices[0]!.username, password: 'wrong' }).then(() => undefined, (e: Error) => e)
  t.ok(error, 'a wrong password is refused')
  await refused
  t.match(await device(service, token, devices[0]!.id), { online: false, connected_since: null }, 'and the device stays offline')
})

t.test('presence across connect, report, clean end, kill (with and without a will) and reconnect', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const view = () => device(service, sensor.token, sensor.sensorId)

  t.match(await view(), { kind: 'sensor', online: false, last_seen: null, connected_since: null }, 'registered, never seen')

  // Connect.
  clock.advance(10_000)
  const connectedAt = iso(service)
  const clientId = clientIds('presence')
  const connected = nextEvent(service, stream, 'DeviceConnected')
  const first = await connectSensor(t, service, sensor, { clientId })
  const connectEvent = await connected
  t.strictSame(connectEvent.data, { client_id: clientId }, 'DeviceConnected names the MQTT client id')
  t.match(await view(), { online: true, connected_since: connectedAt, last_seen: connectedAt }, 'online, since the connect, seen then')

  // A measurement moves last_seen, not connected_since.
  clock.advance(10_000)
  const measuredAt = iso(service)
  await publish(first, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0, value: { t: 20 } }] })
  t.match(await view(), { online: true, connected_since: connectedAt, last_seen: measuredAt }, 'last_seen moved to the measurement')

  // So does a rejected message: the device was seen.
  clock.advance(10_000)
  const rejectedAt = iso(service)
  await publish(first, `measurements/${sensor.sensorId}`, 'not json')
  t.match(await view(), { online: true, connected_since: connectedAt, last_seen: rejectedAt }, 'last_seen moved to the rejected message too')

  // A clean end: DISCONNECT.
  clock.advance(10_000)
  const endedAt = iso(service)
  const ended = nextEvent(service, stream, 'DeviceDisconnected')
  await first.endAsync()
  const endEvent = disconnection(await ended)
  t.equal(endEvent.client_id, clientId)
  t.equal(endEvent.reason, 'closed', 'a clean end: closed')
  t.match(endEvent.detail, /disconnected/, 'detail: the device disconnected')
  t.notMatch(endEvent.detail, /will/, 'no will mentioned')
  t.match(await view(), { online: false, connected_since: null, last_seen: endedAt }, 'offline, last seen at the DISCONNECT')

  // Reconnect with a last will (its own measurements topic), then kill the TCP connection.
  clock.advance(10_000)
  const willValue = { last: 'will' }
  const reconnectedAt = iso(service)
  const reconnected = nextEvent(service, stream, 'DeviceConnected')
  const second = await connectSensor(t, service, sensor, {
    clientId: clientIds('will'),
    will: { topic: `measurements/${sensor.sensorId}`, payload: Buffer.from(JSON.stringify({ measurements: [{ revision: 0, timestamp: T0 + 1, value: willValue }] })), qos: 1, retain: false }
  })
  await reconnected
  t.match(await view(), { online: true, connected_since: reconnectedAt, last_seen: reconnectedAt }, 'online again after the reconnect')

  clock.advance(10_000)
  const killedAt = iso(service)
  const lost = nextEvent(service, stream, 'DeviceDisconnected')
  const willRecorded = committed(service, e => e.stream_id === stream && e.type === 'MeasurementsRecorded' && JSON.stringify(e.data).includes('"last":"will"'))
  second.stream.destroy()
  const lostEvent = disconnection(await lost)
  t.equal(lostEvent.reason, 'closed', 'killed: closed')
  t.match(lostEvent.detail, /lost/, 'detail: the connection was lost')
  t.match(lostEvent.detail, /will/, 'detail: and its will was published')
  const will = await willRecorded
  t.match(will.data, { measurements: [{ value: willValue }] }, 'the will went through the broker like any message: recorded')
  t.match(await view(), { online: false, connected_since: null, last_seen: killedAt }, 'offline after the kill')

  // Kill without a will: lost, and no will mentioned.
  clock.advance(10_000)
  const third = await connectSensor(t, service, sensor, { clientId: clientIds('nowill') })
  const lostAgain = nextEvent(service, stream, 'DeviceDisconnected')
  third.stream.destroy()
  const lostAgainEvent = disconnection(await lostAgain)
  t.equal(lostAgainEvent.reason, 'closed')
  t.match(lostAgainEvent.detail, /lost/)
  t.notMatch(lostAgainEvent.detail, /will/, 'no will, none mentioned')

  // A will on a topic the sensor may not publish to: authorised like any publish, so refused and
  // recorded as a rejection; the connection's end is recorded all the same.
  const fourth = await connectSensor(t, service, sensor, { clientId: clientIds('badwill'), will: { topic: 'status/offline', payload: Buffer.from('gone'), qos: 0, retain: false } })
  const lostBadWill = nextEvent(service, stream, 'DeviceDisconnected')
  const willRejected = nextEvent(service, stream, 'MessageRejected')
  fourth.stream.destroy()
  t.match(disconnection(await lostBadWill), { reason: 'closed', detail: /lost/ }, 'the loss is recorded')
  t.match((await willRejected).data, { topic: 'status/offline', reason: 'unknown_topic' }, 'the refused will is recorded as a rejection')

  // Reconnect: online again.
  clock.advance(10_000)
  const backAt = iso(service)
  const back = nextEvent(service, stream, 'DeviceConnected')
  await connectSensor(t, service, sensor, { clientId })
  await back
  t.match(await view(), { online: true, connected_since: backAt, last_seen: backAt }, 'online again, since the last connect')
  const types = service.app.store.read({ stream }).filter(e => e.type === 'DeviceConnected' || e.type === 'DeviceDisconnected').map(e => e.type)
  t.strictSame(types, ['DeviceConnected', 'DeviceDisconnected', 'DeviceConnected', 'DeviceDisconnected', 'DeviceConnected', 'DeviceDisconnected',
    'DeviceConnected', 'DeviceDisconnected', 'DeviceConnected'], 'every connect and end, alternating, on the sensor stream')
})

t.test('a device with two connections stays online until the last one ends; a takeover keeps it online', async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const view = () => device(service, sensor.token, sensor.sensorId)

  const connectedAt = iso(service)
  const firstUp = nextEvent(service, stream, 'DeviceConnected')
  const a = await connectSensor(t, service, sensor, { clientId: clientIds('a') })
  await firstUp
  clock.advance(10_000)
  const secondUp = nextEvent(service, stream, 'DeviceConnected')
  const b = await connectSensor(t, service, sensor, { clientId: clientIds('b') })
  await secondUp

  clock.advance(10_000)
  const aDown = nextEvent(service, stream, 'DeviceDisconnected')
  await a.endAsync()
  await aDown
  const during = await view()
  t.equal(during.online, true, 'still online: the other connection is up')

  clock.advance(10_000)
  const bDown = nextEvent(service, stream, 'DeviceDisconnected')
  await b.endAsync()
  await bDown
  t.match(await view(), { online: false, connected_since: null }, 'offline once the last one ends')

  // A reconnect that takes over its client id: the old connection ends, the new one is up.
  const clientId = clientIds('takeover')
  const up = nextEvent(service, stream, 'DeviceConnected')
  await connectSensor(t, service, sensor, { clientId })
  await up
  const takenOver = nextEvent(service, stream, 'DeviceDisconnected')
  const upAgain = committed(service, e => e.stream_id === stream && e.type === 'DeviceConnected')
  await connectSensor(t, service, sensor, { clientId })
  const [down, again] = [disconnection(await takenOver), await upAgain]
  t.equal(down.client_id, clientId, 'the old connection of the client id ended')
  t.comment(`a takeover records: ${JSON.stringify(down)}`)
  t.equal((again.data as { client_id: string }).client_id, clientId, 'and the new one connected')
  t.equal((await view()).online, true, 'online after the takeover')

  // Only going online or offline moves connected_since: one of two connections ending does not.
  t.equal(during.connected_since, connectedAt, 'connected_since is still the first connect while a connection stays up')
})

/** A bare MQTT client: CONNECT with keepalive 1, CONNACK, then silence (no PINGREQ ever). */
async function silentClient (t: Teardown, service: Service, username: string, password: string, clientId: string): Promise<Socket> {
  const socket = netConnect(service.mqttPort, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const connack = new Promise<Packet>((resolve, reject) => {
    parser.once('packet', resolve)
    socket.once('close', () => reject(new Error('closed before CONNACK')))
  })
  socket.on('data', data => parser.parse(data))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 1, username, password: Buffer.from(password) }))
  const ack = await connack
  if (ack.cmd !== 'connack' || ack.returnCode !== 0) throw new Error(`CONNACK ${JSON.stringify(ack)}`)
  return socket
}

t.test('a device silent past its keep-alive is disconnected: keepalive_timeout', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const stream = `sensor-${sensor.sensorId}`
  const clientId = clientIds('silent')

  const connected = nextEvent(service, stream, 'DeviceConnected')
  const timedOut = nextEvent(service, stream, 'DeviceDisconnected')
  const started = Date.now()
  const socket = await silentClient(t, service, sensor.sensorId, sensor.password, clientId)
  const socketClosed = once(socket, 'close')
  await connected
  t.match(await device(service, sensor.token, sensor.sensorId), { online: true }, 'online after the CONNACK')

  // Aedes uses real timers: 1.5 × 1 s of silence.
  const event = disconnection(await timedOut)
  const elapsed = Date.now() - started
  t.equal(event.client_id, clientId)
  t.equal(event.reason, 'keepalive_timeout', 'reason: keepalive_timeout')
  t.match(event.detail, /keep-alive/, 'detail: the keep-alive')
  t.ok(elapsed >= 1400, `not before 1.5 × the keep-alive (${elapsed} ms)`)
  await socketClosed
  t.pass('the broker closed the connection')
  t.match(await device(service, sensor.token, sensor.sensorId), { online: false, connected_since: null }, 'offline')

  // A client that pings within its keep-alive is not cut off: mqtt.js pings every second.
  const pinging = await connectSensor(t, service, sensor, { clientId: clientIds('pinging'), keepalive: 1 })
  const pings = await new Promise<number>(resolve => {
    let count = 0
    pinging.on('packetreceive', packet => { if (packet.cmd === 'pingresp' && ++count === 3) resolve(count) })
  })
  t.equal(pings, 3, 'three PINGRESPs (3 s, twice the 1.5 s timeout)')
  t.ok(pinging.connected, 'still connected')
  const disconnects = service.app.store.read({ stream, type: 'DeviceDisconnected' })
  t.equal(disconnects.length, 1, 'no second disconnect recorded for the pinging client')
})

t.test('a stop with devices connected: graceful records their end, an unclean one is recorded at the next start', async t => {
  // Graceful: close() with the device connected.
  {
    const dir = tempDir(t)
    const service = await startService(t, { dir })
    const sensor = await createSensor(service)
    const stream = `sensor-${sensor.sensorId}`
    const connected = nextEvent(service, stream, 'DeviceConnected')
    await connectSensor(t, service, sensor)
    await connected
    await service.close()

    const restarted = await startService(t, { dir })
    const ends = restarted.app.store.read({ stream, type: 'DeviceDisconnected' }).map(disconnection)
    t.equal(ends.length, 1, 'a graceful stop recorded the disconnect itself, once')
    t.equal(ends[0]?.reason, 'service_stopped', 'the service stopping ended it')
    t.match(ends[0]?.detail, /closed the connection/, 'recorded at the stop itself, not at the next start')
    t.comment(`a graceful stop records: ${JSON.stringify(ends[0])}`)
    t.match(await device(restarted, sensor.token, sensor.sensorId), { online: false, connected_since: null }, 'offline after the restart')
  }

  // Unclean: the real server, SIGKILLed with the device connected.
  {
    const dir = tempDir(t)
    const first = await spawnServer(t, { DATABASE_PATH: join(dir, 'devicelog.db') })
    const asService = { url: first.url } as Service
    const sensor = await createSensor(asService)
    const client = mqtt.connect(first.mqttUrl, { username: sensor.sensorId, password: sensor.password, reconnectPeriod: 0, clientId: clientIds('unclean') })
    t.teardown(() => client.end(true))
    await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
    // The PUBACK follows the commit: the DeviceConnected queued before it is committed too.
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0, value: { t: 1 } }] })
    t.match((await http(asService, 'GET', `/api/v1/devices/${sensor.sensorId}`, { token: sensor.token })).body, { online: true }, 'online in the first process')
    first.child.kill('SIGKILL')
    await first.exited
    client.end(true)

    const restarted = await startService(t, { dir })
    const stream = `sensor-${sensor.sensorId}`
    const ends = restarted.app.store.read({ stream, type: 'DeviceDisconnected' }).map(disconnection)
    t.equal(ends.length, 1, 'one disconnect, recorded at the start')
    t.equal(ends[0]?.reason, 'service_stopped', 'reason: service_stopped')
    t.equal(ends[0]?.client_id, client.options.clientId, 'for the client that was connected')
    t.match(await device(restarted, sensor.token, sensor.sensorId), { online: false, connected_since: null }, 'offline')
    await restarted.close()
    const again = await startService(t, { dir })
    t.equal(again.app.store.read({ stream, type: 'DeviceDisconnected' }).length, 1, 'a second start records nothing more')
  }
})

t.test("a network's presence feed: every device at connect, then each change, on one WebSocket", async t => {
  const service = await startService(t)
  const clock = clockOf(service)
  const sensor = await createSensor(service)
  const other = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
  const foreign = await createSensor(service)
  const url = (networkId: string, token?: string) =>
    `${service.url.replace(/^http/, 'ws')}/api/v1/networks/${networkId}/presence${token === undefined ? '' : `?access_token=${token}`}`
  const refusedWith = (address: string) => new Promise<number>(resolve => {
    const ws = new WebSocket(address)
    ws.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0))
    ws.on('error', () => undefined)
  })
  t.equal(await refusedWith(url(sensor.networkId)), 401, 'no token: 401')
  t.equal(await refusedWith(url(sensor.networkId, foreign.token)), 404, 'not a member: 404')

  const feed = track(new WebSocket(url(sensor.networkId, sensor.token)))
  t.teardown(() => feed.ws.terminate())
  const snapshot = await feed.next()
  t.equal(snapshot.type, 'snapshot')
  t.same(snapshot.data.map((d: { id: string }) => d.id).sort(), [sensor.sensorId, other.sensorId].sort(), "the network's devices, not another's")
  t.ok(snapshot.data.every((d: { online: boolean }) => !d.online), 'all offline')

  const connected = nextEvent(service, `sensor-${sensor.sensorId}`, 'DeviceConnected')
  const client = await connectSensor(t, service, sensor)
  t.match(await feed.next(), { type: 'status', data: { id: sensor.sensorId, kind: 'sensor', online: true, connected_since: iso(service) }, position: (await connected).position })

  // A foreign network's device changes nothing here; reports within 10 s of the last push are
  // held back, and the latest of them is pushed when the 10 s are over.
  await connectSensor(t, service, foreign)
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0, value: { t: 1 } }] })
  clock.advance(4_000)
  const seenAt = iso(service)
  const later = nextEvent(service, `sensor-${sensor.sensorId}`, 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0 + 1, value: { t: 2 } }] })
  const laterPosition = (await later).position
  clock.advance(6_000)
  t.match(await feed.next(), { type: 'status', data: { id: sensor.sensorId, online: true, last_seen: seenAt }, position: laterPosition },
    'the next message comes 10 s after the connect, with the later report: nothing came for the foreign device or the early report')

  await client.endAsync()
  t.match(await feed.next(), { type: 'status', data: { id: sensor.sensorId, online: false, connected_since: null } })
})
