import { randomUUID } from 'node:crypto'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { IConnackPacket, ISubackPacket, Packet } from 'mqtt-packet'
import t from 'tap'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, type SensorFixture, type Service } from './helpers/service.ts'

// The embedded broker's gate: who may connect, what they may subscribe to, and over which
// transports. Real Aedes on ephemeral ports, real mqtt.js clients, read back over real HTTP.

const T0 = 1767225600
const send = publish

const clientIdFor = (prefix: string) => `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`
const oneMeasurement = (value: Record<string, unknown>) => ({ measurements: [{ revision: 0, timestamp: T0, value }] })

async function rejections (service: Service, sensor: SensorFixture): Promise<any[]> {
  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/rejections`, { token: sensor.token })
  if (response.status !== 200) throw new Error(`GET rejections: ${response.status}`)
  return response.body
}

async function measurementValues (service: Service, sensor: SensorFixture): Promise<unknown[]> {
  const response = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements`, { token: sensor.token })
  if (response.status !== 200) throw new Error(`GET measurements: ${response.status}`)
  return response.body.map((m: any) => m.measurement)
}

/** A CONNECT that is expected to be refused: the raw CONNACK and mqtt.js' error. */
async function refusedConnect (url: string, options: IClientOptions): Promise<{ connack: IConnackPacket, error: Error & { code?: number }, client: MqttClient }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  let connack: IConnackPacket | undefined
  client.on('packetreceive', (packet: Packet) => { if (packet.cmd === 'connack') connack = packet })
  const outcome = await new Promise<Error & { code?: number }>((resolve, reject) => {
    client.once('connect', () => reject(new Error('the CONNECT was accepted')))
    client.once('error', resolve)
  })
  await client.endAsync(true)
  if (connack === undefined) throw new Error(`no CONNACK: ${outcome.message}`)
  return { connack, error: outcome, client }
}

t.test('CONNECT is refused with return code 4 and recorded', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const brokerRefusals = () => service.app.store.read({ stream: 'broker', type: 'ConnectionRefused' })
    .flatMap(e => e.type === 'ConnectionRefused' ? [e] : [])

  await t.test('a known sensor with a wrong password', async t => {
    const clientId = clientIdFor('wrong-password')
    const { connack, error } = await refusedConnect(service.mqttUrl, { clientId, username: sensor.sensorId, password: `${sensor.password}x` })
    t.equal(connack.returnCode, 4, 'CONNACK: bad username or password')
    t.equal(error.code, 4, 'mqtt.js reports code 4')
    const [refusal, ...more] = await rejections(service, sensor)
    t.same(more, [])
    t.match(refusal, { kind: 'connection', client_id: clientId, reason: 'bad_credentials', detail: 'wrong password', topic: null, payload_excerpt: null, payload_bytes: null })
  })

  await t.test('an unknown username', async t => {
    const clientId = clientIdFor('unknown-user')
    const username = randomUUID()
    const { connack, error } = await refusedConnect(service.mqttUrl, { clientId, username, password: sensor.password })
    t.equal(connack.returnCode, 4)
    t.equal(error.code, 4)
    // No device to name: the refusal is on the broker's own stream (not in any sensor's rejections).
    t.match(brokerRefusals().filter(e => e.data.client_id === clientId),
      [{ type: 'ConnectionRefused', data: { client_id: clientId, username, reason: 'bad_credentials', detail: 'unknown username' } }])
    t.equal(brokerRefusals().filter(e => e.data.client_id === clientId).length, 1)
  })

  await t.test('no credentials at all', async t => {
    const clientId = clientIdFor('anonymous')
    const { connack, error } = await refusedConnect(service.mqttUrl, { clientId })
    t.equal(connack.returnCode, 4)
    t.equal(error.code, 4)
    const recorded = brokerRefusals().filter(e => e.data.client_id === clientId)
    t.match(recorded, [{ data: { client_id: clientId, username: null, reason: 'bad_credentials' } }])
    t.equal(recorded.length, 1)
  })

  await t.test('a username without a password', async t => {
    const clientId = clientIdFor('no-password')
    const { connack } = await refusedConnect(service.mqttUrl, { clientId, username: sensor.sensorId })
    t.equal(connack.returnCode, 4)
    t.match((await rejections(service, sensor)).at(-1), { kind: 'connection', client_id: clientId, reason: 'bad_credentials' })
  })

  await t.test('another sensor\'s password', async t => {
    const other = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
    const { connack } = await refusedConnect(service.mqttUrl, { username: sensor.sensorId, password: other.password })
    t.equal(connack.returnCode, 4)
  })

  // And the right credentials are accepted (the refusals above are not a broken broker).
  const client = await connectSensor(t, service, sensor)
  t.ok(client.connected, 'the sensor\'s own credentials connect')
})

t.test('a sensor may subscribe to its own configurations topic only', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service, { configuration: { interval: 10 } })
  const other = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
  const clientId = clientIdFor('subscriber')
  const client = await connectSensor(t, service, sensor, { clientId })
  let closed = false
  client.on('close', () => { closed = true })

  const subacks = new Map<number, ISubackPacket>()
  client.on('packetreceive', (packet: Packet) => { if (packet.cmd === 'suback') subacks.set(packet.messageId!, packet) })
  const sent = new Map<string, number>()
  client.on('packetsend', (packet: Packet) => {
    if (packet.cmd === 'subscribe') sent.set(packet.subscriptions.map(s => s.topic).join(','), packet.messageId!)
  })
  /** Subscribe and return the granted codes of the raw SUBACK (mqtt.js turns 128 into an error). */
  async function subscribe (topics: string[]): Promise<{ granted: number[], error?: Error }> {
    let error: Error | undefined
    await client.subscribeAsync(topics, { qos: 1 }).catch((e: Error) => { error = e })
    const packet = subacks.get(sent.get(topics.join(','))!)
    if (packet === undefined) throw new Error('no SUBACK')
    return { granted: packet.granted as number[], ...(error === undefined ? {} : { error }) }
  }

  const messages: Array<{ topic: string, payload: unknown }> = []
  const waiting: Array<() => void> = []
  client.on('message', (topic, payload) => {
    messages.push({ topic, payload: JSON.parse(payload.toString()) })
    waiting.shift()?.()
  })
  const nextMessage = () => new Promise<void>(resolve => { waiting.push(resolve) })

  const own = `configurations/${sensor.sensorId}`
  const retained = nextMessage()
  t.same((await subscribe([own])).granted, [1], 'its own configurations topic is granted')
  await retained
  t.same(messages, [{ topic: own, payload: { revision: 0, configuration: { interval: 10 } } }], 'and delivers the retained configuration')

  const forbidden = [
    `configurations/${other.sensorId}`,
    `measurements/${sensor.sensorId}`,
    `heartbeats/${other.sensorId}`,
    'configurations/+',
    '#',
    '+/+',
    '$SYS/#',
    '$devicelog/refused'
  ]
  for (const topic of forbidden) {
    const { granted, error } = await subscribe([topic])
    t.same(granted, [128], `${topic}: failure code 128 in the SUBACK`)
    t.match(error, { message: /Subscribe error/ }, `${topic}: mqtt.js reports the failure`)
  }
  // Several in one SUBSCRIBE: each filter gets its own verdict, in order. (Subscribing again to
  // its own topic delivers the retained configuration again, as MQTT says.)
  const again = nextMessage()
  t.same((await subscribe([`measurements/${other.sensorId}`, own, 'foo/#'])).granted, [128, 1, 128], 'one verdict per filter')
  await again

  const refused = (await rejections(service, sensor)).filter(r => r.kind === 'subscription')
  t.same(refused.map(r => r.topic), [...forbidden, `measurements/${other.sensorId}`, 'foo/#'], 'every refused subscription is recorded')
  for (const r of refused) t.match(r, { client_id: clientId, reason: 'foreign_topic', payload_excerpt: null })
  t.same(await rejections(service, other), [], 'on the subscriber\'s stream only')

  // Still connected: a publish works.
  t.notOk(closed, 'the connection stayed open')
  await send(client, `measurements/${sensor.sensorId}`, oneMeasurement({ after: 'subscriptions' }))
  t.same(await measurementValues(service, sensor), [{ after: 'subscriptions' }])

  // And the refused subscriptions deliver nothing: another sensor's measurement would match '#',
  // '+/+'. The service's next configuration arrives after anything that message could cause.
  const otherClient = await connectSensor(t, service, other)
  await send(otherClient, `measurements/${other.sensorId}`, oneMeasurement({ from: 'other' }))
  const revision = nextMessage()
  const put = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'renamed', network_identifier: sensor.networkId, configuration: { interval: 20 } }
  })
  t.equal(put.status, 200)
  await revision
  t.same(messages.map(m => m.topic), [own, own, own], 'only its own configurations ever arrived')
  t.same(messages.map(m => (m.payload as { revision: number }).revision), [0, 0, 1])
  t.notOk(closed)
})

t.test('MQTT over WebSocket at /mqtt authenticates and ingests like TCP', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const wsUrl = `${service.url.replace(/^http/, 'ws')}/mqtt`
  t.match(wsUrl, /^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/)

  const clientId = clientIdFor('ws-refused')
  const { connack, error } = await refusedConnect(wsUrl, { clientId, username: sensor.sensorId, password: 'not the password' })
  t.equal(connack.returnCode, 4, 'a wrong password is refused over WebSocket too')
  t.equal(error.code, 4)
  t.match(await rejections(service, sensor), [{ kind: 'connection', client_id: clientId, reason: 'bad_credentials', detail: 'wrong password' }])

  const wsClientId = clientIdFor('ws')
  const client = await connectMqtt(t, wsUrl, { clientId: wsClientId, username: sensor.sensorId, password: sensor.password })
  await send(client, `measurements/${sensor.sensorId}`, oneMeasurement({ over: 'websocket' }))
  t.same(await measurementValues(service, sensor), [{ over: 'websocket' }], 'the acknowledged measurement is readable')
  const events = await http(service, 'GET', `/api/v1/events?type=MeasurementsRecorded&stream=sensor-${sensor.sensorId}`, { token: sensor.token })
  t.equal(events.body.events.length, 1)
  t.equal(events.body.events[0].metadata.actor, `mqtt:${wsClientId}`)

  // Refusals work the same way over WebSocket.
  await send(client, `measurements/${sensor.sensorId}`, '{')
  t.match((await rejections(service, sensor)).at(-1), { kind: 'message', reason: 'invalid_json', client_id: wsClientId })
  const oversize = JSON.stringify(oneMeasurement({ pad: 'z'.repeat(300 * 1024) }))
  await send(client, `measurements/${sensor.sensorId}`, oversize)
  t.match((await rejections(service, sensor)).at(-1), { kind: 'message', reason: 'oversize', payload_bytes: Buffer.byteLength(oversize) })
  const configuration = new Promise<Buffer>(resolve => client.once('message', (_topic, payload) => resolve(payload)))
  await client.subscribeAsync(`configurations/${sensor.sensorId}`, { qos: 1 })
  t.same(JSON.parse((await configuration).toString()), { revision: 0, configuration: {} }, 'and so does the retained configuration')
  await send(client, `measurements/${sensor.sensorId}`, oneMeasurement({ still: 'connected' }))
  t.same(await measurementValues(service, sensor), [{ over: 'websocket' }, { still: 'connected' }])
})

t.test('a publish to $SYS is refused and recorded, without disconnecting', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const victim = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
  const clientId = clientIdFor('sys')
  const client = await connectSensor(t, service, sensor, { clientId })
  const victimClientId = clientIdFor('victim')
  const victimClient = await connectSensor(t, service, victim, { clientId: victimClientId })
  const closed = { client: false, victim: false }
  client.on('close', () => { closed.client = true })
  victimClient.on('close', () => { closed.victim = true })

  await send(client, '$SYS/x/heartbeat', 'x', 0)
  await send(client, '$SYS/devicelog/anything', 'hello') // (its PUBACK: the QoS 0 one before it was handled)
  // Aedes closes the client named in $SYS/<another broker>/new/clients: a takeover, were it let through.
  const takeover = `$SYS/${randomUUID()}/new/clients`
  await send(client, takeover, victimClientId)

  // (an HTTP round trip: anything the messages could have set off has happened by now)
  const refused = await rejections(service, sensor)
  t.same(refused.map(r => [r.kind, r.topic, r.reason]), [
    ['message', '$SYS/x/heartbeat', 'reserved_topic'],
    ['message', '$SYS/devicelog/anything', 'reserved_topic'],
    ['message', takeover, 'reserved_topic']
  ])
  t.match(refused[1], { client_id: clientId, payload_excerpt: 'hello', payload_bytes: 5 })
  t.match(refused[2], { payload_excerpt: victimClientId })

  t.notOk(closed.client, 'the publisher stays connected')
  t.notOk(closed.victim, 'the client named in the forged $SYS message was not closed')
  if (closed.client || closed.victim) return // (publishing on a closed client would only wait)
  await send(client, `measurements/${sensor.sensorId}`, oneMeasurement({ after: '$SYS' }))
  await send(victimClient, `measurements/${victim.sensorId}`, oneMeasurement({ victim: 'fine' }))
  t.same(await measurementValues(service, sensor), [{ after: '$SYS' }])
  t.same(await measurementValues(service, victim), [{ victim: 'fine' }])
  t.notOk(closed.client || closed.victim)
})

t.test('a last will is authorized like any other publish', async t => {
  const service = await startService(t)
  const a = await createSensor(service)
  const b = await createSensor(service, { token: a.token, networkId: a.networkId, configuration: { interval: 10 } })
  /** Resolves with the first committed event that matches. */
  const committed = (match: (e: RecordedEvent) => boolean) => new Promise<RecordedEvent>(resolve => {
    const unsubscribe = service.app.store.subscribe(events => {
      const found = events.find(match)
      if (found === undefined) return
      unsubscribe()
      resolve(found)
    })
  })

  const clientB = await connectSensor(t, service, b)
  const received: unknown[] = []
  const waiting: Array<() => void> = []
  clientB.on('message', (_topic, payload) => {
    received.push(JSON.parse(payload.toString()))
    waiting.shift()?.()
  })
  const nextMessage = () => new Promise<void>(resolve => { waiting.push(resolve) })
  const retained = nextMessage()
  await clientB.subscribeAsync(`configurations/${b.sensorId}`, { qos: 1 })
  await retained

  // A will on another sensor's configurations topic, retained: refused and recorded when A drops.
  const forgedClientId = clientIdFor('forged-will')
  const forged = await connectSensor(t, service, a, {
    clientId: forgedClientId,
    will: { topic: `configurations/${b.sensorId}`, payload: Buffer.from(JSON.stringify({ revision: 5, configuration: { interval: 0 } })), qos: 1, retain: true }
  })
  const rejected = committed(e => e.type === 'MessageRejected')
  await forged.endAsync(true) // no DISCONNECT: the broker publishes the will
  const rejection = await rejected
  t.equal(rejection.stream_id, `sensor-${a.sensorId}`)
  t.match(rejection.data, { topic: `configurations/${b.sensorId}`, client_id: forgedClientId, reason: 'unknown_topic' })
  t.match(await rejections(service, a), [{ kind: 'message', topic: `configurations/${b.sensorId}`, client_id: forgedClientId }])

  // A will on its own measurements topic is a measurement like any other.
  const honest = await connectSensor(t, service, a, {
    will: { topic: `measurements/${a.sensorId}`, payload: Buffer.from(JSON.stringify(oneMeasurement({ last: 'will' }))), qos: 1, retain: false }
  })
  const recorded = committed(e => e.type === 'MeasurementsRecorded')
  await honest.endAsync(true)
  await recorded
  t.same(await measurementValues(service, a), [{ last: 'will' }])

  // B never saw the forged configuration: only the service's, before and after.
  const revision = nextMessage()
  const put = await http(service, 'PUT', `/sensors/${b.sensorId}`, {
    token: b.token, body: { sensor_name: 'b', network_identifier: b.networkId, configuration: { interval: 20 } }
  })
  t.equal(put.status, 200)
  await revision
  t.same(received, [{ revision: 0, configuration: { interval: 10 } }, { revision: 1, configuration: { interval: 20 } }])
})
