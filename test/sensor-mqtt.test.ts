import { randomUUID } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import { connectSensor, createSensor, http, publish, startService, type SensorFixture, type Service } from './helpers/service.ts'
import { rawClient } from './helpers/raw-mqtt.ts'
import { createZone } from './helpers/zones.ts'

// The MQTT half of the sensor contract, end to end: a real broker on an ephemeral port, real
// mqtt.js clients (and a raw mqtt-packet client where mqtt.js cannot be made to misbehave),
// read back over real HTTP.

const MAX_PAYLOAD = 256 * 1024
const T0 = 1767225600 // 2026-01-01T00:00:00Z, Unix seconds

const send = publish

const measurement = (timestamp: number, value: Record<string, unknown> = { temperature: 21.5 }, revision = 0) => ({ revision, timestamp, value })
const measurements = (...items: unknown[]) => ({ measurements: items })

/** Every event of the audit feed matching the query, all pages. */
async function auditEvents (service: Service, token: string, query: { type?: string, stream?: string } = {}): Promise<any[]> {
  const events: any[] = []
  let after = 0
  for (;;) {
    const params = new URLSearchParams({ after: String(after), limit: '1000' })
    if (query.type !== undefined) params.set('type', query.type)
    if (query.stream !== undefined) params.set('stream', query.stream)
    const response = await http(service, 'GET', `/api/v1/events?${params}`, { token })
    if (response.status !== 200) throw new Error(`GET /api/v1/events: ${response.status} ${JSON.stringify(response.body)}`)
    events.push(...response.body.events)
    if (response.body.events.length < 1000) return events
    after = response.body.next_after
  }
}

const sensorEvents = (service: Service, sensor: SensorFixture, type: string) =>
  auditEvents(service, sensor.token, { type, stream: `sensor-${sensor.sensorId}` })

async function rejections (service: Service, sensor: SensorFixture, after = 0): Promise<any[]> {
  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections?after=${after}&limit=1000`, { token: sensor.token })
  if (response.status !== 200) throw new Error(`GET rejections: ${response.status}`)
  return response.body
}

async function measurementsOf (service: Service, sensor: SensorFixture): Promise<any[]> {
  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements`, { token: sensor.token })
  if (response.status !== 200) throw new Error(`GET measurements: ${response.status}`)
  return response.body
}

/** Records whether the client's connection ever closed. */
function watchClose (client: MqttClient) {
  const state = { closed: false }
  client.on('close', () => { state.closed = true })
  return state
}

const clientIds = (prefix: string) => `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`

t.test('accepted heartbeats, measurements and log messages land in the projections', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const clientId = clientIds('happy')
  const client = await connectSensor(t, service, sensor, { clientId })

  await send(client, `measurements/${sensor.sensorId}`, measurements(
    measurement(T0 + 2.25, { temperature: 22, nested: { list: [1, 'two', null], ok: true } }),
    measurement(T0 + 1.5, { temperature: 21.5 })
  ))
  await send(client, `log-messages/${sensor.sensorId}`, {
    log_messages: [
      { severity: 'error', revision: 0, timestamp: T0 + 3, subject: 'The CPU is burning', details: 'Please call the fire department' },
      { severity: 'warning', revision: 0, timestamp: T0 + 4, subject: 'The CPU is pretty hot' },
      { severity: 'debug', revision: 0, timestamp: T0 + 5, subject: 'tick', details: null }
    ]
  })
  const heartbeats = [{ revision: 0, timestamp: T0 + 6, success: true }]
  await send(client, `heartbeats/${sensor.sensorId}`, { heartbeats })

  // The PUBACK goes out after the commit: what was acknowledged is readable at once.
  t.same(await measurementsOf(service, sensor), [
    { revision: 0, creation_timestamp: T0 + 1.5, measurement: { temperature: 21.5 } },
    { revision: 0, creation_timestamp: T0 + 2.25, measurement: { temperature: 22, nested: { list: [1, 'two', null], ok: true } } }
  ], 'measurements, ordered by the sensor\'s own timestamp')

  const logs = await http(service, 'GET', `/sensors/${sensor.sensorId}/logs`, { token: sensor.token })
  t.equal(logs.status, 200)
  t.same(logs.body, [
    { revision: 0, creation_timestamp: T0 + 3, severity: 'error', subject: 'The CPU is burning', details: 'Please call the fire department' },
    { revision: 0, creation_timestamp: T0 + 4, severity: 'warning', subject: 'The CPU is pretty hot', details: null },
    { revision: 0, creation_timestamp: T0 + 5, severity: 'debug', subject: 'tick', details: null }
  ], 'log messages, details null when absent')

  const aggregates = await http(service, 'GET', `/sensors/${sensor.sensorId}/logs/aggregates`, { token: sensor.token })
  t.same(aggregates.body.map((a: any) => [a.severity, a.subject, a.count]), [
    ['error', 'The CPU is burning', 1], ['warning', 'The CPU is pretty hot', 1]
  ], 'warnings and errors are aggregated, debug is not')

  const [received, ...moreHeartbeats] = await sensorEvents(service, sensor, 'HeartbeatsReceived')
  t.same(moreHeartbeats, [], 'one heartbeat event')
  t.same(received.data, { sensor_identifier: sensor.sensorId, heartbeats })
  t.equal(received.metadata.actor, `mqtt:${clientId}`, 'the MQTT client is the actor')
  t.match(received.metadata.mqtt, { message_id: Number, crc32: Number }, 'its message id and payload checksum, to recognise a redelivery')

  const recorded = await sensorEvents(service, sensor, 'MeasurementsRecorded')
  t.equal(recorded.length, 1, 'one event per message')
  t.equal(recorded[0].data.measurements.length, 2, 'the whole batch in it')
  t.same(await rejections(service, sensor), [], 'nothing rejected')
})

t.test('each kind of bad input is rejected, recorded, and the connection survives', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const other = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
  const clientId = clientIds('bad')
  const client = await connectSensor(t, service, sensor, { clientId })
  const connection = watchClose(client)
  const own = (channel: string) => `${channel}/${sensor.sensorId}`
  const m = own('measurements')

  const big = JSON.stringify(measurements(measurement(T0, { pad: 'x'.repeat(MAX_PAYLOAD) })))
  const manyItems = measurements(...Array.from({ length: 1001 }, (_, i) => measurement(T0 + i)))
  const cases: Array<{ name: string, topic: string, payload: string | Buffer, reason: string, detail?: RegExp }> = [
    { name: 'truncated JSON', topic: m, payload: '{"measurements": [', reason: 'invalid_json' },
    { name: 'empty payload', topic: m, payload: '', reason: 'invalid_json' },
    { name: 'binary payload', topic: m, payload: Buffer.from([0xff, 0xfe, 0x00, 0x7b]), reason: 'invalid_json' },
    { name: 'missing field', topic: m, payload: JSON.stringify(measurements({ revision: 0, value: {} })), reason: 'invalid_payload', detail: /timestamp/ },
    { name: 'wrong type', topic: m, payload: JSON.stringify(measurements(measurement(T0, {}, '0' as never))), reason: 'invalid_payload', detail: /revision/ },
    { name: 'value not an object', topic: m, payload: JSON.stringify(measurements({ revision: 0, timestamp: T0, value: 42 })), reason: 'invalid_payload', detail: /value/ },
    { name: 'negative timestamp', topic: m, payload: JSON.stringify(measurements(measurement(-1))), reason: 'invalid_payload', detail: /timestamp/ },
    { name: 'JSON null', topic: m, payload: 'null', reason: 'invalid_payload' },
    {
      name: 'severity not in the enum',
      topic: own('log-messages'),
      payload: JSON.stringify({ log_messages: [{ severity: 'fatal', revision: 0, timestamp: T0, subject: 's' }] }),
      reason: 'invalid_payload',
      detail: /severity/
    },
    {
      name: 'heartbeat success not a boolean',
      topic: own('heartbeats'),
      payload: JSON.stringify({ heartbeats: [{ revision: 0, timestamp: T0, success: 'yes' }] }),
      reason: 'invalid_payload',
      detail: /success/
    },
    { name: 'payload of another channel', topic: own('heartbeats'), payload: JSON.stringify(measurements(measurement(T0))), reason: 'invalid_payload' },
    { name: 'unknown field in an item', topic: m, payload: JSON.stringify(measurements({ ...measurement(T0), unit: 'C' })), reason: 'invalid_payload', detail: /unit/ },
    { name: 'unknown top-level field', topic: m, payload: JSON.stringify({ ...measurements(measurement(T0)), sent_by: 'me' }), reason: 'invalid_payload', detail: /sent_by/ },
    { name: 'empty batch', topic: m, payload: JSON.stringify(measurements()), reason: 'invalid_payload', detail: /measurements/ },
    { name: 'batch of 1001', topic: m, payload: JSON.stringify(manyItems), reason: 'invalid_payload', detail: /measurements/ },
    { name: 'payload over 256 KiB', topic: m, payload: big, reason: 'oversize', detail: new RegExp(String(Buffer.byteLength(big))) },
    { name: 'topic of another sensor', topic: `measurements/${other.sensorId}`, payload: JSON.stringify(measurements(measurement(T0))), reason: 'foreign_topic' },
    { name: 'topic of a sensor that does not exist', topic: `measurements/${randomUUID()}`, payload: JSON.stringify(measurements(measurement(T0))), reason: 'unknown_sensor' },
    { name: 'unknown topic', topic: 'foo/bar', payload: JSON.stringify(measurements(measurement(T0))), reason: 'unknown_topic' },
    { name: 'extra topic level', topic: `${m}/extra`, payload: JSON.stringify(measurements(measurement(T0))), reason: 'unknown_topic' },
    { name: 'channel without an id', topic: 'measurements', payload: JSON.stringify(measurements(measurement(T0))), reason: 'unknown_topic' },
    { name: 'own configurations topic', topic: own('configurations'), payload: JSON.stringify({ revision: 9, configuration: {} }), reason: 'unknown_topic' }
  ]

  let after = 0
  for (const [i, c] of cases.entries()) {
    await t.test(c.name, async t => {
      const payload = Buffer.isBuffer(c.payload) ? c.payload : Buffer.from(c.payload)
      await send(client, c.topic, payload) // acknowledged, not an error
      const found = await rejections(service, sensor, after)
      t.equal(found.length, 1, 'exactly one rejection, committed before the PUBACK')
      const [rejection] = found
      t.match(rejection, {
        kind: 'message',
        topic: c.topic,
        client_id: clientId,
        reason: c.reason,
        payload_bytes: payload.length
      })
      t.equal(rejection.payload_excerpt, payload.subarray(0, 1024).toString('utf8'), 'the first KiB of the payload')
      t.ok(rejection.payload_excerpt.length <= 1024, 'never more than a KiB of a big payload')
      t.type(rejection.detail, 'string')
      t.not(rejection.detail, '')
      if (c.detail !== undefined) t.match(rejection.detail, c.detail, 'the detail says what is wrong')
      after = rejection.position

      // Same connection, next valid message: recorded.
      await send(client, m, measurements(measurement(T0 + 1000 + i, { after: c.name })))
      t.notOk(connection.closed, 'the connection was not closed')
      t.ok(client.connected)
    })
  }

  const big1k = (await rejections(service, sensor)).find(r => r.reason === 'oversize')
  t.equal(big1k.payload_excerpt.length, 1024, 'a big payload is cut to 1 KiB')
  t.equal(big1k.payload_bytes, Buffer.byteLength(big))

  const stored = await measurementsOf(service, sensor)
  t.same(stored.map(s => s.measurement), cases.map(c => ({ after: c.name })), 'every valid message after a bad one was recorded, and only those')
  t.same(await rejections(service, other), [], 'a foreign publish is recorded on the publisher, not on the other sensor')
  t.same(await measurementsOf(service, other), [], 'and does not land in the other sensor\'s measurements')
  t.equal((await sensorEvents(service, sensor, 'MessageRejected')).length, cases.length, 'every rejection is an event in the log')
  t.notOk(connection.closed)
})

t.test('at the limits: 1000 items and exactly 256 KiB are accepted', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  const m = `measurements/${sensor.sensorId}`

  await send(client, m, measurements(...Array.from({ length: 1000 }, (_, i) => measurement(T0 + i, { i }))))
  const empty = JSON.stringify(measurements(measurement(T0, { pad: '' })))
  const exact = JSON.stringify(measurements(measurement(T0, { pad: 'y'.repeat(MAX_PAYLOAD - Buffer.byteLength(empty)) })))
  t.equal(Buffer.byteLength(exact), MAX_PAYLOAD)
  await send(client, m, exact)

  const recorded = await sensorEvents(service, sensor, 'MeasurementsRecorded')
  t.same(recorded.map(e => e.data.measurements.length), [1000, 1])
  t.equal(recorded[1].data.measurements[0].value.pad.length, MAX_PAYLOAD - Buffer.byteLength(empty))
  t.same(await rejections(service, sensor), [])
})

t.test('a refused publish to another sensor\'s topic never reaches that sensor', async t => {
  const service = await startService(t)
  const a = await createSensor(service)
  const b = await createSensor(service, { token: a.token, networkId: a.networkId, configuration: { interval: 10 } })
  const clientA = await connectSensor(t, service, a)
  const clientB = await connectSensor(t, service, b)

  const received: Array<{ topic: string, payload: any, retain: boolean }> = []
  const arrivals: Array<() => void> = []
  clientB.on('message', (topic, payload, packet) => {
    received.push({ topic, payload: JSON.parse(payload.toString()), retain: packet.retain })
    arrivals.shift()?.()
  })
  const nextMessage = () => new Promise<void>(resolve => { arrivals.push(resolve) })

  const retained = nextMessage()
  await clientB.subscribeAsync(`configurations/${b.sensorId}`, { qos: 1 })
  await retained
  t.same(received, [{ topic: `configurations/${b.sensorId}`, payload: { revision: 0, configuration: { interval: 10 } }, retain: true }],
    'the retained configuration from the service')

  // A may not publish there: unknown_topic for A, acknowledged, and delivered to nobody.
  // (Three different ones: identical refusals would be counted, not recorded one by one.)
  const forged = (revision: number) => ({ revision, configuration: { interval: 0 } })
  await send(clientA, `configurations/${b.sensorId}`, forged(97), 0)
  await send(clientA, `configurations/${b.sensorId}`, forged(98))
  // (the QoS 1 PUBACKs also mean the QoS 0 message before them was handled)
  await clientA.publishAsync(`configurations/${b.sensorId}`, JSON.stringify(forged(99)), { qos: 1, retain: true })
  const refused = await rejections(service, a)
  t.same(refused.map(r => [r.topic, r.reason]), Array(3).fill([`configurations/${b.sensorId}`, 'unknown_topic']))

  // A later message from the service arrives after anything A's messages could have caused.
  const revision = nextMessage()
  const put = await http(service, 'PUT', `/sensors/${b.sensorId}`, {
    token: b.token, body: { sensor_name: 'b', network_identifier: b.networkId, configuration: { interval: 20 } }
  })
  t.equal(put.status, 200)
  await revision
  t.same(received.map(r => r.payload), [{ revision: 0, configuration: { interval: 10 } }, { revision: 1, configuration: { interval: 20 } }],
    'B received only the service\'s configurations')

  // The retained copy is the service's, not A's (a refused message is never retained).
  const late = await connectSensor(t, service, b)
  const lateMessage = new Promise<[string, Buffer]>(resolve => late.once('message', (topic, payload) => resolve([topic, payload])))
  await late.subscribeAsync(`configurations/${b.sensorId}`, { qos: 1 })
  const [topic, payload] = await lateMessage
  t.equal(topic, `configurations/${b.sensorId}`)
  t.same(JSON.parse(payload.toString()), { revision: 1, configuration: { interval: 20 } })
})

t.test('the first heartbeat for a revision acknowledges it; later ones change nothing', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  const client = await connectSensor(t, service, sensor)
  const h = `heartbeats/${sensor.sensorId}`
  const current = async () => (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: sensor.token })).body

  t.match(await current(), { revision: 0, acknowledged_at: null, success: null }, 'not acknowledged before a heartbeat')
  await send(client, h, { heartbeats: [{ revision: 0, timestamp: T0 + 10, success: true }] })
  t.match(await current(), { revision: 0, acknowledged_at: T0 + 10, success: true })
  await send(client, h, { heartbeats: [{ revision: 0, timestamp: T0 + 20, success: false }] })
  t.match(await current(), { revision: 0, acknowledged_at: T0 + 10, success: true }, 'a later heartbeat changes nothing')

  const put = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'renamed', network_identifier: sensor.networkId, configuration: { interval: 6 } }
  })
  t.same(put.body, { sensor_identifier: sensor.sensorId, revision: 1 })
  t.match(await current(), { revision: 1, acknowledged_at: null, success: null }, 'a new revision awaits its acknowledgement')
  // Two for revision 1 in one batch, and one for a revision that does not exist.
  await send(client, h, {
    heartbeats: [
      { revision: 1, timestamp: T0 + 30, success: false },
      { revision: 1, timestamp: T0 + 31, success: true },
      { revision: 7, timestamp: T0 + 32, success: true }
    ]
  })
  await send(client, h, { heartbeats: [{ revision: 1, timestamp: T0 + 40, success: true }, { revision: 0, timestamp: T0 + 41, success: false }] })
  t.match(await current(), { revision: 1, acknowledged_at: T0 + 30, success: false }, 'the first heartbeat for revision 1 counts')

  const acknowledged = await sensorEvents(service, sensor, 'ConfigurationAcknowledged')
  t.same(acknowledged.map(e => e.data), [
    { sensor_identifier: sensor.sensorId, revision: 0, success: true, acknowledged_at: T0 + 10 },
    { sensor_identifier: sensor.sensorId, revision: 1, success: false, acknowledged_at: T0 + 30 }
  ], 'exactly one ConfigurationAcknowledged per revision')
  t.equal((await sensorEvents(service, sensor, 'HeartbeatsReceived')).length, 4, 'every heartbeat message is still recorded')
})

t.test('QoS 0 messages are recorded, and rejected, too', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  const m = `measurements/${sensor.sensorId}`

  await send(client, m, measurements(measurement(T0 + 1, { qos: 0 })), 0)
  await send(client, m, 'not json', 0)
  await send(client, `log-messages/${sensor.sensorId}`, { log_messages: [{ severity: 'info', revision: 0, timestamp: T0 + 2, subject: 'qos 0' }] }, 0)
  // A QoS 1 message of the same connection is handled after them: its PUBACK means they are committed.
  await send(client, m, measurements(measurement(T0 + 3, { qos: 1 })), 1)

  t.same((await measurementsOf(service, sensor)).map(s => s.measurement), [{ qos: 0 }, { qos: 1 }])
  const logs = await http(service, 'GET', `/sensors/${sensor.sensorId}/logs`, { token: sensor.token })
  t.same(logs.body.map((l: any) => l.subject), ['qos 0'])
  const [rejection, ...more] = await rejections(service, sensor)
  t.same(more, [])
  t.match(rejection, { reason: 'invalid_json', topic: m, payload_excerpt: 'not json', payload_bytes: 8 })
  const recorded = await sensorEvents(service, sensor, 'MeasurementsRecorded')
  t.equal(recorded[0].metadata.mqtt, undefined, 'a QoS 0 message has no message id to remember')
  t.type(recorded[1].metadata.mqtt.message_id, 'number')
})

/** A bare MQTT 3.1.1 client over TCP: sends exactly the packets it is given. */
t.test('a QoS 1 message redelivered with DUP is not recorded twice', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const clientId = clientIds('raw')
  const topic = `measurements/${sensor.sensorId}`
  const first = Buffer.from(JSON.stringify(measurements(measurement(T0 + 1, { n: 1 }))))
  const second = Buffer.from(JSON.stringify(measurements(measurement(T0 + 2, { n: 2 }))))
  const recordedValues = async () => (await sensorEvents(service, sensor, 'MeasurementsRecorded')).map(e => e.data.measurements[0].value)

  const raw = await rawClient(t, service, { username: sensor.sensorId, password: sensor.password }, clientId)
  await raw.publish({ topic, payload: first, messageId: 7, dup: false })
  t.same(await recordedValues(), [{ n: 1 }], 'recorded once')

  await raw.publish({ topic, payload: first, messageId: 7, dup: true })
  t.same(await recordedValues(), [{ n: 1 }], 'the redelivery is acknowledged and not recorded again')

  // The usual case: the connection dropped before the PUBACK; the client reconnects and resends.
  raw.end()
  await raw.closed
  const again = await rawClient(t, service, { username: sensor.sensorId, password: sensor.password }, clientId)
  await again.publish({ topic, payload: first, messageId: 7, dup: true })
  t.same(await recordedValues(), [{ n: 1 }], 'nor after a reconnection with the same client id')

  await again.publish({ topic, payload: second, messageId: 7, dup: true })
  t.same(await recordedValues(), [{ n: 1 }, { n: 2 }], 'same message id and DUP, but another payload: another message')

  await again.publish({ topic, payload: first, messageId: 7, dup: false })
  t.same(await recordedValues(), [{ n: 1 }, { n: 2 }, { n: 1 }], 'without DUP the same payload is a new message')

  // A rejected message is not recorded twice either.
  await again.publish({ topic, payload: Buffer.from('not json'), messageId: 9, dup: false })
  await again.publish({ topic, payload: Buffer.from('not json'), messageId: 9, dup: true })
  t.same((await rejections(service, sensor)).map(r => r.reason), ['invalid_json'])

  // Another client's message id 7 is its own.
  const other = await rawClient(t, service, { username: sensor.sensorId, password: sensor.password }, clientIds('raw-other'))
  await other.publish({ topic, payload: first, messageId: 7, dup: true })
  t.same(await recordedValues(), [{ n: 1 }, { n: 2 }, { n: 1 }, { n: 1 }], 'message ids are per client')
})

t.test("every kind's redelivery is recognised from the log: a valve's report resent with DUP is recorded once", async t => {
  const service = await startService(t)
  const zone = await createZone(service)
  const topic = `zones/${zone.zoneId}/state`
  const reports = async () => (await http(service, 'GET', `/api/v1/events?stream=zone-${zone.zoneId}&type=ValveStateReported`, { token: zone.token }))
    .body.events.map((e: any) => e.data.open)
  const valve = { sensorId: zone.zoneId, password: zone.password } as SensorFixture
  const clientId = clientIds('valve')
  const raw = await rawClient(t, service, { username: valve.sensorId, password: valve.password }, clientId)
  await raw.publish({ topic, payload: Buffer.from('{"open":true}'), messageId: 3, dup: false })
  raw.end()
  await raw.closed
  const again = await rawClient(t, service, { username: valve.sensorId, password: valve.password }, clientId)
  await again.publish({ topic, payload: Buffer.from('{"open":true}'), messageId: 3, dup: true })
  t.same(await reports(), [true], 'the redelivery after a reconnection is acknowledged, not recorded again')
  await again.publish({ topic, payload: Buffer.from('{"open":false}'), messageId: 3, dup: true })
  t.same(await reports(), [true, false], 'another payload under the same message id is another message')
})

t.test('concurrent publishers: every QoS 1 message acknowledged and recorded exactly once', async t => {
  const service = await startService(t)
  const owner = await createSensor(service)
  const sensors = [owner, ...await Promise.all(Array.from({ length: 4 }, () => createSensor(service, { token: owner.token, networkId: owner.networkId })))]
  const clients = await Promise.all(sensors.map(sensor => connectSensor(t, service, sensor)))
  const perClient = 200

  await Promise.all(clients.map((client, c) => {
    const closed = new Promise<never>((_resolve, reject) => client.once('close', () => reject(new Error(`client ${c} was disconnected`))))
    const all = Promise.all(Array.from({ length: perClient }, (_, i) =>
      publish(client, `measurements/${sensors[c]!.sensorId}`, measurements(measurement(T0 + i, { c, i })))))
    return Promise.race([all, closed])
  }))

  const events = await auditEvents(service, owner.token, { type: 'MeasurementsRecorded' })
  t.equal(events.length, sensors.length * perClient, 'one event per message')
  const seen = new Set(events.map(e => `${e.stream_id}:${e.data.measurements[0].value.c}:${e.data.measurements[0].value.i}`))
  t.equal(seen.size, sensors.length * perClient, 'no message recorded twice')
  for (const [c, sensor] of sensors.entries()) {
    const mine = events.filter(e => e.stream_id === `sensor-${sensor.sensorId}`)
    t.same(mine.map(e => e.data.measurements[0].value.c), Array(perClient).fill(c), `sensor ${c}: its own messages on its own stream`)
    t.same(new Set(mine.map(e => e.data.measurements[0].value.i)).size, perClient)
  }
  const positions = events.map(e => e.position)
  t.same(positions, [...positions].sort((x, y) => x - y), 'positions ascending')
  t.same(await rejections(service, owner), [])
})
