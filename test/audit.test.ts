import { randomUUID } from 'node:crypto'
import t from 'tap'
import { connectMqtt, connectSensor, http, publish, startService, type Service, type Teardown } from './helpers/service.ts'

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

interface AuditEvent {
  position: number, stream_id: string, stream_version: number, type: string, schema_version: number,
  recorded_at: string, data: any, metadata: any, hash: string
}
interface Page { events: AuditEvent[], next_after: number }

async function feed (service: Service, token: string, query = ''): Promise<Page> {
  const response = await http<Page>(service, 'GET', `/api/v1/events${query}`, { token })
  if (response.status !== 200) throw new Error(`GET /api/v1/events${query}: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body
}

/** Two users, each with a network and a sensor with some traffic; plus a refused connection nobody owns. */
async function twoTenants (t: Teardown, service: Service) {
  const tenant = async (name: string) => {
    const user = await http(service, 'POST', '/users', { body: { username: unique(name), password: 'correct horse' } })
    const token = user.body.access_token as string
    const userId = user.body.user_identifier as string
    const network = await http(service, 'POST', '/networks', { token, body: { network_name: `${name}'s` } })
    const networkId = network.body.network_identifier as string
    const sensor = await http(service, 'POST', '/sensors', { token, body: { sensor_name: 'probe', network_identifier: networkId, configuration: {} } })
    const sensorId = sensor.body.sensor_identifier as string
    return { token, userId, networkId, sensorId, password: sensor.body.mqtt.password as string }
  }
  const alice = await tenant('alice')
  const bob = await tenant('bob')
  // interleave their activity in the log
  for (const [who, i] of [[alice, 1], [bob, 1], [alice, 2], [bob, 2]] as const) {
    await http(service, 'PUT', `/sensors/${who.sensorId}`, { token: who.token, body: { sensor_name: 'probe', network_identifier: who.networkId, configuration: { i } } })
    const client = await connectSensor(t, service, { ...who, userId: who.userId }, { clientId: unique('client') })
    await publish(client, `measurements/${who.sensorId}`, { measurements: [{ revision: i, timestamp: 1_767_225_600 + i, value: { i } }] })
    await publish(client, `log-messages/${who.sensorId}`, 'not json')
  }
  const refused = await connectMqtt(t, service.mqttUrl, { username: randomUUID(), password: 'nope' }).then(() => undefined, (error: Error) => error)
  if (refused === undefined) throw new Error('an unknown device connected')
  return { alice, bob }
}

t.test('GET /api/v1/events shows only the streams the caller may see', async t => {
  const service = await startService(t)
  const { alice, bob } = await twoTenants(t, service)
  const all = service.app.store.read()
  t.ok(all.some(e => e.stream_id === 'broker'), 'the log holds events of a stream nobody owns')

  for (const [who, other] of [[alice, bob], [bob, alice]] as const) {
    const page = await feed(service, who.token, '?limit=1000')
    const visible = new Set([`user-${who.userId}`, `network-${who.networkId}`, `sensor-${who.sensorId}`])
    const expected = all.filter(e => visible.has(e.stream_id))
    t.strictSame(page.events.map(e => e.position), expected.map(e => e.position), 'exactly the own user stream and the streams of own networks')
    t.equal(page.next_after, expected.at(-1)!.position)
    t.notOk(page.events.some(e => [`user-${other.userId}`, `network-${other.networkId}`, `sensor-${other.sensorId}`, 'broker'].includes(e.stream_id)), "nothing of the other user's")
    t.strictSame([...new Set(page.events.map(e => e.type))].sort(), [
      'AccessTokenIssued', 'DeviceConnected', 'MeasurementsRecorded', 'MessageRejected', 'NetworkCreated', 'NetworkMemberAdded',
      'SensorConfigurationRevised', 'SensorRegistered', 'UserRegistered'
    ])
    // each event as the log holds it
    const stored = new Map(all.map(e => [e.position, e]))
    for (const event of page.events) {
      const original = stored.get(event.position)!
      t.strictSame(Object.keys(event).sort(), ['data', 'hash', 'metadata', 'position', 'recorded_at', 'schema_version', 'stream_id', 'stream_version', 'type'])
      t.match(event, {
        stream_id: original.stream_id, stream_version: original.stream_version, type: original.type,
        schema_version: original.schema_version, recorded_at: original.recorded_at, hash: original.hash
      })
      t.match(event.hash, /^[0-9a-f]{64}$/)
      t.strictSame(event.metadata, original.metadata)
      if (event.type !== 'UserRegistered') t.strictSame(event.data, original.data)
    }
    const positions = page.events.map(e => e.position)
    t.strictSame(positions, [...positions].sort((a, b) => a - b), 'in position order')
  }
})

t.test('UserRegistered is shown with its password hash redacted', async t => {
  const service = await startService(t)
  const response = await http(service, 'POST', '/users', { body: { username: unique('carol'), password: 'carol password' } })
  const { access_token: token, user_identifier: userId } = response.body
  const page = await feed(service, token, '?type=UserRegistered')
  t.equal(page.events.length, 1)
  t.strictSame(page.events[0]!.data, { user_identifier: userId, username: page.events[0]!.data.username, password_hash: '[redacted]' })
  const stored = service.app.store.read({ type: 'UserRegistered' })
  t.match((stored[0]!.data as { password_hash: string }).password_hash, /^scrypt\$/, 'the log itself keeps the hash')
  t.notOk(JSON.stringify(await feed(service, token, '?limit=1000')).includes('scrypt$'), 'no hash anywhere in the feed')
})

t.test('keyset paging by position', async t => {
  const service = await startService(t)
  const { alice } = await twoTenants(t, service)
  const everything = (await feed(service, alice.token, '?limit=1000')).events
  t.ok(everything.length > 10)

  const paged: AuditEvent[] = []
  let after = 0
  let pages = 0
  for (;;) {
    const page = await feed(service, alice.token, `?after=${after}&limit=3`)
    t.ok(page.events.length <= 3)
    if (page.events.length === 0) {
      t.equal(page.next_after, after, 'an empty page keeps the cursor')
      break
    }
    t.equal(page.next_after, page.events.at(-1)!.position, 'next_after is the last position of the page')
    t.ok(page.events.every(e => e.position > after), 'strictly after the cursor')
    paged.push(...page.events)
    after = page.next_after
    pages++
  }
  t.equal(pages, Math.ceil(everything.length / 3))
  t.strictSame(paged, everything, 'the pages together are the whole feed, once each')

  const middle = everything[4]!.position
  t.strictSame((await feed(service, alice.token, `?after=${middle}&limit=2`)).events, everything.slice(5, 7))
  const beyond = await feed(service, alice.token, `?after=${service.app.store.headPosition + 100}`)
  t.strictSame(beyond, { events: [], next_after: service.app.store.headPosition + 100 })
})

t.test('the default page is 100 events', async t => {
  const service = await startService(t)
  const response = await http(service, 'POST', '/users', { body: { username: unique('dave'), password: 'dave password' } })
  const token = response.body.access_token as string
  const network = await http(service, 'POST', '/networks', { token, body: { network_name: 'n' } })
  const sensor = await http(service, 'POST', '/sensors', { token, body: { sensor_name: 's', network_identifier: network.body.network_identifier, configuration: {} } })
  const sensorId = sensor.body.sensor_identifier as string
  const client = await connectSensor(t, service, { token, userId: '', networkId: network.body.network_identifier, sensorId, password: sensor.body.mqtt.password })
  await Promise.all(Array.from({ length: 120 }, (_, i) =>
    publish(client, `measurements/${sensorId}`, { measurements: [{ revision: 0, timestamp: 1_767_225_600 + i, value: { i } }] })))
  const page = await feed(service, token)
  t.equal(page.events.length, 100)
  t.equal(page.next_after, page.events[99]!.position)
  const rest = await feed(service, token, `?after=${page.next_after}`)
  t.equal(page.events.length + rest.events.length, 2 + 2 + 1 + 1 + 120, 'registration, network, sensor, its connection, 120 messages')
  t.equal((await feed(service, token, '?limit=1000')).events.length, 126)
})

t.test('stream= and type= filters', async t => {
  const service = await startService(t)
  const { alice, bob } = await twoTenants(t, service)
  const everything = (await feed(service, alice.token, '?limit=1000')).events

  const sensorStream = await feed(service, alice.token, `?stream=sensor-${alice.sensorId}&limit=1000`)
  t.strictSame(sensorStream.events, everything.filter(e => e.stream_id === `sensor-${alice.sensorId}`))
  t.strictSame(sensorStream.events.map(e => e.stream_version), sensorStream.events.map((_, i) => i), 'the whole stream, version by version')
  t.strictSame(sensorStream.events.map(e => e.type), [
    'SensorRegistered', 'SensorConfigurationRevised', 'DeviceConnected', 'MeasurementsRecorded', 'MessageRejected',
    'SensorConfigurationRevised', 'DeviceConnected', 'MeasurementsRecorded', 'MessageRejected'
  ])

  const measurements = await feed(service, alice.token, '?type=MeasurementsRecorded')
  t.equal(measurements.events.length, 2)
  t.ok(measurements.events.every(e => e.type === 'MeasurementsRecorded' && e.data.sensor_identifier === alice.sensorId), "only alice's")
  const both = await feed(service, alice.token, `?stream=network-${alice.networkId}&type=NetworkMemberAdded`)
  t.strictSame(both.events.map(e => [e.stream_id, e.type, e.data.user_identifier]), [[`network-${alice.networkId}`, 'NetworkMemberAdded', alice.userId]])
  t.strictSame((await feed(service, alice.token, `?stream=user-${alice.userId}&type=MeasurementsRecorded`)).events, [], 'both filters apply')

  for (const stream of [`user-${bob.userId}`, `network-${bob.networkId}`, `sensor-${bob.sensorId}`, 'broker', 'no-such-stream']) {
    const page = await feed(service, alice.token, `?stream=${stream}`)
    t.strictSame(page, { events: [], next_after: 0 }, `${stream.split('-')[0]}: another's stream is empty, as an unknown one`)
  }
  t.strictSame((await feed(service, alice.token, '?type=NoSuchType')).events, [])
  t.equal((await feed(service, bob.token, `?stream=sensor-${bob.sensorId}`)).events.length, 9, 'while its owner sees it')
})

t.test('401 without a valid token, 400 for bad parameters', async t => {
  const service = await startService(t)
  const response = await http(service, 'POST', '/users', { body: { username: unique('erin'), password: 'erin password' } })
  const token = response.body.access_token as string
  for (const [what, headers] of [['no token', {}], ['a bad token', { authorization: `Bearer ${'a'.repeat(64)}` }]] as const) {
    const denied = await fetch(`${service.url}/api/v1/events`, { headers })
    t.equal(denied.status, 401, what)
    t.type(((await denied.json()) as { detail: unknown }).detail, 'string')
  }
  const viaQuery = await http(service, 'GET', `/api/v1/events?access_token=${token}`)
  t.equal(viaQuery.status, 200, '?access_token= works too')
  t.equal(viaQuery.body.events.length, 2)
  for (const query of ['limit=0', 'limit=1001', 'limit=abc', 'limit=1.5', 'after=-1', 'after=abc', 'after=2.5']) {
    const bad = await http(service, 'GET', `/api/v1/events?${query}`, { token })
    t.equal(bad.status, 400, query)
    t.type(bad.body.detail, 'string')
  }
  t.equal((await http(service, 'GET', '/api/v1/events?limit=1000', { token })).status, 200, 'limit=1000 is allowed')
  t.equal((await http(service, 'GET', '/api/v1/events?limit=1', { token })).body.events.length, 1)
})
