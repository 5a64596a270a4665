import { once } from 'node:events'
import { get as httpGet, type ClientRequest, type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { ConfigError, parseConfig } from '../src/config.ts'
import { connectSensor, createSensor, publish, startService, type Service } from './helpers/service.ts'
import { testWithin } from './helpers/within.ts'

// GET /metrics end to end: a real service, a real sensor over MQTT, a real WebSocket and event
// stream, scraped over real HTTP and read with a Prometheus text-format parser.

interface Sample { value?: string, labels?: Record<string, string>, count?: string, sum?: string, buckets?: Record<string, string> }
interface Family { name: string, help: string, type: string, metrics: Sample[] }
// The parser ships no types; this is the shape its README documents (prom2json's).
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[]

const T0 = 1767225600
const TOKEN = 'a-scraper-token-of-its-own-0123456789'
const within = testWithin(60_000)

async function scrape (service: Service, headers: Record<string, string> = {}) {
  const response = await fetch(`${service.url}/metrics`, { headers })
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() }
}

/** The families of a scrape that must succeed, by name. */
async function metrics (service: Service, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const { status, text } = await scrape(service, headers)
  if (status !== 200) throw new Error(`GET /metrics: ${status} ${text}`)
  return new Map(parsePrometheus(text).map(family => [family.name, family]))
}

const matches = (sample: Sample, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => sample.labels?.[k] === v)
/** A counter's or gauge's value for these labels; undefined when no such series is exported. */
function value (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const sample = families.get(name)?.metrics.find(s => matches(s, labels))
  return sample?.value === undefined ? undefined : Number(sample.value)
}
/** An unlabelled histogram's count and sum (the parser folds a histogram's series into one). */
function histogram (families: Map<string, Family>, name: string) {
  const sample = families.get(name)?.metrics[0]
  return { count: Number(sample?.count ?? NaN), sum: Number(sample?.sum ?? NaN) }
}

/** The service's own end of the next connection to it (to wait for the service to see it close). */
const nextServerSocket = (service: Service): Promise<Socket> => once(service.app.server, 'connection').then(([socket]) => socket as Socket)

within('counts what devices send, what the log commits and who listens', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  const topic = `measurements/${sensor.sensorId}`

  // A small load: 20 valid messages in flight at once, then refusals of two reasons (the second
  // invalid JSON like the first is counted, not recorded again: still a refusal).
  const valid = Array.from({ length: 20 }, (_, i) => publish(client, topic, { measurements: [{ revision: 0, timestamp: T0 + i, value: { temperature: 20 + i / 10 } }] }))
  await Promise.all(valid)
  await publish(client, topic, 'not json')
  await publish(client, topic, 'not json')
  await publish(client, topic, { measurements: 'many' })

  const serverWebSocket = once(service.app.websocketServer, 'connection').then(([socket]) => socket as WebSocket)
  const ws = new WebSocket(`${service.url.replace('http', 'ws')}/api/v1/events/ws?access_token=${sensor.token}`)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  const serverStreamSocket = nextServerSocket(service)
  // node:http rather than fetch: destroying it closes its own connection, which the test waits on.
  const stream: ClientRequest = httpGet(`${service.url}/streams/${sensor.networkId}`, { headers: { authorization: `Bearer ${sensor.token}` }, agent: false })
  t.teardown(() => stream.destroy())
  const [streamResponse] = await once(stream, 'response') as [IncomingMessage]
  t.equal(streamResponse.statusCode, 200)
  streamResponse.resume()

  const raw = await scrape(service)
  t.equal(raw.status, 200)
  t.match(raw.contentType, /^text\/plain; version=0\.0\.4/)
  const families = parsePrometheus(raw.text)
  t.ok(families.length > 10, 'the whole scrape parses as Prometheus text format')
  const m = new Map(families.map(family => [family.name, family]))

  t.equal(value(m, 'devicelog_mqtt_messages_received_total', { kind: 'sensor' }), 23)
  t.equal(value(m, 'devicelog_mqtt_messages_committed_total', { kind: 'sensor' }), 20)
  t.equal(value(m, 'devicelog_mqtt_messages_refused_total', { kind: 'sensor', reason: 'invalid_json' }), 2)
  t.equal(value(m, 'devicelog_mqtt_messages_refused_total', { kind: 'sensor', reason: 'invalid_payload' }), 1)
  t.equal(value(m, 'devicelog_mqtt_messages_redelivered_total', { kind: 'sensor' }), undefined, 'no redelivery was sent')
  t.equal(m.get('devicelog_mqtt_messages_refused_total')?.type, 'COUNTER')
  t.equal(value(m, 'devicelog_mqtt_connected_devices', { kind: 'sensor' }), 1)
  // The parser keeps a labelled histogram's buckets only (without their labels): its count is the +Inf bucket.
  t.equal(Number(m.get('devicelog_mqtt_acknowledgement_seconds')?.metrics[0]?.buckets?.['+Inf']), 23, 'every QoS 1 message acknowledged is timed')
  t.match((await scrape(service)).text, /^devicelog_mqtt_acknowledgement_seconds_count\{kind="sensor"\} 23$/m, 'by device kind')
  const groups = histogram(m, 'devicelog_log_commit_group_size')
  t.ok(groups.count > 0, 'groups committed are counted')
  t.ok(groups.sum >= 20 + 2, 'their units include the recorded messages and refusals')
  t.ok(histogram(m, 'devicelog_log_commit_duration_seconds').count > 0)
  t.ok(histogram(m, 'devicelog_log_commit_duration_seconds').sum > 0, 'the writer thread times its transactions')

  const log = service.app.store.db.prepare('SELECT count(*) AS events, max(position) AS head FROM events').get() as { events: number, head: number }
  t.equal(value(m, 'devicelog_log_head_position'), log.head, 'the head position is the log\'s')
  t.equal(value(m, 'devicelog_log_events'), log.events, 'the events are the log\'s')
  t.equal(value(m, 'devicelog_live_clients', { transport: 'websocket', route: '/api/v1/events/ws' }), 1)
  t.equal(value(m, 'devicelog_live_clients', { transport: 'sse', route: '/streams/:network_identifier' }), 1)
  // prom-client's default metrics: event loop lag and process memory.
  t.ok((value(m, 'nodejs_eventloop_lag_seconds') ?? -1) >= 0)
  t.ok((value(m, 'process_resident_memory_bytes') ?? 0) > 0)
  t.ok((value(m, 'nodejs_heap_size_used_bytes') ?? 0) > 0)

  // The listeners leave and the sensor disconnects: the gauges follow, the counters stay.
  const [serverWs, serverStream] = await Promise.all([serverWebSocket, serverStreamSocket])
  const wsClosed = once(serverWs, 'close')
  ws.close()
  await wsClosed
  const streamClosed = once(serverStream, 'close')
  stream.destroy()
  await streamClosed
  const disconnected = once(service.app.broker.aedes, 'clientDisconnect')
  await client.endAsync()
  await disconnected
  const after = await metrics(service)
  t.equal(value(after, 'devicelog_live_clients', { transport: 'websocket', route: '/api/v1/events/ws' }), 0)
  t.equal(value(after, 'devicelog_live_clients', { transport: 'sse', route: '/streams/:network_identifier' }), 0)
  t.equal(value(after, 'devicelog_mqtt_connected_devices', { kind: 'sensor' }), 0)
  t.equal(value(after, 'devicelog_mqtt_messages_committed_total', { kind: 'sensor' }), 20)
})

within('the head and the event count survive a restart: read once at start, then followed from commits', async t => {
  const first = await startService(t)
  const sensor = await createSensor(first)
  const client = await connectSensor(t, first, sensor)
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0, value: { temperature: 1 } }] })
  await client.endAsync()
  await first.close()
  const second = await startService(t, { dir: first.dir })
  const before = await metrics(second)
  const log = () => second.app.store.db.prepare('SELECT count(*) AS events, max(position) AS head FROM events').get() as { events: number, head: number }
  t.ok(log().events > 5)
  t.equal(value(before, 'devicelog_log_events'), log().events)
  t.equal(value(before, 'devicelog_log_head_position'), log().head)
  t.equal(value(before, 'devicelog_mqtt_messages_received_total', { kind: 'sensor' }), undefined, 'counters start again with the process')
  const again = await connectSensor(t, second, sensor)
  await publish(again, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: T0 + 1, value: { temperature: 2 } }] })
  const after = await metrics(second)
  t.equal(value(after, 'devicelog_log_events'), log().events)
  t.equal(value(after, 'devicelog_log_head_position'), log().head)
  t.ok(log().head > (value(before, 'devicelog_log_head_position') ?? Infinity))
})

within('METRICS_TOKEN set: a bearer token of its own, 401 otherwise', async t => {
  const service = await startService(t, { env: { METRICS_TOKEN: TOKEN } })
  const user = await createSensor(service)
  const refused: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer a-scraper-token-of-its-own-0123456788' }],
    ['a prefix of it', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['another scheme', { authorization: `Basic ${TOKEN}` }],
    ['a user\'s bearer token', { authorization: `Bearer ${user.token}` }]
  ]
  for (const [name, headers] of refused) {
    const response = await scrape(service, headers)
    t.equal(response.status, 401, name)
    t.same(JSON.parse(response.text), { detail: 'missing or invalid bearer token' }, name)
  }
  const ok = await metrics(service, { authorization: `Bearer ${TOKEN}` })
  t.ok(ok.has('devicelog_log_head_position'))
  // With a token, the address does not matter.
  const remote = await service.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7', headers: { authorization: `bearer ${TOKEN}` } })
  t.equal(remote.statusCode, 200)
  const remoteWithout = await service.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7' })
  t.equal(remoteWithout.statusCode, 401)
})

within('METRICS_TOKEN unset: only the loopback address is answered, 403 otherwise', async t => {
  const service = await startService(t)
  for (const address of ['192.0.2.7', '10.0.0.1', '::ffff:192.0.2.7', '2001:db8::1']) {
    const response = await service.app.inject({ method: 'GET', url: '/metrics', remoteAddress: address })
    t.equal(response.statusCode, 403, address)
    t.match(response.json(), { detail: /only to this machine/ }, address)
  }
  // A forwarded header does not make a remote client local.
  const forwarded = await service.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7', headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(forwarded.statusCode, 403)
  for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
    const response = await service.app.inject({ method: 'GET', url: '/metrics', remoteAddress: address })
    t.equal(response.statusCode, 200, address)
    t.ok(parsePrometheus(response.body).some(family => family.name === 'devicelog_mqtt_messages_received_total'), address)
  }
})

t.test('METRICS_TOKEN: a short one stops the start-up, naming the variable', async t => {
  let error: unknown
  try { parseConfig({ METRICS_TOKEN: 'short' }) } catch (caught) { error = caught }
  t.ok(error instanceof ConfigError)
  t.match((error as Error).message, /^METRICS_TOKEN: at least 16 characters/)
  t.equal(parseConfig({ METRICS_TOKEN: TOKEN }).METRICS_TOKEN, TOKEN)
  t.equal(parseConfig({}).METRICS_TOKEN, undefined)
})
