// TRUST_PROXY: a balancer in front. Its MQTT connections may begin with a PROXY protocol v1 header
// naming the device's address, which is then what the refusal policy counts and blocks; its HTTP
// requests carry X-Forwarded-For, which becomes request.ip. An untrusted peer's header is never
// believed. Real service on ephemeral ports, real TCP sockets (node:net) with CONNECTs written by
// mqtt-packet, real mqtt.js clients, the service's ManualClock.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { connect as netConnect, type Socket } from 'node:net'
import mqtt from 'mqtt'
import mqttPacket, { type Packet } from 'mqtt-packet'
import type { Test } from 'tap'
import { ManualClock } from '../src/clock.ts'
import { connectMqtt, connectSensor, createSensor, startService, type Service } from './helpers/service.ts'
import { testWithin } from './helpers/within.ts'

const test = testWithin(20_000)

const DEVICE = '203.0.113.7'
const OTHER = '198.51.100.9'
/** A v1 header as HAProxy's `send-proxy` writes it. */
const header = (source: string, sourcePort = 40000) => `PROXY TCP4 ${source} 127.0.0.1 ${sourcePort} 1883\r\n`

let clientIds = 0
const connectPacket = (username: string, password: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `proxied-${process.pid}-${++clientIds}`, keepalive: 0, username, password: Buffer.from(password) })

type Outcome = number | 'closed'

/**
 * The server's side of each MQTT connection (diagnostics channel `net.server.socket`), by the
 * client's port: a test can wait until the server has read what it wrote, so a header written in
 * two parts is read in two parts.
 */
function serverSockets (t: Test, service: Service) {
  const byClientPort = new Map<number, Socket>()
  const waiters = new Map<number, (socket: Socket) => void>()
  const onSocket = (message: unknown) => {
    const { socket } = message as { socket: Socket }
    if (socket.localPort !== service.mqttPort || socket.remotePort === undefined) return
    byClientPort.set(socket.remotePort, socket)
    waiters.get(socket.remotePort)?.(socket)
  }
  subscribe('net.server.socket', onSocket)
  t.teardown(() => { unsubscribe('net.server.socket', onSocket) })
  return {
    of: (client: Socket): Promise<Socket> => {
      const known = byClientPort.get(client.localPort!)
      if (known !== undefined) return Promise.resolve(known)
      return new Promise(resolve => waiters.set(client.localPort!, resolve))
    }
  }
}

/** Until the server side has read `bytes` bytes, or closed (yielding to the event loop, which reads them: no fixed sleep). */
async function untilRead (server: Socket, bytes: number): Promise<void> {
  while (server.bytesRead < bytes && !server.destroyed) await new Promise(resolve => setImmediate(resolve))
}

/**
 * A raw MQTT connection: writes `parts` one after another (each after the server has read the
 * ones before, when `sockets` is given), then resolves with the CONNACK's return code, or
 * 'closed' when the server closed the connection without one.
 */
async function rawAttempt (t: Test, service: Service, parts: Array<string | Buffer>, sockets?: ReturnType<typeof serverSockets>): Promise<Outcome> {
  const socket = netConnect(service.mqttPort, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.setNoDelay(true)
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const outcome = new Promise<Outcome>(resolve => {
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd !== 'connack') return
      resolve(packet.returnCode ?? 0)
      socket.destroy()
    })
    socket.once('close', () => resolve('closed'))
  })
  socket.on('data', data => parser.parse(data))
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('close', () => reject(new Error('closed before connecting')))
  })
  const server = sockets === undefined ? undefined : await sockets.of(socket)
  let written = 0
  for (const part of parts) {
    const bytes = Buffer.from(part)
    if (socket.destroyed) break
    socket.write(bytes)
    written += bytes.length
    if (server !== undefined) await untilRead(server, written)
  }
  return outcome
}

/** A CONNECT led by a header (or not), in one write. */
const attempt = (t: Test, service: Service, lead: string, username: string, password: string) =>
  rawAttempt(t, service, [Buffer.concat([Buffer.from(lead, 'latin1'), connectPacket(username, password)])])

/** A plain mqtt.js CONNECT (no header); resolves with the CONNACK's return code, or 'closed'. */
function mqttAttempt (url: string, username: string, password: string, options: mqtt.IClientOptions = {}): Promise<Outcome> {
  return new Promise(resolve => {
    const client = mqtt.connect(url, { username, password, reconnectPeriod: 0, connectTimeout: 10_000, ...options })
    let code: Outcome = 'closed'
    client.on('packetreceive', packet => { if (packet.cmd === 'connack') code = packet.returnCode ?? 0 })
    client.on('error', () => {})
    client.once('close', () => { client.end(true); resolve(code) })
  })
}

/** Resolves once a commit includes an event of `type`. */
const committed = (service: Service, type: string) => new Promise<void>(resolve => {
  const stop = service.app.store.subscribe(events => {
    if (events.some(e => e.type === type)) { stop(); resolve() }
  })
})

const ofType = (service: Service, type: string) => service.app.store.read({ type }).map(e => e.data as any)

/** GET /metrics (no METRICS_TOKEN: loopback callers only) with these headers: its status. */
const metricsStatus = async (service: Service, headers: Record<string, string> = {}) => {
  const response = await fetch(service.url + '/metrics', { headers })
  await response.arrayBuffer()
  return response.status
}

test('behind a trusted balancer, the PROXY header\'s address is the one counted and blocked; others behind it still connect', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { TRUST_PROXY: '127.0.0.1', MQTT_MAX_AUTH_FAILURES_PER_MINUTE: '2' } })
  const sensor = await createSensor(service)

  // Failure 1 is refused at once; 2 (past half the limit) is held a second; 3 blocks the address.
  const first = await attempt(t, service, header(DEVICE, 40001), sensor.sensorId, 'guess')
  t.equal(first, 4, 'a wrong password behind the balancer: CONNACK 4')
  const blocking = committed(service, 'SourceBlocked')
  const held = [attempt(t, service, header(DEVICE, 40002), sensor.sensorId, 'guess'), attempt(t, service, header(DEVICE, 40003), sensor.sensorId, 'guess')]
  await blocking
  clock.advance(1000)
  t.same(await Promise.all(held), [4, 4], 'the held ones are refused after the second')

  const blocked = ofType(service, 'SourceBlocked')
  t.equal(blocked.length, 1, 'one SourceBlocked')
  t.match(blocked[0], { address: DEVICE, failures: 3 }, 'it names the address the header named, not the balancer\'s')
  const refused = ofType(service, 'ConnectionRefused')
  t.equal(refused.length, 1, 'the first failure recorded in full (its repeats are counted)')
  t.match(refused[0], { username: sensor.sensorId, reason: 'bad_credentials', detail: 'wrong password' })

  // The device's address is closed at the socket, even with the right password.
  t.equal(await attempt(t, service, header(DEVICE, 40004), sensor.sensorId, sensor.password), 'closed', 'the blocked address gets no CONNACK, even with the right password')
  // Another device behind the same balancer is not blocked with it.
  t.equal(await attempt(t, service, header(OTHER, 40005), sensor.sensorId, sensor.password), 0, 'another address behind the balancer: CONNACK 0')
  // Nor is the balancer's own address: a client on its machine, without a header.
  const local = await connectSensor(t, service, sensor, { clientId: `plain-${process.pid}` })
  t.ok(local.connected, 'a plain client from 127.0.0.1 (no header) connects')
  await local.endAsync()
  t.equal(await attempt(t, service, header(DEVICE, 40006), sensor.sensorId, sensor.password), 'closed', 'still blocked')

  // The minute ends: what was only counted is summarized under the header's address.
  const summarized = committed(service, 'RefusalsSummarized')
  clock.advance(60_000)
  await summarized
  const summaries = ofType(service, 'RefusalsSummarized')
  t.match(summaries.find(s => s.reason === 'bad_credentials'), { refusal: 'ConnectionRefused', source: DEVICE, count: 2 }, 'the repeated failures are counted against the header\'s address')
  t.match(summaries.find(s => s.reason === 'source_blocked'), { refusal: 'ConnectionRefused', source: DEVICE, count: 2 }, 'the connections closed at the socket are counted against it')
  t.same(summaries.filter(s => s.source !== DEVICE), [], 'nothing is counted against the balancer\'s address')
  t.same(ofType(service, 'SourceBlocked').map(b => b.address), [DEVICE], 'only the header\'s address was ever blocked')
})

test('a header split over TCP writes, or in one write with the CONNECT, is read; the bytes after it are MQTT', async t => {
  // A list with a CIDR range: the peer 127.0.0.1 is trusted through 127.0.0.0/8.
  const service = await startService(t, { env: { TRUST_PROXY: '10.1.2.3, 127.0.0.0/8' } })
  const sensor = await createSensor(service)
  const sockets = serverSockets(t, service)
  const line = header(OTHER)
  const connect = () => connectPacket(sensor.sensorId, sensor.password)

  t.equal(await rawAttempt(t, service, ['PROX', line.slice(4), connect()], sockets), 0, '`PROX`, then the rest, then CONNECT: CONNACK 0')
  t.equal(await rawAttempt(t, service, ['PROX', Buffer.concat([Buffer.from(line.slice(4)), connect()])], sockets), 0, '`PROX`, then the rest with CONNECT: CONNACK 0')
  const packet = connect()
  t.equal(await rawAttempt(t, service, [line.slice(0, -1), Buffer.concat([Buffer.from('\n'), packet.subarray(0, 5)]), packet.subarray(5)], sockets), 0,
    'CR and LF in different writes, the CONNECT split too: CONNACK 0')
  t.equal(await rawAttempt(t, service, [Buffer.concat([Buffer.from(line), connect()])], sockets), 0, 'header and CONNECT in one write: CONNACK 0')
  t.equal(await rawAttempt(t, service, [line, connect()], sockets), 0, 'header alone, then CONNECT: CONNACK 0')
  t.equal(await rawAttempt(t, service, [header('2001:db8::7').replace('TCP4', 'TCP6').replace('127.0.0.1', '::1'), connect()], sockets), 0, 'a TCP6 header: CONNACK 0')
  t.equal(await attempt(t, service, 'PROXY UNKNOWN\r\n', sensor.sensorId, sensor.password), 0, 'PROXY UNKNOWN (a health check): CONNACK 0')
  // The longest v1 header: UNKNOWN with two full IPv6 addresses and ports, 107 bytes with its CRLF.
  const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'
  const longest = `PROXY UNKNOWN ${full} ${full} 65535 65535\r\n`
  t.equal(longest.length, 107)
  t.equal(await attempt(t, service, longest, sensor.sensorId, sensor.password), 0, 'a 107-byte header is read')
  t.equal(await attempt(t, service, header(OTHER), sensor.sensorId, 'guess'), 4, 'the header read, a wrong password is still refused')
})

test('a malformed, over-long or late header closes the connection; the service goes on', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { TRUST_PROXY: '127.0.0.1' } })
  const sensor = await createSensor(service)
  const sockets = serverSockets(t, service)
  const connect = () => connectPacket(sensor.sensorId, sensor.password)

  t.equal(await rawAttempt(t, service, [Buffer.concat([Buffer.from('PROXY GARBAGE\r\n'), connect()])]), 'closed', 'PROXY GARBAGE: closed without CONNACK')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\n', connect()], sockets), 'closed', 'a header missing its destination port: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP5 203.0.113.7 127.0.0.1 40000 1883\r\n', connect()], sockets), 'closed', 'an unknown protocol: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 not-an-address 127.0.0.1 40000 1883\r\n', connect()], sockets), 'closed', 'a source that is no address: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 2001:db8::7 127.0.0.1 40000 1883\r\n', connect()], sockets), 'closed', 'an IPv6 source under TCP4: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 203.0.113.7 127.0.0.1 99999 1883\r\n', connect()], sockets), 'closed', 'a port out of range: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 203.0.113.7 127.0.0.1 01 1883\r\n', connect()], sockets), 'closed', 'a port with a leading zero: closed')
  t.equal(await rawAttempt(t, service, ['PROXY ' + 'x'.repeat(150)]), 'closed', 'over 107 bytes without CRLF: closed')
  t.equal(await rawAttempt(t, service, ['PROXY TCP4 ', '1'.repeat(96)], sockets), 'closed', 'exactly 107 bytes without CRLF, in two writes: closed')
  const padded = `PROXY UNKNOWN ${'f'.repeat(92)}\r\n`
  t.equal(padded.length, 108)
  t.equal(await rawAttempt(t, service, [Buffer.concat([Buffer.from(padded), connect()])]), 'closed', 'a 108-byte line with its CRLF: closed')
  t.equal(await rawAttempt(t, service, [Buffer.concat([Buffer.from('PROXY ' + 'x'.repeat(150) + '\r\n'), connect()])]), 'closed', 'an over-long line, CRLF and CONNECT in one write: closed')

  // A header that never ends: closed after 5 s of the service's clock.
  const socket = netConnect(service.mqttPort, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  await new Promise(resolve => socket.once('connect', resolve))
  const server = await sockets.of(socket)
  socket.write('PROXY TCP4 203.0.')
  await untilRead(server, 17)
  clock.advance(4999)
  t.notOk(server.destroyed, 'still waiting for the rest just before 5 s')
  clock.advance(1)
  t.ok(server.destroyed, 'closed at 5 s')
  await closed

  // A trusted peer that starts with MQTT is served as before.
  const client = await connectSensor(t, service, sensor)
  t.ok(client.connected, 'a normal client connects afterwards')
  t.equal(await attempt(t, service, header(OTHER), sensor.sensorId, sensor.password), 0, 'and so does one behind the balancer')
})

test('a trusted peer without a header is counted and blocked under its TCP address', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { TRUST_PROXY: '127.0.0.1', MQTT_MAX_AUTH_FAILURES_PER_MINUTE: '2' } })
  const sensor = await createSensor(service)
  t.equal(await mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess'), 4)
  const blocking = committed(service, 'SourceBlocked')
  const held = [mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess'), mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess')]
  await blocking
  clock.advance(1000)
  t.same(await Promise.all(held), [4, 4])
  t.same(ofType(service, 'SourceBlocked').map(b => b.address), ['127.0.0.1'], 'the TCP peer is blocked')
  t.equal(await mqttAttempt(service.mqttUrl, sensor.sensorId, sensor.password), 'closed', 'its plain connections are closed at the socket')
  // The block is the peer's own, not its devices': a header naming another address gets through.
  t.equal(await attempt(t, service, header(OTHER), sensor.sensorId, sensor.password), 0, 'a header-led connection from it naming another address connects')
})

for (const [label, env] of [['without TRUST_PROXY', {}], ['when the peer is not in TRUST_PROXY', { TRUST_PROXY: '10.0.0.0/8' }]] as const) {
  test(`${label}, neither a PROXY header nor X-Forwarded-For is believed`, async t => {
    const clock = new ManualClock()
    const service = await startService(t, { clock, env: { ...env, MQTT_MAX_AUTH_FAILURES_PER_MINUTE: '2' } })
    t.equal(await metricsStatus(service, { 'x-forwarded-for': DEVICE }), 200, 'GET /metrics with X-Forwarded-For: the loopback peer, 200')
    t.equal(await metricsStatus(service), 200, 'GET /metrics without it: 200')

    // The header's bytes are garbage MQTT: the broker closes the connection.
    const sensor = await createSensor(service)
    t.equal(await attempt(t, service, header(DEVICE), sensor.sensorId, sensor.password), 'closed', 'header and right password: closed, never CONNACK 0')
    t.equal(await attempt(t, service, header(OTHER), sensor.sensorId, sensor.password), 'closed', 'another address: closed too')
    for (let i = 0; i < 3; i++) t.equal(await attempt(t, service, header(DEVICE), sensor.sensorId, 'guess'), 'closed', `header and wrong password ${i + 1}: closed, not CONNACK 4`)
    t.same(ofType(service, 'ConnectionRefused'), [], 'no failed CONNECT recorded')
    t.same(ofType(service, 'SourceBlocked'), [], 'nobody blocked, the header\'s address least of all')

    const client = await connectSensor(t, service, sensor)
    t.ok(client.connected, 'the service goes on: a normal client connects')
    t.equal(await mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess'), 4, 'a failure without a header is counted under the TCP peer')
    const blocking = committed(service, 'SourceBlocked')
    const held = [mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess'), mqttAttempt(service.mqttUrl, sensor.sensorId, 'guess')]
    await blocking
    clock.advance(1000)
    await Promise.all(held)
    t.same(ofType(service, 'SourceBlocked').map(b => b.address), ['127.0.0.1'], 'the TCP peer is what is blocked')
    t.equal(await attempt(t, service, header(OTHER), sensor.sensorId, sensor.password), 'closed', 'a header cannot get a blocked peer through')
  })
}

test('MQTT over WebSocket behind a trusted balancer: X-Forwarded-For is the address counted and blocked', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { TRUST_PROXY: '127.0.0.1', MQTT_MAX_AUTH_FAILURES_PER_MINUTE: '2' } })
  const sensor = await createSensor(service)
  const wsUrl = `${service.url.replace(/^http/, 'ws')}/mqtt`
  const from = (address: string): mqtt.IClientOptions => ({ wsOptions: { headers: { 'x-forwarded-for': address } } })
  t.equal(await mqttAttempt(wsUrl, sensor.sensorId, 'guess', from(DEVICE)), 4)
  const blocking = committed(service, 'SourceBlocked')
  const held = [mqttAttempt(wsUrl, sensor.sensorId, 'guess', from(DEVICE)), mqttAttempt(wsUrl, sensor.sensorId, 'guess', from(DEVICE))]
  await blocking
  clock.advance(1000)
  t.same(await Promise.all(held), [4, 4])
  t.same(ofType(service, 'SourceBlocked').map(b => b.address), [DEVICE], 'the forwarded address is blocked')
  t.equal(await mqttAttempt(wsUrl, sensor.sensorId, sensor.password, from(DEVICE)), 'closed', 'it is closed even with the right password')
  const other = await connectMqtt(t, wsUrl, { username: sensor.sensorId, password: sensor.password, ...from(OTHER) })
  t.ok(other.connected, 'another forwarded address connects')
  const direct = await connectMqtt(t, wsUrl, { username: sensor.sensorId, password: sensor.password, clientId: `ws-direct-${process.pid}` })
  t.ok(direct.connected, 'and so does the balancer\'s own address')
})

test('GET /metrics with TRUST_PROXY answers the forwarded address, not the balancer\'s', async t => {
  const service = await startService(t, { env: { TRUST_PROXY: '127.0.0.1' } })
  t.equal(await metricsStatus(service, { 'x-forwarded-for': DEVICE }), 403, 'forwarded for a remote caller: 403')
  t.equal(await metricsStatus(service, { 'x-forwarded-for': `${DEVICE}, 127.0.0.1` }), 403, 'a remote caller through two trusted hops: 403')
  t.equal(await metricsStatus(service), 200, 'no X-Forwarded-For: the loopback peer, 200')
  t.equal(await metricsStatus(service, { 'x-forwarded-for': '127.0.0.1' }), 200, 'forwarded for loopback: 200')
})
