// Several nodes on one PostgreSQL log (DATABASE_URL): each node's SQLite file is its replica,
// folded from the one chain; what one node records, the others serve, and a name registered at
// once on two nodes is taken once. Real services, a throwaway PostgreSQL cluster, real MQTT.
import { chmodSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import t from 'tap'
import { freePort, startPostgres } from '../src/cli/engines.ts'
import { PostgresLog } from '../src/store/postgres/log.ts'
import { systemClock, type ManualClock } from '../src/clock.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { withPostgres } from './helpers/postgres.ts'
import { withRedis } from './helpers/redis.ts'
import { committed, createSocket, startPlug } from './helpers/sockets.ts'
import { spawnServer } from './helpers/process.ts'
import { connectMqtt, connectSensor, createSensor, http, publish, startService, tempDir, type Service } from './helpers/service.ts'

// Ten scenarios of several real nodes each (PostgreSQL, Redis, kill -9, leases running out): 75 s
// alone on this project's 2-core machines, and past tap's 120 s per file beside another test file
// on a slow day (a fresh-clone CI run, 2026-12-07).
t.setTimeout(300_000)

/** Resolves once the node's replica has folded the log up to `position` (its listeners told). */
function reached (service: Service, position: number): Promise<void> {
  return new Promise(resolve => {
    if (service.app.store.headPosition >= position) return resolve()
    const stop = service.app.store.subscribe(() => {
      if (service.app.store.headPosition < position) return
      stop()
      resolve()
    })
  })
}

t.test('two nodes on one PostgreSQL log: one chain, each serves what the other recorded, a name is taken once', async t => {
  const url = await withPostgres(t)
  const env = { DATABASE_URL: url }
  const a = await startService(t, { env })
  const b = await startService(t, { env })

  // Registered on node A: node B learns it (NOTIFY, then its replica folds it) and lets the sensor in.
  const sensor = await createSensor(a, { configuration: { interval: 5 } })
  await reached(b, a.app.store.headPosition)
  const client = await connectSensor(t, b, sensor)
  t.ok(client.connected, "node B knows the sensor node A registered: its credentials came through the log")

  // Measured through node B: node A serves it, and its live stream of the network shows it.
  const stream = await fetch(`${a.url}/streams/${sensor.networkId}`, { headers: { authorization: `Bearer ${sensor.token}` } })
  t.equal(stream.status, 200)
  const live = (async () => {
    let text = ''
    for await (const chunk of stream.body!.pipeThrough(new TextDecoderStream())) {
      text += chunk
      const event = /event: measurements\ndata: (.*)\n/.exec(text)
      if (event !== null) return JSON.parse(event[1]!)
    }
  })()
  const onA = new Promise<void>(resolve => {
    const stop = a.app.store.subscribe(events => {
      if (events.some(e => e.type === 'MeasurementsRecorded')) { stop(); resolve() }
    })
  })
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1_767_225_600, value: { celsius: 21.5 } }] })
  await onA
  const measurements = await http(a, 'GET', `/sensors/${sensor.sensorId}/measurements`, { token: sensor.token })
  t.equal(measurements.status, 200)
  t.same(measurements.body, [{ revision: 0, creation_timestamp: 1_767_225_600, measurement: { celsius: 21.5 } }], 'node A serves the measurement node B recorded')
  t.match(await live, { sensor_identifier: sensor.sensorId, measurements: [{ creation_timestamp: 1_767_225_600, measurement: { celsius: 21.5 } }] },
    "and node A's /streams/<network> sent it as it committed on node B")
  await client.endAsync()

  // The same user name on both nodes at once: one account.
  const body = { username: 'same-name', password: 'correct horse' }
  const [onNodeA, onNodeB] = await Promise.all([http(a, 'POST', '/users', { body }), http(b, 'POST', '/users', { body })])
  t.same([onNodeA.status, onNodeB.status].sort(), [201, 409], 'one node registers it, the other answers 409')

  // Appends from both at once: one chain, no gaps.
  await Promise.all(Array.from({ length: 10 }, (_, i) => http(i % 2 === 0 ? a : b, 'POST', '/networks', { token: sensor.token, body: { network_name: `n${i}` } })))
  const log = await PostgresLog.open({ url, clock: systemClock })
  t.teardown(() => log.close())
  const verified = await log.verify()
  t.match(verified, { ok: true }, 'one hash chain')
  await Promise.all([reached(a, verified.ok ? verified.count : 0), reached(b, verified.ok ? verified.count : 0)])
  t.equal(a.app.store.headPosition, b.app.store.headPosition, 'both replicas at the head')
  const networks = (service: Service) => http(service, 'GET', '/networks', { token: sensor.token }).then(r => r.body)
  t.same(await networks(a), await networks(b), 'both nodes serve the same networks')
})

t.test('read your writes across nodes: what one node acknowledged, another serves at once', async t => {
  const url = await withPostgres(t)
  const env = { DATABASE_URL: url }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  // No waiting for B's replica: a balancer sends the next request wherever it likes.
  for (let i = 0; i < 10; i++) {
    const user = await http(a, 'POST', '/users', { body: { username: `at-once-${i}`, password: 'correct horse' } })
    const token = user.body.access_token as string
    const network = await http(b, 'POST', '/networks', { token, body: { network_name: 'home' } })
    t.equal(network.status, 201, 'a token node A issued is good on node B at once')
    const sensor = await http(a, 'POST', '/sensors', { token, body: { sensor_name: 'porch', network_identifier: network.body.network_identifier, configuration: {} } })
    t.equal(sensor.status, 201, 'a network node B made is there on node A at once')
    const client = await connectMqtt(t, b.mqttUrl, { username: sensor.body.sensor_identifier, password: sensor.body.mqtt.password })
    t.ok(client.connected, 'a sensor node A registered connects to node B at once')
    await client.endAsync()
  }
})

t.test('a node restarted on its replica catches up with what the others recorded meanwhile', async t => {
  const url = await withPostgres(t)
  const env = { DATABASE_URL: url }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  const sensor = await createSensor(a)
  await connectSensor(t, a, sensor)
  await reached(b, a.app.store.headPosition)
  const dir = b.dir
  await b.close()
  const network = await http(a, 'POST', '/networks', { token: sensor.token, body: { network_name: 'while B was down' } })
  t.equal(network.status, 201)
  const again = await startService(t, { env, dir })
  t.equal(again.app.store.headPosition, a.app.store.headPosition, 'caught up at start')
  const listed = await http(again, 'GET', '/networks', { token: sensor.token })
  t.ok(listed.body.some((n: { network_name: string }) => n.network_name === 'while B was down'), 'and serves it')
  const presence = again.app.store.read({ stream: `sensor-${sensor.sensorId}` }).map(e => e.type).filter(type => type.startsWith('Device'))
  t.same(presence, ['DeviceConnected'], "node B's start does not end the sensor connected to node A")
})

t.test('a node outlives PostgreSQL going away: its writes answer 503 meanwhile, and are recorded again once it is back', async t => {
  // A cluster kept in a folder of its own, started again on the same port, as a restarted server would be.
  const base = tempDir(t)
  chmodSync(base, 0o755) // (as root, PostgreSQL runs as its own user and must reach the folder)
  const port = await freePort()
  let postgres = await startPostgres({ dir: join(base, 'postgres'), port })
  t.teardown(() => postgres.stop())
  const a = await startService(t, { env: { DATABASE_URL: postgres.url } })
  const signUp = (username: string) => http(a, 'POST', '/users', { body: { username, password: 'correct horse' } })
  t.equal((await signUp('before')).status, 201)

  await postgres.stop()
  const during = await signUp('during')
  t.equal(during.status, 503, 'refused, not acknowledged, while PostgreSQL is away')
  t.match(during.body, { detail: /PostgreSQL/ })
  t.match((await http(a, 'GET', '/status')).body, { store: { status: 'degraded' } }, 'and the node says so')

  postgres = await startPostgres({ dir: join(base, 'postgres'), port })
  t.equal((await signUp('after')).status, 201, 'the same node records again once it is back')
  t.match((await http(a, 'GET', '/status')).body, { store: { status: 'ok' } })
  const log = await PostgresLog.open({ url: postgres.url, clock: systemClock })
  t.teardown(() => log.close())
  const names = (await log.read({ type: 'UserRegistered' })).map(e => (e.data as { username: string }).username)
  t.same(names, ['before', 'after'], 'what was refused is not in the log; what was acknowledged is')
})

t.test('brokers over Redis: a plug connected to node B is switched on by POST /api/instance on node A', async t => {
  const [url, redis] = await Promise.all([withPostgres(t), withRedis(t)])
  const env = { DATABASE_URL: url, REDIS_URL: redis }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  const socket = await createSocket(a)
  await reached(b, a.app.store.headPosition)
  // What the plug retains through node B (its last will's "Online") is kept by node A's broker too.
  const lwt = `tele/${socket.topic}/LWT`
  const { mq } = a.app.broker.aedes as unknown as { mq: { on(topic: string, deliver: (packet: unknown, done: () => void) => void): void } }
  const online = new Promise<void>(resolve => mq.on(lwt, (_packet, done) => { done(); setImmediate(resolve) }))
  const plug = await startPlug(t, b, socket)
  t.notOk(plug.isOn)
  await online
  const { persistence } = a.app.broker.aedes as unknown as { persistence: { createRetainedStream(pattern: string): import('node:stream').Readable } }
  const retained: Array<{ payload: Buffer }> = await persistence.createRetainedStream(lwt).toArray()
  t.same(retained.map(packet => packet.payload.toString()), ['Online'], "node A's broker holds the plug's retained LWT")
  // Node A decides and publishes POWER ON; Redis carries it to node B's broker and the plug; the
  // plug's answer is recorded by node B, and node A, told of it through the log, answers.
  const started = await http(a, 'POST', '/api/instance', { token: socket.token })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.match(started.body, { instance: { status: 'running' } })
  t.ok(plug.isOn, 'the plug on node B is on')
  const answered = a.app.store.read({ stream: `socket-${socket.socketId}`, type: 'SocketStatusReported' }).at(-1)
  t.match(answered?.metadata, { actor: /^mqtt:/ }, "the plug's answer, recorded by node B, is in node A's replica")
  // The nodes go before Redis does (teardowns run in the order they were added).
  await plug.close()
  await Promise.all([a.close(), b.close()])
})

t.test('retained configurations come from each node\'s replica; a revision reaches a sensor on another node once', async t => {
  const [url, redis] = await Promise.all([withPostgres(t), withRedis(t)])
  const env = { DATABASE_URL: url, REDIS_URL: redis }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  const sensor = await createSensor(a, { configuration: { interval: 5 } })
  const revise = (service: Service, interval: number) => http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'greenhouse', network_identifier: sensor.networkId, configuration: { interval } }
  })
  // Revised on node A while the sensor is away; it comes back through node B.
  t.equal((await revise(a, 10)).status, 200)
  await reached(b, a.app.store.headPosition)
  const client = await connectSensor(t, b, sensor)
  const received: unknown[] = []
  let third: () => void
  const thirdArrived = new Promise<void>(resolve => { third = resolve })
  client.on('message', (_topic, payload) => {
    received.push(JSON.parse(payload.toString()))
    if (received.length === 3) third()
  })
  await client.subscribeAsync(`configurations/${sensor.sensorId}`, { qos: 1 })
  // Revised on A, then on B (which folds A's revision first): each published by the node that
  // committed it, over Redis. Were B to publish A's revision too, it would come between the two.
  t.equal((await revise(a, 20)).status, 200)
  t.equal((await revise(b, 30)).status, 200)
  await thirdArrived
  await client.endAsync()
  t.same(received, [
    { revision: 1, configuration: { interval: 10 } },
    { revision: 2, configuration: { interval: 20 } },
    { revision: 3, configuration: { interval: 30 } }
  ], "node B's retained configuration from its replica, then each revision once")
  await Promise.all([a.close(), b.close()])
})

t.test("exactly one node runs the timers: an instance's timeout started on node A is stopped by node B once A has gone", async t => {
  const [url, redis] = await Promise.all([withPostgres(t), withRedis(t)])
  const env = { DATABASE_URL: url, REDIS_URL: redis, TIMER_LEASE_SECONDS: '15' }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  t.ok(a.app.timers.running, 'node A, first up, runs the timers')
  t.notOk(b.app.timers.running, 'node B does not')
  const socket = await createSocket(a)
  await reached(b, a.app.store.headPosition)
  const plug = await startPlug(t, b, socket)
  const started = await http(a, 'POST', '/api/instance', { token: socket.token, body: { timeout: 60_000 } })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.ok(plug.isOn)

  // Node A goes (a clean stop gives the lease up; a dead node's would run out after 15 s).
  await a.close()
  const clockB = b.clock as ManualClock
  const firstOf = (type: string, match: (event: RecordedEvent) => boolean = () => true) => new Promise<RecordedEvent>(resolve => {
    const stop = b.app.store.subscribe(events => {
      const found = events.find(e => e.type === type && match(e))
      if (found !== undefined) { stop(); resolve(found) }
    })
  })
  const stopped = firstOf('InstanceStopped')
  const switchedOff = firstOf('PowerReported', e => (e.data as { power: string }).power === 'OFF')
  // Node B tries for the lease every third of its term, takes it, and schedules the stop from the
  // log. The clock moves in steps, each once the node's lease business is done (as real time would).
  const step = async (ms: number) => {
    clockB.advance(ms)
    await b.app.timers.settled()
  }
  await step(5_000)
  t.ok(b.app.timers.running, 'node B runs the timers now')
  for (let i = 0; i < 12; i++) await step(5_000)
  t.match((await stopped).data, { reason: 'timeout' }, "the instance's timeout ends it, on node B")
  await switchedOff
  t.notOk(plug.isOn, 'and the plug is off')
  t.equal(b.app.store.read({ type: 'InstanceStopped' }).length, 1, 'stopped once')
  await plug.close()
  await b.close()
})

t.test("a timer started on node A fires, once, on node B after A is killed (kill -9)", async t => {
  const [url, redis] = await Promise.all([withPostgres(t), withRedis(t)])
  const env = { DATABASE_URL: url, REDIS_URL: redis, TIMER_LEASE_SECONDS: '3' }
  // Node A, a real server process, first up: it runs the timers. Node B in this process, on the real clock.
  const a = await spawnServer(t, { ...env, DATABASE_PATH: join(tempDir(t), 'node-a.db') })
  const b = await startService(t, { clock: systemClock, env })
  t.notOk(b.app.timers.running, 'node B does not run the timers while A lives')
  const socket = await createSocket({ url: a.url } as Service)
  const plug = await startPlug(t, b, socket)
  const stopped = committed(b, e => e.type === 'InstanceStopped')
  const switchedOff = committed(b, e => e.type === 'PowerReported' && (e.data as { power: string }).power === 'OFF')
  // Started on node A with a 4 s timeout, which node A's timer would end.
  const started = await http({ url: a.url } as Service, 'POST', '/api/instance', { token: socket.token, body: { timeout: 4000 } })
  t.equal(started.status, 200, JSON.stringify(started.body))
  t.ok(plug.isOn, 'the plug on node B is on')
  a.child.kill('SIGKILL')
  await a.exited
  // Node B takes the timers once A's lease has run out, schedules the instance's timeout from the log, and fires it.
  t.match((await stopped).data, { reason: 'timeout' }, 'the timeout A set ends the instance, on node B')
  t.ok(b.app.timers.running, 'node B runs the timers now')
  await switchedOff
  t.notOk(plug.isOn, 'and the plug is off')
  t.equal(b.app.store.read({ type: 'InstanceStopped' }).length, 1, 'stopped once')
  await plug.close()
  await b.close()
})

t.test('a node that dies (kill -9) leaves its devices shown connected until its lease runs out; then another node records their end', async t => {
  const url = await withPostgres(t)
  const env = { DATABASE_URL: url, TIMER_LEASE_SECONDS: '3' }
  // Node A, a real server process (first up: it runs the timers); node B in this process, on the real clock too.
  const a = await spawnServer(t, { ...env, DATABASE_PATH: join(tempDir(t), 'node-a.db') })
  const b = await startService(t, { clock: systemClock, env })
  const sensor = await createSensor({ url: a.url } as Service)
  const stream = `sensor-${sensor.sensorId}`
  const next = (type: string, match: (event: RecordedEvent) => boolean = () => true) => new Promise<RecordedEvent>(resolve => {
    const stop = b.app.store.subscribe(events => {
      const found = events.find(e => e.type === type && e.stream_id === stream && match(e))
      if (found !== undefined) { stop(); resolve(found) }
    })
  })
  const connected = next('DeviceConnected')
  const client = mqtt.connect(a.mqttUrl, { username: sensor.sensorId, password: sensor.password, reconnectPeriod: 0 })
  t.teardown(() => client.endAsync(true))
  client.on('error', () => {})
  const onA = (await connected).metadata.node
  t.type(onA, 'string', "node A's connection, carrying node A's name")
  t.equal(b.app.devices.presence(stream).online, true, 'node B shows it online')

  const lost = next('DeviceDisconnected', e => (e.data as { reason: string }).reason === 'node_lost')
  a.child.kill('SIGKILL')
  await a.exited
  // The sensor comes back through node B before A's lease has run out: two connections on record.
  const again = next('DeviceConnected')
  await connectSensor(t, b, sensor)
  t.not((await again).metadata.node, onA, "its new connection is node B's")
  // Node B takes the timers over once A's lease has run out, and ends the connection A left.
  const ended = await lost
  t.match(ended.data, { reason: 'node_lost', detail: /stopped renewing its lease/ })
  t.equal(ended.metadata.node, onA, "the connection ended is node A's")
  t.equal(b.app.devices.presence(stream).online, true, 'node B still shows it online: its connection to B is open')
  t.equal(b.app.store.read({ stream, type: 'DeviceDisconnected' }).length, 1, 'ended once')

  const closed = next('DeviceDisconnected', e => (e.data as { reason: string }).reason === 'closed')
  b.app.broker.disconnectDevice(stream)
  await closed
  t.equal(b.app.devices.presence(stream).online, false, 'and offline once that connection ends too')
})

t.test('Home Assistant hears the service offline only when its last node stops', async t => {
  const [url, redis] = await Promise.all([withPostgres(t), withRedis(t)])
  const env = { DATABASE_URL: url, REDIS_URL: redis, HA_DISCOVERY: 'true' }
  const a = await startService(t, { env })
  const b = await startService(t, { env })
  const sensor = await createSensor(a)
  const account = await http(a, 'POST', '/api/v1/integrations/home-assistant', { token: sensor.token, body: { network_identifier: sensor.networkId } })
  t.equal(account.status, 201)
  await reached(b, a.app.store.headPosition)

  // Home Assistant and the sensor are on node B.
  const ha = await connectMqtt(t, b.mqttUrl, { username: account.body.mqtt.username, password: account.body.mqtt.password })
  const received: Array<{ topic: string, payload: string }> = []
  const waiters = new Set<() => void>()
  ha.on('message', (topic, payload) => {
    received.push({ topic, payload: payload.toString() })
    for (const waiter of waiters) waiter()
  })
  const arrival = (match: (m: { topic: string, payload: string }) => boolean) => new Promise<void>(resolve => {
    const waiter = () => { if (received.some(match)) { waiters.delete(waiter); resolve() } }
    waiters.add(waiter)
    waiter()
  })
  const status = 'devicelog/ha/status'
  const stateTopic = `devicelog/ha/sensor/${sensor.sensorId}/state`
  await ha.subscribeAsync([status, stateTopic], { qos: 1 })
  await arrival(m => m.topic === status && m.payload === 'online')
  const device = await connectSensor(t, b, sensor)

  await a.close()
  // Recorded through node B once A has stopped: its state reaches Home Assistant over Redis after
  // anything node A published while it stopped.
  const measured = arrival(m => m.topic === stateTopic && m.payload.includes('21.5'))
  await publish(device, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: 1_767_225_600, value: { celsius: 21.5 } }] })
  await measured
  t.same(received.filter(m => m.topic === status).map(m => m.payload), ['online'], 'node A stopped while node B serves: the service is still online')

  const offline = arrival(m => m.topic === status && m.payload === 'offline')
  await b.close()
  await offline
  t.pass('node B, the last, stopped: offline')
})
