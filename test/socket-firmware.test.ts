import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import type { EventOf, EventType } from '../events/index.ts'
import { ManualClock } from '../src/clock.ts'
import type { PlugSimulator } from '../src/cli/simulators/plug.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { devicelog } from './helpers/process.ts'
import { projectionRows } from './helpers/projection-rows.ts'
import { connectMqtt, http, publish, startService, tempDir, type Service } from './helpers/service.ts'
import { committed, createSocket, startPlug, type SocketFixture } from './helpers/sockets.ts'

// Issue 8: plugs as stock Tasmota firmware really behaves, end to end: the real service (HTTP,
// embedded broker, SQLite log) on ephemeral ports, simulated plugs and raw mqtt.js clients.
// Nothing sleeps: a PUBACK means the message's events are committed, and anything that should
// not have happened is checked behind a barrier that would have come after it.

const streamOf = (socket: SocketFixture) => `socket-${socket.socketId}`

/** The events of one type on a stream, typed (optionally only after a position). */
function recorded<K extends EventType> (service: Service, stream: string, type: K, after = 0): Array<RecordedEvent<EventOf<K>>> {
  return service.app.store.read({ stream, type, after }) as Array<RecordedEvent<EventOf<K>>>
}

/** What a stream recorded while `action` ran (a PUBACK or an HTTP answer comes after the commit). */
async function recordedDuring (service: Service, stream: string, action: () => Promise<unknown>): Promise<RecordedEvent[]> {
  const after = service.app.store.headPosition
  await action()
  return service.app.store.read({ stream, after })
}

/** Resolves once everything queued for the log before it is committed. */
const logSettled = (service: Service) => service.app.store.transact(() => undefined)

/** The refusals recorded on a stream, as [topic, reason]. */
const refusedMessages = (service: Service, stream: string) =>
  recorded(service, stream, 'MessageRejected').map(e => [e.data.topic, e.data.reason])
const refusedSubscriptions = (service: Service, stream: string) =>
  recorded(service, stream, 'SubscriptionRefused').map(e => [e.data.topic, e.data.reason])

/** A raw mqtt.js client with a plug's credentials (firmware that does what it likes), its connection recorded. */
async function connectAs (service: Service, socket: SocketFixture): Promise<MqttClient> {
  const connectionRecorded = committed(service, e => e.type === 'DeviceConnected' && e.stream_id === streamOf(socket))
  const client = await connectMqtt(t, service.mqttUrl, { username: socket.topic, password: socket.password })
  await connectionRecorded
  return client
}

/** SUBSCRIBE one filter: the SUBACK's code (128 refused); rejects if the connection closes first. */
function subscribeCode (client: MqttClient, filter: string): Promise<number> {
  if (!client.connected) return Promise.reject(new Error(`not connected: cannot subscribe to ${filter}`))
  return new Promise<number>((resolve, reject) => {
    const closed = () => reject(new Error(`the connection closed before the SUBACK of ${filter}`))
    client.once('close', closed)
    // mqtt.js turns a 128 into an error that carries the SUBACK.
    client.subscribeAsync(filter, { qos: 0 }).then(
      grants => grants[0]!.qos,
      (error: Error & { packet?: { granted?: number[] } }) => {
        if (error.packet?.granted?.[0] !== undefined) return error.packet.granted[0]
        throw error
      }
    ).then(resolve, reject).finally(() => client.removeListener('close', closed))
  })
}

/**
 * Every command the plug received so far: the service publishes a marker to the plug's own
 * command topic now, and one connection delivers in order, so anything forwarded before it
 * has arrived once the marker has.
 */
async function commandsReceivedBy (service: Service, plug: PlugSimulator): Promise<string[]> {
  const marker = `cmnd/${plug.topic}/MARKER`
  const arrived = plug.nextCommand(command => command.topic === marker)
  await service.app.broker.publish({ topic: marker, payload: '', qos: 1, retain: false })
  await arrived
  return plug.commands.map(command => command.topic).filter(topic => topic !== marker)
}

/**
 * The retained messages a new subscriber to `cmnd/<topic>/#` gets. The service leaves a retained
 * marker there first; the broker sends retained messages in the order they were stored, so every
 * earlier one has arrived once the marker has.
 */
async function retainedFor (service: Service, socket: SocketFixture): Promise<string[]> {
  const marker = `cmnd/${socket.topic}/RETAINED_MARKER`
  await service.app.broker.publish({ topic: marker, payload: 'marker', qos: 1, retain: true })
  const client = await connectAs(service, socket)
  const retained: string[] = []
  const markerArrived = new Promise<void>(resolve => client.on('message', (topic, _payload, packet) => {
    if (!packet.retain) return
    if (topic === marker) resolve()
    else retained.push(topic)
  }))
  await client.subscribeAsync(`cmnd/${socket.topic}/#`, { qos: 1 })
  await markerArrived
  await client.endAsync()
  return retained
}

async function listedSocket (service: Service, socket: SocketFixture) {
  const listed = await http(service, 'GET', '/api/sockets', { token: socket.token })
  if (listed.status !== 200) throw new Error(`GET /api/sockets: ${listed.status}`)
  return (listed.body as Array<{ socket_identifier: string }>).find(s => s.socket_identifier === socket.socketId) as any
}

t.test('real firmware: the whole connect sequence is accepted, instances run, a press stops once, and a replay agrees', async t => {
  const service = await startService(t)
  const socket = await createSocket(service)
  const stream = streamOf(socket)
  const plug = await startPlug(t, service, socket, { firmware: 'real' })

  t.same(refusedMessages(service, stream), [], 'no message of the connect sequence is refused')
  t.same(refusedSubscriptions(service, stream), [], 'own, group and fallback command topics are granted')
  t.same(recorded(service, stream, 'SocketAvailabilityReported').map(e => e.data.online), [true], 'LWT Online')
  t.same(recorded(service, stream, 'SocketCommanded').map(e => [e.data.by, e.data.command, e.data.payload]),
    [['device', 'POWER', ''], ['service', 'STATUS', '0']], 'its own empty cmnd POWER, then the service asks for its status')
  t.same(recorded(service, stream, 'SocketInfoReported').map(e => e.data.source), ['INFO1', 'INFO2', 'INFO3', 'discovery', 'STATUS0'])
  t.same(recorded(service, stream, 'PowerReported').map(e => [e.data.source, e.data.power]), [['RESULT', 'OFF'], ['POWER', 'OFF'], ['STATUS0', 'OFF']])
  t.same(recorded(service, stream, 'EnergyReported').map(e => e.data.source), ['discovery', 'STATUS0'], 'discovery sensors and STATUS0 energy')

  const listed = await listedSocket(service, socket)
  t.equal(listed.online, true)
  t.match(listed.device, {
    firmware_version: /^14\.3\.0\b/,
    mac: plug.mac,
    ip_address: '192.168.1.50',
    hostname: plug.hostname,
    restart_reason: 'Power On',
    device_name: plug.deviceName
  })

  const started = await http(service, 'POST', '/api/instance', { token: socket.token, body: {} })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.type(started.body.instance.powerOnTimestamp, 'string', 'the plug confirmed ON')
  t.equal(plug.isOn, true)
  const stopped = await http(service, 'PUT', `/api/instance/${started.body.instance.id}`, { token: socket.token })
  t.equal(stopped.status, 200, JSON.stringify(stopped.body))
  t.match(stopped.body.instance, { status: 'stopped', stopReason: 'requested', powerOffTimestamp: String })
  t.equal(plug.isOn, false)

  const pressed = (await http(service, 'POST', '/api/instance', { token: socket.token, body: {} })).body.instance.id as string
  t.equal(plug.isOn, true)
  const energyAfterStop = committed(service, e => e.stream_id === stream && e.type === 'EnergyReported' && e.data.source === 'STATUS10')
  const during = await recordedDuring(service, stream, () => plug.press())
  await energyAfterStop
  t.equal(plug.isOn, false)
  t.same(during.filter(e => e.type === 'PowerReported').map(e => [e.data.source, e.data.power, e.data.outcome]),
    [['RESULT', 'OFF', 'pressed'], ['POWER', 'OFF', 'unchanged']], 'RESULT and POWER both arrive; only the change is a press')
  t.equal(recorded(service, stream, 'PowerReported').filter(e => e.data.outcome === 'pressed').length, 1, 'one press in the whole log')
  t.same(recorded(service, stream, 'InstanceStopped').filter(e => e.data.reason === 'pressed').map(e => e.data.instance_identifier), [pressed],
    'exactly one stop by the press')
  t.same(recorded(service, stream, 'SocketCommanded').filter(e => e.data.command === 'POWER' && e.data.by === 'service').map(e => e.data.payload),
    ['ON', 'OFF', 'ON'], 'the service sent no OFF after the press')
  const afterPress = await http(service, 'GET', `/api/instance/${pressed}`, { token: socket.token })
  t.match(afterPress.body.instance, { status: 'stopped', stopReason: 'pressed', isManuallyStopped: true })

  t.equal(plug.connects, 1, 'one CONNECT for the whole test')
  t.equal(plug.closes, 0, 'and never a close')
  t.equal(plug.connected, true)
  t.same(recorded(service, stream, 'DeviceDisconnected'), [])

  const download = await http(service, 'GET', '/api/download', { token: socket.token })
  t.equal(download.status, 200)
  t.equal(Object.keys(download.body.instances).length, 2)
  await service.close()

  const replayDir = tempDir(t)
  const replayed = await devicelog(['replay', '--database', service.databasePath, '--out', join(replayDir, 'devicelog.db')])
  t.equal(replayed.code, 0, replayed.code === 0 ? 'devicelog replay succeeds' : replayed.stderr)
  t.same(projectionRows(join(replayDir, 'devicelog.db')), projectionRows(service.databasePath), 'the replay rebuilds the same projections')
  const rebuilt = await startService(t, { dir: replayDir })
  const again = await http(rebuilt, 'GET', '/api/download', { token: socket.token })
  t.equal(again.status, 200)
  // Presence is the one difference: the plug was connected to the live run, not to this one.
  t.same({ ...again.body, server: { ...again.body.server, online: true } }, download.body, 'GET /api/download agrees')
})

t.test('legacy firmware: a numeric Status.Power and energy on STATUS8 are understood', async t => {
  const service = await startService(t)
  const socket = await createSocket(service)
  const stream = streamOf(socket)
  await startPlug(t, service, socket, { firmware: 'real', legacy: true, on: true, totalKwh: 12.345 })

  t.same(recorded(service, stream, 'PowerReported').filter(e => e.data.source === 'STATUS0').map(e => e.data.power), ['ON'], 'Status.Power 1 is ON')
  const started = await http(service, 'POST', '/api/instance', { token: socket.token, body: {} })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.equal(started.body.instance.energy?.Total, 12.345, 'the instance has its start reading')
  t.same(recorded(service, stream, 'EnergyReported').map(e => e.data.source).slice(-1), ['STATUS8'], 'read from STATUS8')
  t.same(refusedMessages(service, stream), [])
})

t.test('a custom FullTopic: subscriptions granted, an instance starts and stops', async t => {
  const service = await startService(t)
  const fullTopic = '%topic%/%prefix%/'
  const socket = await createSocket(service, { fullTopic })
  const stream = streamOf(socket)
  const plug = await startPlug(t, service, socket, { firmware: 'real', fullTopic })

  t.same(refusedMessages(service, stream), [], 'every message under <topic>/stat, <topic>/tele, <topic>/cmnd is accepted')
  // Tasmota's fallback topic ignores FullTopic: it is always cmnd/<client id>_fb/.
  t.same(refusedSubscriptions(service, stream), [], `${socket.topic}/cmnd/#, tasmotas/cmnd/# and cmnd/${plug.clientId}_fb/# are granted`)
  const started = await http(service, 'POST', '/api/instance', { token: socket.token, body: {} })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.equal(plug.isOn, true)
  t.ok(plug.commands.some(c => c.topic === `${socket.topic}/cmnd/POWER` && c.payload === 'ON'), 'the command went to <topic>/cmnd/POWER')
  const stopped = await http(service, 'PUT', `/api/instance/${started.body.instance.id}`, { token: socket.token })
  t.equal(stopped.status, 200, JSON.stringify(stopped.body))
  t.equal(plug.isOn, false)
  t.equal(plug.connects, 1)
  t.equal(plug.closes, 0)
})

t.test('each refusal keeps the connection, is recorded, and nothing is forwarded or retained', async t => {
  const service = await startService(t)
  const a = await createSocket(service)
  const b = await createSocket(service, { token: a.token, networkId: a.networkId })
  const plugB = await startPlug(t, service, b, { firmware: 'real' })
  const rogue = await connectAs(service, a)

  await publish(rogue, `cmnd/${b.topic}/POWER`, 'ON')
  await publish(rogue, 'cmnd/tasmotas/POWER', 'ON')
  await publish(rogue, '$SYS/anything', 'x')
  t.same(refusedMessages(service, streamOf(a)), [
    [`cmnd/${b.topic}/POWER`, 'foreign_topic'],
    ['cmnd/tasmotas/POWER', 'foreign_topic'],
    ['$SYS/anything', 'reserved_topic']
  ])
  t.same((await commandsReceivedBy(service, plugB)).filter(topic => topic.endsWith('/POWER')), [], 'B received no POWER, on its topic or the group\'s')
  t.equal(plugB.isOn, false, "B's relay is unchanged")

  t.equal(await subscribeCode(rogue, '#'), 128)
  t.equal(await subscribeCode(rogue, `stat/${b.topic}/#`), 128)
  t.same(refusedSubscriptions(service, streamOf(a)), [['#', 'foreign_topic'], [`stat/${b.topic}/#`, 'foreign_topic']])

  await publish(rogue, `tele/${a.topic}/STATE`, '{"POWER":"OFF"}')
  t.equal(rogue.connected, true, 'still connected after five refusals')
  t.same(recorded(service, streamOf(a), 'DeviceDisconnected'), [])

  // (OFF: one identical to the first refusal would be counted, not recorded one by one)
  await rogue.publishAsync(`cmnd/${b.topic}/POWER`, 'OFF', { qos: 1, retain: true })
  t.same(refusedMessages(service, streamOf(a)).at(-1), [`cmnd/${b.topic}/POWER`, 'foreign_topic'])
  t.same(await retainedFor(service, b), [], 'a new subscriber to B\'s commands gets no retained message')
  t.same((await commandsReceivedBy(service, plugB)).filter(topic => topic.endsWith('/POWER')), [], 'nor was the retained one forwarded')
  t.equal(plugB.isOn, false)
  t.equal(plugB.connects, 1)
})

t.test('discovery binds a MAC to the plug that announced it first with its own topic', async t => {
  const service = await startService(t)
  const a = await createSocket(service)
  const b = await createSocket(service, { token: a.token, networkId: a.networkId })
  const clientA = await connectAs(service, a)
  const clientB = await connectAs(service, b)
  const MAC1 = 'AABBCC000001'
  const MAC2 = 'AABBCC000002'
  const MAC3 = 'AABBCC000003'
  const config = (topic: string, mac: string) => ({ t: topic, mac, sw: '14.3.0', hn: `${topic}-1`, ip: '192.168.1.60', md: 'Sonoff Pow R2' })

  const announced = await recordedDuring(service, streamOf(a), () => publish(clientA, `tasmota/discovery/${MAC1}/config`, config(a.topic, MAC1)))
  t.equal(announced.length, 1)
  t.match(announced[0], { type: 'SocketInfoReported', data: { source: 'discovery', mac: MAC1, firmware_version: '14.3.0' } }, 'accepted, and the MAC bound')
  t.equal((await listedSocket(service, a)).device.mac, MAC1)

  await publish(clientA, `tasmota/discovery/${MAC2}/config`, config(a.topic, MAC2))
  await publish(clientB, `tasmota/discovery/${MAC1}/config`, config(b.topic, MAC1))
  await publish(clientB, `tasmota/discovery/${MAC3}/config`, config(a.topic, MAC3))
  t.same(refusedMessages(service, streamOf(a)), [[`tasmota/discovery/${MAC2}/config`, 'foreign_topic']], 'A has its MAC already')
  t.same(refusedMessages(service, streamOf(b)), [
    [`tasmota/discovery/${MAC1}/config`, 'foreign_topic'],
    [`tasmota/discovery/${MAC3}/config`, 'foreign_topic']
  ], "B may not take A's MAC, nor announce for A's topic")
  t.equal((await listedSocket(service, a)).device.mac, MAC1)
  t.equal((await listedSocket(service, b)).device.mac, null, 'B has no MAC')
  t.ok(clientA.connected && clientB.connected)
})

t.test('too many refused messages in a minute cut the client off, recorded once', async t => {
  const service = await startService(t, { env: { MQTT_MAX_REFUSALS_PER_MINUTE: '5' } })
  const socket = await createSocket(service)
  const stream = streamOf(socket)
  const client = await connectAs(service, socket)
  // (Each payload different: identical refusals would be counted, not recorded one by one; they count towards the limit alike.)
  for (let i = 1; i <= 5; i++) {
    await publish(client, 'cmnd/someone_else/POWER', `ON ${i}`)
    t.equal(client.connected, true, `refusal ${i} is acknowledged and the connection stays`)
  }
  await t.rejects(publish(client, 'cmnd/someone_else/POWER', 'ON 6'), /closed before the PUBACK/, 'the sixth closes the connection')
  await logSettled(service)
  t.equal(recorded(service, stream, 'MessageRejected').length, 6, 'every refused message is recorded, the one too many too')
  t.same(recorded(service, stream, 'DeviceDisconnected').map(e => [e.data.client_id, e.data.reason]), [[client.options.clientId, 'too_many_refusals']],
    'one disconnect, and no second one for the close itself')
})

t.test('refusals older than a minute do not count', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { MQTT_MAX_REFUSALS_PER_MINUTE: '5' } })
  const socket = await createSocket(service)
  const client = await connectAs(service, socket)
  for (let i = 0; i < 5; i++) await publish(client, 'cmnd/someone_else/POWER', `ON ${i}`)
  clock.advance(61_000)
  for (let i = 5; i < 10; i++) await publish(client, 'cmnd/someone_else/POWER', `ON ${i}`)
  t.equal(client.connected, true)
  t.equal(recorded(service, streamOf(socket), 'MessageRejected').length, 10)
  t.same(recorded(service, streamOf(socket), 'DeviceDisconnected'), [])
})

t.test('too many refused subscriptions in a minute cut the client off, recorded once', async t => {
  const service = await startService(t, { env: { MQTT_MAX_REFUSALS_PER_MINUTE: '5' } })
  const socket = await createSocket(service)
  const stream = streamOf(socket)
  const client = await connectAs(service, socket)
  for (let i = 1; i <= 5; i++) t.equal(await subscribeCode(client, `stat/someone_else_${i}/#`), 128, `refused subscription ${i}`)
  t.equal(client.connected, true)
  await t.rejects(subscribeCode(client, 'stat/someone_else_6/#'), /closed before the SUBACK/, 'the sixth closes the connection')
  await logSettled(service)
  t.equal(recorded(service, stream, 'SubscriptionRefused').length, 6, 'every refused subscription is recorded, the one too many too')
  t.same(recorded(service, stream, 'DeviceDisconnected').map(e => e.data.reason), ['too_many_refusals'])
})

t.test('payloads as firmware writes them are read; only what cannot be read is refused', async t => {
  const service = await startService(t)
  const socket = await createSocket(service)
  const stream = streamOf(socket)
  const client = await connectAs(service, socket)
  const reported = async (topic: string, payload: string) => {
    const events = await recordedDuring(service, stream, () => publish(client, topic.replace('<t>', socket.topic), payload))
    return events.map(e => [e.type, e.data as object])
  }
  const power = (power: string, source: string, outcome: string) =>
    ['PowerReported', { socket_identifier: socket.socketId, power, source, outcome, instance_identifier: null }]

  t.same(await reported('stat/<t>/POWER', 'on'), [power('ON', 'POWER', 'unchanged')])
  t.same(await reported('stat/<t>/POWER', '1'), [power('ON', 'POWER', 'unchanged')])
  t.same(await reported('stat/<t>/RESULT', '{"POWER":"OFF","Extra":1}'), [power('OFF', 'RESULT', 'pressed')])
  t.same(await reported('stat/<t>/STATUS', '{"Status":{"Power":"01","DeviceName":"X","Unknown":true}}'), [
    ['SocketStatusReported', { socket_identifier: socket.socketId, device_name: 'X' }],
    power('ON', 'STATUS', 'pressed')
  ])
  t.same(await reported('tele/<t>/SENSOR', '{"Time":"2026-01-01T01:00:00","ENERGY":{"Total":"1.5","Power":"100","Voltage":" 230 ","Today":"","Period":7,"Extra":"x"}}'), [
    ['EnergyReported', { socket_identifier: socket.socketId, source: 'SENSOR', energy: { Total: 1.5, Power: 100, Voltage: 230 } }]
  ], 'strings are numbers; unknown fields pass and are not kept')
  t.same(refusedMessages(service, stream), [])

  const refused = (reason: string, topic: string, payload: string) => ['MessageRejected', {
    topic: topic.replace('<t>', socket.topic), client_id: client.options.clientId, username: socket.topic, reason,
    detail: String, payload_excerpt: payload, payload_bytes: Buffer.byteLength(payload)
  }]
  const invalidJson = await reported('stat/<t>/STATUS10', '{"StatusSNS":')
  const invalidPower = await reported('stat/<t>/POWER', 'maybe')
  t.match(invalidJson, [refused('invalid_json', 'stat/<t>/STATUS10', '{"StatusSNS":')])
  t.match(invalidPower, [refused('invalid_payload', 'stat/<t>/POWER', 'maybe')])
  t.same([invalidJson.length, invalidPower.length], [1, 1], 'a rejection each, and nothing else')
  await publish(client, `stat/${socket.topic}/POWER`, 'OFF')
  t.equal(client.connected, true, 'refusals did not cost the connection')
})
