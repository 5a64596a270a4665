// Abuse costs the abuser, not the log: floods of refused CONNECTs and publishes add a bounded
// number of events, a guessing address is held and then blocked at the socket, and a good device
// publishes throughout. Real broker, real mqtt.js clients, the service's ManualClock.
import { randomUUID } from 'node:crypto'
import mqtt from 'mqtt'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { FULL_RECORDS_PER_WINDOW } from '../src/broker/refusal-ledger.ts'
import { connectSensor, createSensor, publish, startService, type Service } from './helpers/service.ts'

const T0 = 1767225600
const measurement = (value: number) => JSON.stringify({ measurements: [{ revision: 0, timestamp: T0 + value, value: { n: value } }] })

/** One CONNECT with these credentials; resolves with the CONNACK's return code, or 'closed' when the socket was closed first. */
function attempt (service: Service, username: string, password: string): Promise<number | 'closed'> {
  return new Promise(resolve => {
    const client = mqtt.connect(service.mqttUrl, { username, password, reconnectPeriod: 0, connectTimeout: 60_000 })
    let code: number | 'closed' = 'closed'
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

t.test('a CONNECT flood of thousands adds a bounded number of events; the guessing address is held, then blocked; a connected device publishes throughout', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const sensor = await createSensor(service)
  const device = await connectSensor(t, service, sensor)
  let published = 0
  let flooding = true
  const publishing = (async () => {
    while (flooding) await publish(device, `measurements/${sensor.sensorId}`, measurement(published++))
  })()

  // Failures 1 to 5 within the minute: CONNACK 4 at once.
  const first = await Promise.all(Array.from({ length: 5 }, () => attempt(service, sensor.sensorId, 'guess')))
  t.same(first, [4, 4, 4, 4, 4], 'the first failures are refused at once')
  // 6 to 10: CONNACK 4 held a second; the 11th blocks the address.
  const held = Array.from({ length: 6 }, (_, i) => attempt(service, i % 2 === 0 ? sensor.sensorId : randomUUID(), 'guess'))
  await committed(service, 'SourceBlocked')
  clock.advance(1000)
  t.same(await Promise.all(held), [4, 4, 4, 4, 4, 4], 'held ones are refused after the second')

  // The flood: every further connection from the address is closed at the socket.
  const flood = 3000
  const publishedBefore = published
  let closedAtSocket = 0
  for (let start = 0; start < flood; start += 200) {
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => attempt(service, i % 2 === 0 ? sensor.sensorId : randomUUID(), 'guess')))
    closedAtSocket += outcomes.filter(o => o === 'closed').length
  }
  t.equal(closedAtSocket, flood, 'a blocked address gets no CONNACK at all')
  const publishedDuring = published - publishedBefore
  flooding = false
  await publishing
  t.ok(publishedDuring > 0, `the connected device published throughout (${publishedDuring} acknowledged during the flood)`)
  t.ok(device.connected, 'and stayed connected')

  // The minute ends: one summary of what was only counted.
  const summarized = committed(service, 'RefusalsSummarized')
  clock.advance(60_000)
  await summarized
  const ofType = (type: string) => service.app.store.read({ type })
  const refused = ofType('ConnectionRefused')
  const blocked = ofType('SourceBlocked')
  const summaries = ofType('RefusalsSummarized').map(e => e.data as any)
  t.ok(refused.length <= 11, `at most one ConnectionRefused per distinct failure before the block (${refused.length})`)
  t.equal(blocked.length, 1, 'one SourceBlocked')
  t.match(blocked[0]!.data, { address: '127.0.0.1', failures: 11 })
  t.match(summaries.find(s => s.reason === 'source_blocked'), { refusal: 'ConnectionRefused', source: '127.0.0.1', count: flood }, 'the flood is one summary with its count')
  t.equal(summaries.filter(s => s.reason === 'bad_credentials').reduce((n, s) => n + s.count, 0) + refused.length, 11,
    'every failed CONNECT is recorded or counted')
  const added = refused.length + blocked.length + summaries.length
  t.ok(added <= 15, `${5 + 6 + flood} refused CONNECTs added ${added} events`)
  t.equal(ofType('MeasurementsRecorded').length, published, 'every acknowledged measurement is in the log')
})

t.test('a device flooding refused publishes: identical ones are counted, distinct ones recorded up to a budget', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock, env: { MQTT_MAX_REFUSALS_PER_MINUTE: '100000' } })
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  const topic = `measurements/${sensor.sensorId}`
  // 500 identical refusals: the same bad payload.
  for (let i = 0; i < 500; i++) await publish(client, topic, 'not json')
  // 100 distinct ones: each a different unknown field.
  for (let i = 0; i < 100; i++) await publish(client, topic, JSON.stringify({ ...JSON.parse(measurement(i)), [`field${i}`]: 1 }))
  await publish(client, topic, measurement(1))
  t.ok(client.connected, 'never cut off (the limit is raised for this test)')

  const summarized = committed(service, 'RefusalsSummarized')
  clock.advance(60_000)
  await summarized
  const rejected = service.app.store.read({ type: 'MessageRejected' })
  const summaries = service.app.store.read({ type: 'RefusalsSummarized' }).map(e => e.data as any)
  t.equal(rejected.length, FULL_RECORDS_PER_WINDOW, 'distinct refusals recorded in full up to the budget')
  t.match(summaries.find(s => s.detail !== null && s.reason === 'invalid_json'), { count: 499, topics: [topic] }, 'the 499 identical ones: one summary')
  t.match(summaries.find(s => s.detail === null), { reason: 'invalid_payload', count: 100 - (FULL_RECORDS_PER_WINDOW - 1) }, 'the rest past the budget: one summary')
  t.equal(rejected.length + summaries.reduce((n, s) => n + s.count, 0), 600, 'every refusal is recorded or counted')
  t.equal(service.app.store.read({ type: 'MeasurementsRecorded' }).length, 1, 'the good message after them is recorded')

  // A new window: the same flood goes on as repeats, one summary a minute.
  for (let i = 0; i < 50; i++) await publish(client, topic, 'not json')
  const again = committed(service, 'RefusalsSummarized')
  clock.advance(60_000)
  await again
  t.equal(service.app.store.read({ type: 'MessageRejected' }).length, FULL_RECORDS_PER_WINDOW, 'nothing more recorded in full')
  t.match(service.app.store.read({ type: 'RefusalsSummarized' }).at(-1)!.data, { reason: 'invalid_json', count: 50 })
})
