import { join } from 'node:path'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { devicelog } from './helpers/process.ts'
import { projectionRows } from './helpers/projection-rows.ts'
import { connectSensor, createSensor, http, publish, startService, tempDir } from './helpers/service.ts'

/** A database with a bit of everything: accounts, sensors, revisions, reports, refusals. */
async function liveDatabase (t: Test) {
  const service = await startService(t)
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'renamed', network_identifier: sensor.networkId, configuration: { interval: 10 } }
  })
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 20; i++) {
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 1, timestamp: 1000 + i, value: { i } }] })
  }
  await publish(client, `log-messages/${sensor.sensorId}`, { log_messages: [
    { severity: 'warning', revision: 1, timestamp: 5, subject: 'hot' }, { severity: 'error', revision: 1, timestamp: 6, subject: 'burning', details: 'call' }
  ] })
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 1, timestamp: 7, success: true }] })
  await publish(client, `measurements/${sensor.sensorId}`, 'not json')
  await client.endAsync()
  await service.close()
  return { path: service.databasePath, sensor, dir: service.dir }
}

t.test('replay rebuilds exactly the projections of the live run', async t => {
  const { path, dir } = await liveDatabase(t)
  const out = join(dir, 'replayed.db')
  const replayed = await devicelog(['replay', '--database', path, '--out', out])
  t.equal(replayed.code, 0, replayed.stderr)
  t.match(replayed.stdout, /^replayed 3\d events into .* \(\d+ events\/s\)/)
  t.match(replayed.stderr, /100% \| 3\d\/3\d events/, 'a progress bar')
  const live = projectionRows(path)
  t.ok(live.measurements!.length === 20 && live.log_aggregates!.length === 2 && live.device_rejections!.length === 1)
  t.same(projectionRows(out), live)
  t.match((await devicelog(['verify', '--database', out])).stdout, /^OK/)
  const again = await devicelog(['replay', '--database', path, '--out', out])
  t.equal(again.code, 2, 'replay never writes over an existing database')
})

t.test('verify says OK, or names the first edited row and fails', async t => {
  const { path } = await liveDatabase(t)
  const ok = await devicelog(['verify'], { DATABASE_PATH: path })
  t.equal(ok.code, 0)
  t.match(ok.stdout, /^OK (3\d) events, head \1:[0-9a-f]{64} \(\d+ events\/s\)\ncheckpoints: none\npublic key: [A-Za-z0-9+/]{43}= \(.+\.checkpoint-key\.pem\)\n$/)
  const db = new Database(path)
  db.exec('DROP TRIGGER events_are_append_only_update')
  db.prepare("UPDATE events SET data = replace(data, '\"i\":7', '\"i\":70') WHERE position IN (SELECT position FROM event_rows WHERE type = 'MeasurementsRecorded')").run()
  const position = db.prepare(`SELECT position FROM events WHERE data LIKE '%"i":70%'`).pluck().get()
  db.close()
  const broken = await devicelog(['verify', '--database', path])
  t.equal(broken.code, 1)
  t.equal(broken.stdout, `BROKEN at position ${position}: hash does not match the row and its predecessor\n`)
})

t.test('export writes NDJSON filtered by stream, type, position and time', async t => {
  const { path, sensor } = await liveDatabase(t)
  const lines = async (...args: string[]) => {
    const result = await devicelog(['export', '--database', path, ...args])
    t.equal(result.code, 0, result.stderr)
    return result.stdout.trim().split('\n').filter(Boolean).map(line => JSON.parse(line))
  }
  const all = await lines()
  t.same(all.map(e => e.position), all.map((_, i) => i + 1))
  const measurements = await lines('--type', 'MeasurementsRecorded')
  t.equal(measurements.length, 20)
  t.ok(measurements.every(e => e.type === 'MeasurementsRecorded' && e.stream_id === `sensor-${sensor.sensorId}`))
  const stream = await lines('--stream', `sensor-${sensor.sensorId}`, '--type', 'SensorConfigurationRevised')
  t.same(stream.map(e => e.data.revision), [1])
  const window = await lines('--after', '3', '--before', '6')
  t.same(window.map(e => e.position), [4, 5])
  const recordedAt = all[0].recorded_at as string
  t.equal((await lines('--since', recordedAt, '--until', recordedAt)).length, all.filter(e => e.recorded_at === recordedAt).length)
  t.same(await lines('--until', '2000-01-01T00:00:00Z'), [])
  const bad = await devicelog(['export', '--database', path, '--after', 'x'])
  t.equal(bad.code, 2)
})

t.test('a missing database or an unknown command is a clear error', async t => {
  const dir = tempDir(t)
  const missing = await devicelog(['verify', '--database', join(dir, 'nope.db')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /no database at/)
  const unknown = await devicelog(['frobnicate'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command frobnicate/)
})
