import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import t from 'tap'
import type { DomainEvent } from '../events/index.ts'
import { ManualClock } from '../src/clock.ts'
import { EventStore, type StoreLog } from '../src/store/event-store.ts'
import { verifyChainInParallel } from '../src/store/verify.ts'
import { storageCause } from '../src/store/writer.ts'
import { connectSensor, createSensor, http, publish, startService, tempDir, type Service } from './helpers/service.ts'
import { testWithin } from './helpers/within.ts'

// A full disk, simulated: SQLite's max_page_count caps the log's file on the writer's
// connection, and raising it again is the disk freed. The log is append-only, so nothing is deleted.

const within = testWithin(60_000)
const FULL = 'the disk is full (SQLITE_FULL)'
/** SQLite's own ceiling: as good as no cap. */
const NO_CAP = 0xfffffffe
/** Larger than a page (4 KB) many times over: a sensor with it needs new pages, however full the last ones are. */
const bigConfiguration = { notes: 'x'.repeat(64 * 1024) }

const measurement = (sensorId: string, i: number) => [
  `measurements/${sensorId}`,
  JSON.stringify({ measurements: [{ revision: 0, timestamp: 1_700_000_000 + i, value: { i, padding: 'p'.repeat(200) } }] })
] as const

const postSensor = (service: Service, token: string, networkId: string, name: string) =>
  http(service, 'POST', '/sensors', { token, body: { sensor_name: name, network_identifier: networkId, configuration: bigConfiguration } })

/** Every measurement `i` of the log, through the audit feed. */
async function recordedMeasurements (service: Service, token: string): Promise<number[]> {
  const recorded: number[] = []
  for (let after = 0; ;) {
    const page = await http(service, 'GET', `/api/v1/events?type=MeasurementsRecorded&limit=1000&after=${after}`, { token })
    if (page.status !== 200) throw new Error(`GET /api/v1/events: ${page.status}`)
    if (page.body.events.length === 0) return recorded
    for (const event of page.body.events) recorded.push(event.data.measurements[0].value.i)
    after = page.body.next_after
  }
}

t.test('SQLite result codes name their cause; a row\'s own failure is not the storage\'s', async t => {
  t.equal(storageCause('SQLITE_FULL'), FULL)
  t.equal(storageCause('SQLITE_READONLY'), 'the database is read-only (SQLITE_READONLY)')
  t.equal(storageCause('SQLITE_READONLY_DBMOVED'), 'the database is read-only (SQLITE_READONLY_DBMOVED)')
  t.equal(storageCause('SQLITE_IOERR_FSYNC'), 'the disk reported an I/O error (SQLITE_IOERR_FSYNC)')
  t.equal(storageCause('SQLITE_BUSY'), 'the database is busy (SQLITE_BUSY)')
  t.equal(storageCause('SQLITE_LOCKED_SHAREDCACHE'), 'the database is busy (SQLITE_LOCKED_SHAREDCACHE)')
  t.equal(storageCause('SQLITE_CORRUPT'), 'SQLITE_CORRUPT')
  t.equal(storageCause('SQLITE_CONSTRAINT_UNIQUE'), undefined)
  t.equal(storageCause(undefined), undefined)
})

within('a full disk: writes get 503 naming it, reads work, /status says degraded, devices are not acknowledged; freed, it records again by itself', async t => {
  const clock = new ManualClock()
  const service = await startService(t, { clock })
  const { store } = service.app
  const sensor = await createSensor(service)
  const acknowledgedSensors = [sensor.sensorId]
  t.strictSame((await http(service, 'GET', '/status')).body.store, { status: 'ok' })

  // Room for a few dozen small measurements, then the disk is full.
  const pages = store.db.pragma('page_count', { simple: true }) as number
  t.equal(await store.setMaxPageCount(pages + 8), pages + 8)
  clock.advance(1000)
  const fullSince = new Date(clock.now()).toISOString()

  let device: MqttClient = await connectSensor(t, service, sensor)
  const acknowledged: number[] = []
  let refused: number | undefined
  for (let i = 0; refused === undefined && i < 5000; i++) {
    const [topic, payload] = measurement(sensor.sensorId, i)
    await publish(device, topic, payload).then(() => acknowledged.push(i), () => { refused = i })
  }
  t.not(refused, undefined, 'the device filled the disk: a QoS 1 message was not acknowledged (the broker closed its connection)')
  t.ok(acknowledged.length > 10, `${acknowledged.length} messages were acknowledged before it was full`)
  t.equal(device.connected, false)

  const write = await postSensor(service, sensor.token, sensor.networkId, 'while-full')
  t.equal(write.status, 503)
  t.strictSame(write.body, { detail: `the log cannot record this now: ${FULL}` })
  const sensorName = (await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: sensor.token })).body.sensor_name as string
  const again = await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: sensorName, network_identifier: sensor.networkId, configuration: bigConfiguration }
  })
  t.equal(again.status, 503, 'every write that needs room, not only the one that found the disk full')
  t.equal(again.body.detail, `the log cannot record this now: ${FULL}`)

  const status = await http(service, 'GET', '/status')
  t.equal(status.status, 200)
  t.strictSame(status.body.store, { status: 'degraded', cause: FULL, since: fullSince }, 'since: the first failure, not the latest')
  t.match(status.body, { environment: 'development', commit_sha: 'unknown', branch_name: 'unknown', start_timestamp: Number }, "the reference's fields stay")

  t.equal((await http(service, 'GET', `/sensors/${sensor.sensorId}`, { token: sensor.token })).status, 200, 'reads work')
  const listed = await http(service, 'GET', `/networks/${sensor.networkId}/sensors`, { token: sensor.token })
  t.equal(listed.status, 200)
  t.strictSame(listed.body.map((s: { sensor_identifier: string }) => s.sensor_identifier), acknowledgedSensors, 'the refused sensor is not there')
  const page = await http(service, 'GET', `/sensors/${sensor.sensorId}/measurements`, { token: sensor.token })
  t.equal(page.status, 200)
  t.equal(page.body.length, Math.min(64, acknowledged.length))
  t.strictSame(await recordedMeasurements(service, sensor.token), acknowledged, 'the log holds what was acknowledged, nothing refused')

  // The disk is freed: nothing restarts, the next write simply commits.
  t.ok(await store.setMaxPageCount(NO_CAP) > pages + 8)
  const created = await postSensor(service, sensor.token, sensor.networkId, 'after-freeing')
  t.equal(created.status, 201)
  acknowledgedSensors.push(created.body.sensor_identifier)
  t.strictSame((await http(service, 'GET', '/status')).body.store, { status: 'ok' })

  // The device reconnects and sends what was not acknowledged, as it would.
  device = await connectSensor(t, service, sensor)
  const [topic, payload] = measurement(sensor.sensorId, refused!)
  await publish(device, topic, payload)
  acknowledged.push(refused!)
  for (let i = refused! + 1; i < refused! + 5; i++) {
    const [topic, payload] = measurement(sensor.sensorId, i)
    await publish(device, topic, payload)
    acknowledged.push(i)
  }

  const sensors = await http(service, 'GET', `/networks/${sensor.networkId}/sensors`, { token: sensor.token })
  t.strictSame(sensors.body.map((s: { sensor_identifier: string }) => s.sensor_identifier).sort(), [...acknowledgedSensors].sort())
  t.strictSame(await recordedMeasurements(service, sensor.token), acknowledged, 'every acknowledged message is in the log, once')
  const path = service.databasePath
  await service.close()
  t.match(await verifyChainInParallel(path), { ok: true, count: Number }, 'the hash chain is intact')
})

within('the store tells a storage fault once per episode, and its end once', async t => {
  const path = join(tempDir(t), 'log.db')
  const told: Array<[string, string, object]> = []
  const log: StoreLog = {
    error: (details, message) => { told.push(['error', message, details]) },
    warn: (details, message) => { told.push(['warn', message, details]) },
    info: (details, message) => { told.push(['info', message, details]) }
  }
  const clock = new ManualClock()
  const store = await EventStore.open({ path, projections: { module: new URL('./helpers/names-projection.ts', import.meta.url), export: 'names1' }, clock, log })
  t.teardown(() => store.close())
  const metadata = { actor: 'system', correlation_id: 'test' }
  const network = (name: string): DomainEvent => ({
    type: 'NetworkCreated',
    data: { network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', network_name: name, created_by: 'a8323361-3c22-4f07-8c14-74bb7e8ec3a2' }
  })
  const big = (i: number) => network(`${i}-${'n'.repeat(16 * 1024)}`)

  const episode = async (first: number): Promise<number> => {
    await store.setMaxPageCount(1)
    // Each needs new pages: the first fails, and so does every one after it, alone or grouped.
    const failures = await Promise.allSettled([store.append('network-a', [big(first)], { metadata })])
    const grouped = await Promise.allSettled([1, 2, 3].map(i => store.append(`network-${i}`, [big(first + i)], { metadata })))
    const alone = await Promise.allSettled([store.append('network-b', [big(first + 4)], { metadata })])
    for (const result of [...failures, ...grouped, ...alone]) t.match(result, { status: 'rejected', reason: { statusCode: 503, message: `the log cannot record this now: ${FULL}` } })
    t.match(store.health, { status: 'degraded', cause: FULL })
    t.equal(store.read().length, first / 10, 'reads work; nothing of the failed groups is there')
    await store.setMaxPageCount(NO_CAP)
    await store.append('network-c', [network(String(first))], { metadata })
    t.strictSame(store.health, { status: 'ok' })
    return first + 10
  }
  await store.append('network-c', [network('start')], { metadata })
  await episode(10)
  t.match(told, [
    ['warn', /the event log cannot record: the disk is full \(SQLITE_FULL\)/, { cause: FULL, code: 'SQLITE_FULL' }],
    ['info', 'the event log records again', { cause: FULL }]
  ])
  t.equal(told.length, 2, 'three failed groups of five units, one warning')
  await episode(20)
  t.equal(told.length, 4, 'a new episode is told again')
  t.match(await verifyChainInParallel(path), { ok: true, count: 3 })
})
