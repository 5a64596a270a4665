import { randomUUID } from 'node:crypto'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { connectSensor, http, publish, startService, type SensorFixture, type Service } from './helpers/service.ts'

const BUCKET = 4 * 60 * 60
const BUCKETS = 168

let counter = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`

async function newUser (service: Service): Promise<string> {
  const response = await http(service, 'POST', '/users', { body: { username: unique('user'), password: 'correct horse' } })
  if (response.status !== 201) throw new Error(`POST /users: ${response.status}`)
  return response.body.access_token
}

async function newNetwork (service: Service, token: string): Promise<string> {
  const response = await http(service, 'POST', '/networks', { token, body: { network_name: unique('network') } })
  if (response.status !== 201) throw new Error(`POST /networks: ${response.status}`)
  return response.body.network_identifier
}

async function newSensor (service: Service, token: string, networkId: string, name = unique('sensor')): Promise<SensorFixture & { name: string }> {
  const response = await http(service, 'POST', '/sensors', { token, body: { sensor_name: name, network_identifier: networkId, configuration: {} } })
  if (response.status !== 201) throw new Error(`POST /sensors: ${response.status}`)
  return { token, userId: '', networkId, sensorId: response.body.sensor_identifier, password: response.body.mqtt.password, name }
}

interface SseEvent { id?: string, event: string, data: any }

/**
 * GET /streams/<network> over real HTTP; `next()` waits for the next server-sent event.
 * The stream is not aborted at teardown: the service's close ends it. (Aborting a fetch makes
 * Node's fetch open a spare connection that holds the server's close for its 4 s keep-alive.)
 */
async function openStream (service: Service, networkId: string, token: string | undefined, via: 'header' | 'query' = 'header') {
  const query = via === 'query' && token !== undefined ? `?access_token=${token}` : ''
  const headers: Record<string, string> = via === 'header' && token !== undefined ? { authorization: `Bearer ${token}` } : {}
  const response = await fetch(`${service.url}/streams/${networkId}${query}`, { headers })
  const queue: SseEvent[] = []
  const waiting: Array<{ resolve(event: SseEvent): void, reject(error: Error): void }> = []
  let ended: Error | undefined
  const deliver = (event: SseEvent) => {
    const waiter = waiting.shift()
    if (waiter === undefined) queue.push(event)
    else waiter.resolve(event)
  }
  const end = (error: Error) => {
    ended = error
    for (const waiter of waiting.splice(0)) waiter.reject(error)
  }
  if (response.status === 200 && response.body !== null) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    void (async () => {
      let buffer = ''
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return end(new Error('the stream ended'))
        buffer += value
        for (let split = buffer.indexOf('\n\n'); split >= 0; split = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, split)
          buffer = buffer.slice(split + 2)
          const event: SseEvent = { event: 'message', data: undefined }
          const data: string[] = []
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'id') event.id = text
            else if (field === 'event') event.event = text
            else if (field === 'data') data.push(text)
          }
          event.data = JSON.parse(data.join('\n'))
          deliver(event)
        }
      }
    })().catch((error: Error) => end(error))
  }
  return {
    status: response.status,
    headers: response.headers,
    body: response.status === 200 ? undefined : await response.json() as { detail: string },
    next: () => new Promise<SseEvent>((resolve, reject) => {
      const event = queue.shift()
      if (event !== undefined) resolve(event)
      else if (ended !== undefined) reject(ended)
      else waiting.push({ resolve, reject })
    }),
    get pending () { return queue.length }
  }
}

t.test('GET /streams/<network>: who may listen', async t => {
  const service = await startService(t)
  const owner = await newUser(service)
  const stranger = await newUser(service)
  const networkId = await newNetwork(service, owner)

  const anonymous = await openStream(service, networkId, undefined)
  t.equal(anonymous.status, 401)
  t.type(anonymous.body?.detail, 'string')
  t.equal((await openStream(service, networkId, 'f'.repeat(64))).status, 401, 'a bad token')
  t.equal((await openStream(service, networkId, 'f'.repeat(64), 'query')).status, 401, 'a bad ?access_token=')

  const foreign = await openStream(service, networkId, stranger)
  const unknown = await openStream(service, randomUUID(), owner)
  t.equal(foreign.status, 404, 'a non-member')
  t.equal(unknown.status, 404, 'an unknown network')
  t.strictSame(foreign.body, unknown.body, 'the same answer: existence is not leaked')

  for (const via of ['header', 'query'] as const) {
    const stream = await openStream(service, networkId, owner, via)
    t.equal(stream.status, 200, `a member, token in the ${via}`)
    t.match(stream.headers.get('content-type'), /^text\/event-stream/)
    t.equal(stream.headers.get('cache-control'), 'no-cache')
    const first = await stream.next()
    t.equal(first.event, 'summary', 'the summary comes first')
    t.equal(first.id, undefined, 'a summary is not a position of the log')
  }
})

t.test('the summary: measurement counts per sensor in 168 4-hour buckets over the last 28 days', async t => {
  // 13:30 is inside the 12:00-16:00 bucket; 167 buckets before it start at 2025-12-13T16:00Z
  const now = Date.UTC(2026, 0, 10, 13, 30)
  const clock = new ManualClock(now)
  const service = await startService(t, { clock })
  const owner = await newUser(service)
  const networkId = await newNetwork(service, owner)
  const busy = await newSensor(service, owner, networkId)
  const quiet = await newSensor(service, owner, networkId)
  const elsewhere = await newSensor(service, owner, await newNetwork(service, owner))
  const nowS = now / 1000
  const first = Date.UTC(2025, 11, 13, 16) / 1000
  const inside = [
    nowS - 10, nowS - 20.5, // the current bucket, twice
    Date.UTC(2026, 0, 10, 12) / 1000, // the current bucket's first second
    Date.UTC(2026, 0, 10, 11, 59, 59) / 1000, // the bucket before
    nowS - 5 * 86_400,
    first, // the oldest bucket's first second
    first + BUCKET - 0.001
  ]
  const outside = [first - 0.001, nowS - 29 * 86_400, nowS + 86_400, 0]
  const client = await connectSensor(t, service, busy)
  await publish(client, `measurements/${busy.sensorId}`, {
    measurements: [...inside, ...outside].map((timestamp, i) => ({ revision: 0, timestamp, value: { i } }))
  })
  await publish(await connectSensor(t, service, elsewhere), `measurements/${elsewhere.sensorId}`, {
    measurements: [{ revision: 0, timestamp: nowS - 10, value: {} }]
  })

  const stream = await openStream(service, networkId, owner)
  const summary = await stream.next()
  t.equal(summary.event, 'summary')
  t.equal(summary.data.generated_at, nowS)
  t.equal(summary.data.bucket_seconds, BUCKET)
  t.equal(summary.data.first_bucket, first)
  const counts = new Array<number>(BUCKETS).fill(0)
  counts[167] = 3
  counts[166] = 1
  counts[Math.floor((nowS - 5 * 86_400 - first) / BUCKET)] = 1
  counts[0] = 2
  const byId = (a: { sensor_identifier: string }, b: { sensor_identifier: string }) => a.sensor_identifier < b.sensor_identifier ? -1 : 1
  t.strictSame([...summary.data.sensors].sort(byId), [
    { sensor_identifier: busy.sensorId, sensor_name: busy.name, counts },
    { sensor_identifier: quiet.sensorId, sensor_name: quiet.name, counts: new Array<number>(BUCKETS).fill(0) }
  ].sort(byId), 'every sensor of the network, none of another; only the last 28 days')
  t.equal(counts.reduce((a, b) => a + b), inside.length)
})

t.test('measurements, log messages and heartbeats are pushed as they commit', async t => {
  const service = await startService(t)
  const owner = await newUser(service)
  const networkId = await newNetwork(service, owner)
  const sensor = await newSensor(service, owner, networkId)
  const otherNetwork = await newNetwork(service, owner)
  const foreign = await newSensor(service, owner, otherNetwork)

  const stream = await openStream(service, networkId, owner)
  const second = await openStream(service, networkId, owner, 'query')
  const otherStream = await openStream(service, otherNetwork, owner)
  t.equal((await stream.next()).event, 'summary')
  t.equal((await second.next()).event, 'summary')
  t.equal((await otherStream.next()).event, 'summary')

  const client = await connectSensor(t, service, sensor)
  const foreignClient = await connectSensor(t, service, foreign)
  const T = Date.UTC(2026, 0, 1) / 1000 - 100

  // another network's sensor, and a refused message: neither is this network's activity
  await publish(foreignClient, `measurements/${foreign.sensorId}`, { measurements: [{ revision: 0, timestamp: T, value: { foreign: true } }] })
  await publish(client, `measurements/${sensor.sensorId}`, 'not json')
  await publish(client, `measurements/${sensor.sensorId}`, {
    measurements: [{ revision: 0, timestamp: T + 0.25, value: { celsius: 21.5 } }, { revision: 0, timestamp: T + 0.5, value: { celsius: 21.75 } }]
  })
  const measurements = await stream.next()
  t.equal(measurements.event, 'measurements', 'the first event after the summary is this network\'s own')
  t.strictSame(measurements.data, {
    sensor_identifier: sensor.sensorId,
    position: Number(measurements.id),
    measurements: [
      { revision: 0, creation_timestamp: T + 0.25, measurement: { celsius: 21.5 } },
      { revision: 0, creation_timestamp: T + 0.5, measurement: { celsius: 21.75 } }
    ]
  })
  const recorded = await http(service, 'GET', `/api/v1/events?stream=sensor-${sensor.sensorId}&type=MeasurementsRecorded`, { token: owner })
  t.equal(measurements.id, String(recorded.body.events[0].position), 'id: the position of the event in the log')
  t.strictSame(await second.next(), measurements, 'every listener of the network gets it')
  const foreignEvent = await otherStream.next()
  t.equal(foreignEvent.event, 'measurements')
  t.equal(foreignEvent.data.sensor_identifier, foreign.sensorId, 'the other network sees its own sensor')

  await publish(client, `log-messages/${sensor.sensorId}`, {
    log_messages: [
      { severity: 'error', revision: 0, timestamp: T + 1, subject: 'The CPU is burning', details: 'Please call the fire department' },
      { severity: 'info', revision: 0, timestamp: T + 2, subject: 'cooler now' }
    ]
  })
  const logs = await stream.next()
  t.equal(logs.event, 'log_messages')
  t.ok(Number(logs.id) > Number(measurements.id), 'ids increase')
  t.strictSame(logs.data, {
    sensor_identifier: sensor.sensorId,
    position: Number(logs.id),
    log_messages: [
      { revision: 0, creation_timestamp: T + 1, severity: 'error', subject: 'The CPU is burning', details: 'Please call the fire department' },
      { revision: 0, creation_timestamp: T + 2, severity: 'info', subject: 'cooler now', details: null }
    ]
  })

  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 0, timestamp: T + 3, success: true }] })
  const heartbeats = await stream.next()
  t.equal(heartbeats.event, 'heartbeats')
  t.strictSame(heartbeats.data, {
    sensor_identifier: sensor.sensorId,
    position: Number(heartbeats.id),
    heartbeats: [{ revision: 0, timestamp: T + 3, success: true }]
  })
  const received = await http(service, 'GET', `/api/v1/events?stream=sensor-${sensor.sensorId}&type=HeartbeatsReceived`, { token: owner })
  t.equal(heartbeats.id, String(received.body.events[0].position))

  // a configuration revision is not sensor activity; the next measurement is the next event
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, { token: owner, body: { sensor_name: sensor.name, network_identifier: networkId, configuration: { a: 1 } } })
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 1, timestamp: T + 4, value: { after: 'put' } }] })
  const last = await stream.next()
  t.equal(last.event, 'measurements')
  t.strictSame(last.data.measurements, [{ revision: 1, creation_timestamp: T + 4, measurement: { after: 'put' } }])
  t.equal(stream.pending, 0)
})

t.test('the summary repeats every STREAM_SUMMARY_INTERVAL_SECONDS of the clock', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const owner = await newUser(service)
  const networkId = await newNetwork(service, owner)
  const sensor = await newSensor(service, owner, networkId)
  const client = await connectSensor(t, service, sensor)
  const stream = await openStream(service, networkId, owner)
  const initial = await stream.next()
  t.equal(initial.event, 'summary')
  t.equal(initial.data.sensors[0].counts.reduce((a: number, b: number) => a + b), 0)

  clock.advance(59_999)
  const nowS = clock.now() / 1000
  await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 0, timestamp: nowS - 1, value: {} }] })
  t.equal((await stream.next()).event, 'measurements', 'no summary before the interval has passed')

  clock.advance(1)
  const periodic = await stream.next()
  t.equal(periodic.event, 'summary', 'the default interval is 60 s')
  t.equal(periodic.data.generated_at, Date.UTC(2026, 0, 1) / 1000 + 60)
  t.equal(periodic.data.sensors[0].counts[167], 1, 'it counts what was recorded since')

  clock.advance(60_000)
  const again = await stream.next()
  t.equal(again.event, 'summary')
  t.equal(again.data.generated_at, Date.UTC(2026, 0, 1) / 1000 + 120)
  t.equal(stream.pending, 0, 'one summary per interval')
})

t.test('a configured interval, and buckets that move with the clock', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { STREAM_SUMMARY_INTERVAL_SECONDS: String(BUCKET) } })
  const owner = await newUser(service)
  const networkId = await newNetwork(service, owner)
  const sensor = await newSensor(service, owner, networkId)
  const start = clock.now() / 1000
  await publish(await connectSensor(t, service, sensor), `measurements/${sensor.sensorId}`, {
    measurements: [{ revision: 0, timestamp: start + 1, value: {} }, { revision: 0, timestamp: start - 27 * 86_400 - 20 * 3600, value: {} }]
  })
  const stream = await openStream(service, networkId, owner)
  const initial = await stream.next()
  t.equal(initial.data.first_bucket, start - 167 * BUCKET)
  t.equal(initial.data.sensors[0].counts[167], 1, 'now, in the last bucket')
  t.equal(initial.data.sensors[0].counts[0], 1, '27 days and 20 hours ago, in the first bucket')

  clock.advance(60_000)
  await publish(await connectSensor(t, service, sensor, { clientId: unique('second') }), `measurements/${sensor.sensorId}`, {
    measurements: [{ revision: 0, timestamp: start + 2, value: {} }]
  })
  t.equal((await stream.next()).event, 'measurements', 'no summary after 60 s when the interval is 4 hours')

  clock.advance(BUCKET * 1000 - 60_000)
  const shifted = await stream.next()
  t.equal(shifted.event, 'summary')
  t.equal(shifted.data.generated_at, start + BUCKET)
  t.equal(shifted.data.first_bucket, start - 166 * BUCKET)
  t.equal(shifted.data.sensors[0].counts[166], 2, 'the same measurements, one bucket further back')
  t.equal(shifted.data.sensors[0].counts[167], 0)
  t.equal(shifted.data.sensors[0].counts.reduce((a: number, b: number) => a + b), 2, 'the oldest bucket fell out of the window')
})
