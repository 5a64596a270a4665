import { once } from 'node:events'
import type { WebSocket as ServerSocket } from 'ws'
import { AUDIT_PAGE } from '../src/audit/live.ts'
import { connectSensor, createSensor, http, publish, startService, type SensorFixture, type Service } from './helpers/service.ts'
import { committed } from './helpers/sockets.ts'
import { openWs, upgradeStatus, type TrackedSocket } from './helpers/websocket.ts'
import { testWithin } from './helpers/within.ts'

// /api/v1/events/ws: the audit feed pushed as events commit, with GET /api/v1/events' visibility,
// filters and redaction, end to end (real HTTP upgrades, real `ws` clients, real MQTT devices).

const test = testWithin(30_000)

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

const feedPath = (token: string, query = '') => `/api/v1/events/ws?access_token=${encodeURIComponent(token)}${query === '' ? '' : `&${query}`}`

/** What GET /api/v1/events returns after a position (the live feed must send the very same). */
async function feed (service: Service, token: string, query: string): Promise<any[]> {
  const response = await http(service, 'GET', `/api/v1/events?limit=1000&${query}`, { token })
  if (response.status !== 200) throw new Error(`GET /api/v1/events?${query}: ${response.status}`)
  return response.body.events
}

/** The next `count` messages of a socket. */
async function take (socket: TrackedSocket, count: number): Promise<any[]> {
  const messages = []
  for (let i = 0; i < count; i++) messages.push(await socket.next())
  return messages
}

/** A user with a network of their own (no device). */
async function stranger (service: Service) {
  const username = unique('stranger')
  const user = await http(service, 'POST', '/users', { body: { username, password: 'correct horse' } })
  await http(service, 'POST', '/networks', { token: user.body.access_token, body: { network_name: 'elsewhere' } })
  return { username, token: user.body.access_token as string, userId: user.body.user_identifier as string }
}

/** A new revision of the sensor's configuration (SensorConfigurationRevised); its position. */
async function revise (service: Service, sensor: SensorFixture, configuration: Record<string, unknown>): Promise<number> {
  const revised = committed(service, e => e.type === 'SensorConfigurationRevised' && e.stream_id === `sensor-${sensor.sensorId}`)
  const response = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: `probe ${sensor.sensorId}`, network_identifier: sensor.networkId, configuration }
  })
  if (response.status !== 200) throw new Error(`PUT /sensors/${sensor.sensorId}: ${response.status} ${JSON.stringify(response.body)}`)
  return (await revised).position
}

/** The service's end of its most recent WebSocket: its 'close' comes after the feed's own close handler. */
const serverEnd = (service: Service): ServerSocket => [...service.app.websocketServer.clients].at(-1)!
const commitListeners = (service: Service): number => (service.app.store as any).listeners.size

test('a member gets each new event of their networks as it commits; a stranger gets none of it', async t => {
  const service = await startService(t)
  const alice = await createSensor(service)
  const carol = await stranger(service)
  const member = await openWs(t, service, feedPath(alice.token))
  const outsider = await openWs(t, service, '/api/v1/events/ws', { headers: { authorization: `Bearer ${carol.token}` } })

  // A change through the API, then a device's own traffic over MQTT.
  const revision = await revise(service, alice, { interval: 60 })
  const client = await connectSensor(t, service, alice)
  await publish(client, `measurements/${alice.sensorId}`, { measurements: [{ revision: 1, timestamp: 1_767_225_600, value: { t: 21.5 } }] })
  const pushed = await take(member, 3)
  t.strictSame(pushed.map(m => m.type), ['event', 'event', 'event'])
  t.strictSame(pushed.map(m => m.data.type), ['SensorConfigurationRevised', 'DeviceConnected', 'MeasurementsRecorded'], 'in commit order')
  t.equal(pushed[0].data.position, revision)
  t.ok(pushed.every(m => m.data.stream_id === `sensor-${alice.sensorId}`))
  t.strictSame(pushed.map(m => m.data), await feed(service, alice.token, `after=${revision - 1}`), 'each event exactly as GET /api/v1/events shows it')

  // A network created after the socket opened is followed at once.
  const created = await http(service, 'POST', '/networks', { token: alice.token, body: { network_name: 'annex' } })
  const annex = await take(member, 2)
  t.strictSame(annex.map(m => [m.data.type, m.data.stream_id]), [
    ['NetworkCreated', `network-${created.body.network_identifier}`], ['NetworkMemberAdded', `network-${created.body.network_identifier}`]
  ])

  // The stranger was sent none of it: the first thing they get is an event of their own.
  t.strictSame(outsider.unread(), [], 'nothing so far')
  const login = await http(service, 'POST', '/authentication', { body: { username: carol.username, password: 'correct horse' } })
  t.equal(login.status, 200)
  const own = await outsider.next()
  t.match(own, { type: 'event', data: { type: 'AccessTokenIssued', stream_id: `user-${carol.userId}` } }, "the stranger's first message is their own login")
  t.ok(own.data.position > annex[1].data.position, 'which came after every event of the member')

  // ...and the member was not sent the stranger's login: their next message is their own.
  await publish(client, `measurements/${alice.sensorId}`, { measurements: [{ revision: 1, timestamp: 1_767_225_601, value: { t: 21.6 } }] })
  t.match(await member.next(), { type: 'event', data: { type: 'MeasurementsRecorded', stream_id: `sensor-${alice.sensorId}` } })
  t.strictSame([...member.unread(), ...outsider.unread()], [])
})

test('stream and type filter the feed as they do GET /api/v1/events', async t => {
  const service = await startService(t)
  const a = await createSensor(service)
  const b = await createSensor(service, { token: a.token, networkId: a.networkId })
  const byStream = await openWs(t, service, feedPath(a.token, `stream=sensor-${a.sensorId}`))
  const byType = await openWs(t, service, feedPath(a.token, 'type=MeasurementsRecorded'))
  const both = await openWs(t, service, feedPath(a.token, `stream=sensor-${a.sensorId}&type=MeasurementsRecorded`))
  const start = service.app.store.headPosition

  const measure = async (sensor: SensorFixture, i: number) => {
    const client = await connectSensor(t, service, sensor, { clientId: unique('client') })
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1_767_225_600 + i, value: { i } }] })
  }
  await revise(service, b, { b: 1 })
  await measure(b, 1)
  await revise(service, a, { a: 1 })
  await measure(a, 2)

  const streamed = await take(byStream, 3)
  t.strictSame(streamed.map(m => [m.data.type, m.data.stream_id]), [
    ['SensorConfigurationRevised', `sensor-${a.sensorId}`], ['DeviceConnected', `sensor-${a.sensorId}`], ['MeasurementsRecorded', `sensor-${a.sensorId}`]
  ], "only the stream's events")
  t.strictSame(streamed.map(m => m.data), await feed(service, a.token, `after=${start}&stream=sensor-${a.sensorId}`))
  const typed = await take(byType, 2)
  t.strictSame(typed.map(m => [m.data.type, m.data.stream_id]), [['MeasurementsRecorded', `sensor-${b.sensorId}`], ['MeasurementsRecorded', `sensor-${a.sensorId}`]], 'only the type, of every stream')
  t.strictSame(typed.map(m => m.data), await feed(service, a.token, `after=${start}&type=MeasurementsRecorded`))
  t.match(await both.next(), { data: { type: 'MeasurementsRecorded', stream_id: `sensor-${a.sensorId}` } }, 'both filters at once')
  // Each got its last message after every other commit: anything unmatched would have come before it.
  t.strictSame([...byStream.unread(), ...byType.unread(), ...both.unread()], [], 'nothing else')

  // A stream the caller may not see stays silent even when named.
  const carol = await stranger(service)
  const peeking = await openWs(t, service, feedPath(carol.token, `stream=sensor-${a.sensorId}`))
  const own = await openWs(t, service, feedPath(carol.token, `stream=user-${carol.userId}`))
  await revise(service, a, { a: 2 })
  t.match(await byStream.next(), { data: { type: 'SensorConfigurationRevised' } })
  await http(service, 'POST', '/authentication', { body: { username: carol.username, password: 'correct horse' } })
  t.match(await own.next(), { data: { type: 'AccessTokenIssued' } })
  t.strictSame(peeking.unread(), [], "another user's stream, by name: nothing")
})

test('after replays what a reconnecting client missed, then goes on live', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const first = await openWs(t, service, feedPath(sensor.token))
  await revise(service, sensor, { n: 1 })
  const seen = (await first.next()).data.position as number
  first.ws.close()
  await first.closed

  // While it is away: an API change, a device's traffic, and another user's activity it must not get.
  await revise(service, sensor, { n: 2 })
  const client = await connectSensor(t, service, sensor)
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 2, timestamp: 1_767_225_600, value: { n: 2 } }] })
  await stranger(service)
  const missed = await feed(service, sensor.token, `after=${seen}`)
  t.strictSame(missed.map(e => e.type), ['SensorConfigurationRevised', 'DeviceConnected', 'MeasurementsRecorded'])

  const again = await openWs(t, service, feedPath(sensor.token, `after=${seen}`))
  t.strictSame((await take(again, missed.length)).map(m => m.data), missed, 'the gap, in order, as the feed has it')
  const recorded = committed(service, e => e.type === 'MeasurementsRecorded')
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 2, timestamp: 1_767_225_601, value: { n: 3 } }] })
  t.match(await again.next(), { type: 'event', data: { type: 'MeasurementsRecorded', position: (await recorded).position } }, 'then each new event, once')
  t.strictSame(again.unread(), [])

  // after with a filter replays only what the filter keeps.
  const typed = await openWs(t, service, feedPath(sensor.token, 'after=0&type=SensorConfigurationRevised'))
  const revisions = await take(typed, 2)
  t.strictSame(revisions.map(m => m.data.data.configuration), [{ n: 1 }, { n: 2 }])
  t.strictSame(revisions.map(m => m.data), await feed(service, sensor.token, 'type=SensorConfigurationRevised'))
})

test('more than a page at once: a long gap and a large commit both arrive whole, in order', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const start = service.app.store.headPosition
  const watching = await openWs(t, service, feedPath(sensor.token))
  const count = AUDIT_PAGE + 500
  const bulk = Array.from({ length: count }, (_, i) => ({
    type: 'MeasurementsRecorded' as const,
    data: { sensor_identifier: sensor.sensorId, measurements: [{ revision: 0, timestamp: 1_767_225_600 + i, value: { i } }] }
  }))
  await service.app.store.append(`sensor-${sensor.sensorId}`, bulk, { metadata: { actor: `sensor:${sensor.sensorId}`, correlation_id: 'bulk' } })
  const expected = Array.from({ length: count }, (_, i) => start + 1 + i)
  t.strictSame((await take(watching, count)).map(m => m.data.position), expected, 'one commit of more than a page, live')
  const replaying = await openWs(t, service, feedPath(sensor.token, `after=${start}`))
  const replayed = await take(replaying, count)
  t.strictSame(replayed.map(m => m.data.position), expected, 'a gap of more than a page, replayed')
  t.strictSame(replayed.at(-1).data.data.measurements[0].value, { i: count - 1 })
  const position = await revise(service, sensor, { after: 'bulk' })
  for (const socket of [watching, replaying]) t.match(await socket.next(), { data: { type: 'SensorConfigurationRevised', position } }, 'then live')
})

test('UserRegistered is pushed with its password hash redacted', async t => {
  const service = await startService(t)
  const carol = await stranger(service)
  const socket = await openWs(t, service, feedPath(carol.token, 'after=0'))
  const replayed = await take(socket, (await feed(service, carol.token, 'after=0')).length)
  const registered = replayed.find(m => m.data.type === 'UserRegistered')
  t.strictSame(registered.data.data, { user_identifier: carol.userId, username: carol.username, password_hash: '[redacted]' })
  t.notOk(JSON.stringify(replayed).includes('scrypt$'), 'no hash anywhere in the feed')
  t.match((service.app.store.read({ type: 'UserRegistered' })[0]!.data as { password_hash: string }).password_hash, /^scrypt\$/, 'the log itself keeps it')
})

test('refused before the upgrade: 401 without a valid token, 400 for a bad query', async t => {
  const service = await startService(t)
  const carol = await stranger(service)
  t.equal(await upgradeStatus(service, '/api/v1/events/ws'), 401, 'no token')
  t.equal(await upgradeStatus(service, '/api/v1/events/ws?access_token=not-a-token'), 401, 'a token that is not one')
  t.equal(await upgradeStatus(service, feedPath(carol.token, 'after=-1')), 400, 'a negative position')
  t.equal(await upgradeStatus(service, feedPath(carol.token, 'after=soon')), 400, 'not a position')
  await http(service, 'DELETE', '/authentication', { token: carol.token })
  t.equal(await upgradeStatus(service, feedPath(carol.token)), 401, 'a revoked token')
})

test('the feed listens to the log only while a client is connected', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const idle = commitListeners(service)
  const one = await openWs(t, service, feedPath(sensor.token))
  const oneEnd = serverEnd(service)
  t.equal(commitListeners(service), idle + 1, 'one listener for the first client')
  const two = await openWs(t, service, feedPath(sensor.token))
  const twoEnd = serverEnd(service)
  t.equal(commitListeners(service), idle + 1, 'still one for the second')

  let closed = once(oneEnd, 'close')
  one.ws.close()
  await closed
  t.equal(commitListeners(service), idle + 1, 'one client left: still listening')
  await revise(service, sensor, { n: 1 })
  t.match(await two.next(), { data: { type: 'SensorConfigurationRevised' } }, 'and the other still gets events')
  closed = once(twoEnd, 'close')
  two.ws.close()
  await closed
  t.equal(commitListeners(service), idle, 'nobody left: not listening')
  t.ok(await revise(service, sensor, { n: 2 }) > 0, 'commits go on without it')
})
