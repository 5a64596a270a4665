import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { backupDatabase } from '../src/store/backup.ts'
import { devicelog } from './helpers/process.ts'
import { projectionRows } from './helpers/projection-rows.ts'
import { connectSensor, createSensor, http, publish, startService, tempDir } from './helpers/service.ts'

// `devicelog replay --until`: the whole service as it was at a position or an instant, compared
// with a copy of the live database taken at that moment.

const T0 = Date.UTC(2026, 0, 1)
const reading = (i: number) => ({ measurements: [{ revision: 1, timestamp: T0 / 1000 + i, value: { i } }] })
const hashAt = (path: string, position: number) => {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare('SELECT lower(hex(hash)) FROM events WHERE position = ?').pluck().get(position) as string
  } finally {
    db.close()
  }
}
const query = (path: string, sql: string) => {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare(sql).pluck().all()
  } finally {
    db.close()
  }
}

t.test('replay --until a position or an instant equals the live projections as they were then', async t => {
  const clock = new ManualClock(T0)
  const service = await startService(t, { clock })
  const dir = tempDir(t)

  // Before: a sensor revised once, connected, reporting.
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'first', network_identifier: sensor.networkId, configuration: { interval: 10 } }
  })
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 10; i++) await publish(client, `measurements/${sensor.sensorId}`, reading(i))
  await publish(client, `heartbeats/${sensor.sensorId}`, { heartbeats: [{ revision: 1, timestamp: T0 / 1000 + 20, success: true }] })
  const then = join(dir, 'then.db')
  const copied = await backupDatabase(service.databasePath, then)
  t.ok(copied.ok)
  const position = service.app.store.headPosition
  t.equal(copied.ok && copied.count, position, 'the copy is the live database at that position')

  // After, an hour later: revised again, more readings, a second sensor, the first one gone.
  clock.advance(3_600_000)
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'second', network_identifier: sensor.networkId, configuration: { interval: 60 } }
  })
  for (let i = 10; i < 20; i++) await publish(client, `measurements/${sensor.sensorId}`, reading(i))
  const later = await createSensor(service, { token: sensor.token, networkId: sensor.networkId })
  await client.endAsync()
  await service.close()
  const live = service.databasePath
  t.ok(query(live, 'SELECT max(position) FROM events')[0] as number > position + 10)
  t.notSame(projectionRows(live), projectionRows(then), 'the live projections moved on')

  const byPosition = join(dir, 'by-position.db')
  const replayed = await devicelog(['replay', '--database', live, '--out', byPosition, '--until', String(position)])
  t.equal(replayed.code, 0, replayed.stderr)
  t.match(replayed.stdout, new RegExp(`^replayed ${position} events into .* \\(until position ${position}\\) in .* \\(\\d+ events/s\\)\\n$`))
  t.same(projectionRows(byPosition), projectionRows(then), 'every projection as the live service had it at that position')
  t.same(query(byPosition, 'SELECT max(position) FROM events'), [position], 'the log ends at that position')
  t.notOk(query(byPosition, 'SELECT name FROM streams').includes(`sensor-${later.sensorId}`), 'and names nothing recorded after it')
  const verified = await devicelog(['verify', '--database', byPosition])
  t.equal(verified.code, 0, verified.stdout)
  t.match(verified.stdout, `OK ${position} events, head ${position}:${hashAt(live, position)} `, 'its head is the live log\'s at that position')

  // An instant: the events recorded by then. Everything before the hour was recorded at T0.
  const byInstant = join(dir, 'by-instant.db')
  const instant = await devicelog(['replay', '--database', live, '--out', byInstant, '--until', new Date(T0 + 1_800_000).toISOString()])
  t.equal(instant.code, 0, instant.stderr)
  t.match(instant.stdout, `(until position ${position})`)
  t.same(projectionRows(byInstant), projectionRows(then), 'the same as at that position')
  const offset = await devicelog(['replay', '--database', live, '--out', join(dir, 'offset.db'), '--until', '2026-01-01T01:00:00+01:00'])
  t.match(offset.stdout, `(until position ${position})`, 'an instant with an offset is that instant (T0 itself: the events recorded at it count)')
})

t.test('replay --until reads up to the point and no further, and refuses points outside the log', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const position = service.app.store.headPosition
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'again', network_identifier: sensor.networkId, configuration: { interval: 1 } }
  })
  await service.close()
  // Rows past the point that no fold could read: a replay that read them would fail.
  const db = new Database(service.databasePath)
  db.exec('DROP TRIGGER events_are_append_only_update')
  db.prepare("UPDATE events SET data = 'not json' WHERE position > ?").run(position)
  db.close()
  const dir = tempDir(t)
  const whole = await devicelog(['replay', '--database', service.databasePath, '--out', join(dir, 'whole.db')])
  t.not(whole.code, 0, 'the whole log cannot be folded')
  const out = join(dir, 'until.db')
  const until = await devicelog(['replay', '--database', service.databasePath, '--out', out, '--until', String(position)])
  t.equal(until.code, 0, until.stderr)
  t.same(query(out, 'SELECT max(position) FROM events'), [position])
  t.same(query(out, 'SELECT revision FROM sensors'), [0], 'the sensor as it was registered, before the revision')

  const [past, before, bad] = await Promise.all([
    devicelog(['replay', '--database', service.databasePath, '--out', join(dir, 'a.db'), '--until', String(position + 100)]),
    devicelog(['replay', '--database', service.databasePath, '--out', join(dir, 'b.db'), '--until', '2000-01-01T00:00:00Z']),
    devicelog(['replay', '--database', service.databasePath, '--out', join(dir, 'c.db'), '--until', 'yesterday'])
  ])
  t.equal(past.code, 2)
  t.match(past.stderr, /the log holds positions 1 to \d+/)
  t.equal(before.code, 2)
  t.match(before.stderr, /nothing was recorded by then \(the log begins at 2026-01-01T00:00:00.000Z\)/)
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--until takes a position .* or an ISO 8601 instant/)
})
