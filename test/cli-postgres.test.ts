// `devicelog replay | verify | backup | export` on a PostgreSQL log: a live run's log, moved row for
// row (hashes included) into PostgreSQL, answers every command as its SQLite original does.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import t, { type Test } from 'tap'
import { PostgresLog } from '../src/store/postgres/log.ts'
import { ManualClock } from '../src/clock.ts'
import { withPostgres } from './helpers/postgres.ts'
import { devicelog } from './helpers/process.ts'
import { projectionRows } from './helpers/projection-rows.ts'
import { connectSensor, createSensor, http, publish, startService } from './helpers/service.ts'

/** A live run's log: accounts, a sensor and its revision, reports, a refused message. */
async function liveLog (t: Test) {
  const service = await startService(t)
  const sensor = await createSensor(service, { configuration: { interval: 5 } })
  await http(service, 'PUT', `/sensors/${sensor.sensorId}`, {
    token: sensor.token, body: { sensor_name: 'renamed', network_identifier: sensor.networkId, configuration: { interval: 10 } }
  })
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 10; i++) {
    await publish(client, `measurements/${sensor.sensorId}`, { measurements: [{ revision: 1, timestamp: 1000 + i, value: { i } }] })
  }
  await publish(client, `measurements/${sensor.sensorId}`, 'not json')
  await client.endAsync()
  await service.close()
  return { path: service.databasePath, dir: service.dir, sensor }
}

/** The SQLite log's rows, unchanged, into a PostgreSQL log's table (as a node would have written them). */
async function moveIntoPostgres (path: string, url: string): Promise<void> {
  const created = await PostgresLog.open({ url, clock: new ManualClock() })
  await created.close()
  const source = new Database(path, { readonly: true })
  const rows = source.prepare(`SELECT e.position, s.name AS stream, e.stream_version, y.name AS type, e.schema_version, e.recorded_at, e.data, e.metadata, e.hash
    FROM events e JOIN streams s ON s.id = e.stream JOIN event_types y ON y.id = e.type ORDER BY e.position`).raw().all() as unknown[][]
  source.close()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const columns = Array.from({ length: 9 }, (_, i) => rows.map(row => row[i]))
  await client.query(`INSERT INTO events (position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::integer[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])`, columns)
  await client.end()
}

t.test('a PostgreSQL log replays, verifies, backs up and exports as its SQLite original', async t => {
  const [{ path, dir, sensor }, url] = await Promise.all([liveLog(t), withPostgres(t)])
  await moveIntoPostgres(path, url)

  const original = await devicelog(['verify', '--database', path])
  const copied = await devicelog(['verify', '--database', url])
  t.equal(copied.code, 0, copied.stderr)
  const head = /^OK (\d+) events, head (\d+:[0-9a-f]{64})/.exec(original.stdout)
  t.ok(head, original.stdout)
  t.match(copied.stdout, new RegExp(`^OK ${head![1]} events, head ${head![2]} \\(\\d+ events/s\\)`), 'the same chain, the same head')
  t.match(copied.stderr, new RegExp(`copied ${head![1]} events from PostgreSQL`))

  const out = join(dir, 'from-postgres.db')
  const replayed = await devicelog(['replay', '--database', url, '--out', out])
  t.equal(replayed.code, 0, replayed.stderr)
  t.same(projectionRows(out), projectionRows(path), 'replayed from PostgreSQL: the projections of the live run')

  const backup = join(dir, 'backup.db')
  const backedUp = await devicelog(['backup', '--database', url, '--out', backup])
  t.equal(backedUp.code, 0, backedUp.stderr)
  t.match(backedUp.stdout, new RegExp(`^backup: ${head![1]} events, head ${head![2]!.split(':')[1]}, \\d+ bytes, chain OK`))

  const stream = `sensor-${sensor.sensorId}`
  const exported = await devicelog(['export', '--database', url, '--stream', stream])
  t.equal(exported.code, 0, exported.stderr)
  t.equal(exported.stdout, (await devicelog(['export', '--database', path, '--stream', stream])).stdout, 'export: the same NDJSON')
  t.ok(exported.stdout.split('\n').filter(Boolean).length >= 11, 'the sensor\'s events')

  // One row edited in PostgreSQL: verify names it and fails.
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  await client.query("UPDATE events SET data = replace(data, '\"i\":3', '\"i\":30') WHERE data LIKE '%\"i\":3}%'")
  const edited = await client.query<{ position: string }>("SELECT position FROM events WHERE data LIKE '%\"i\":30%'")
  await client.end()
  t.equal(edited.rows.length, 1, 'one measurement edited')
  const broken = await devicelog(['verify', '--database', url])
  t.equal(broken.code, 1)
  t.match(broken.stdout, new RegExp(`^BROKEN at position ${edited.rows[0]!.position}: hash does not match`))
})

t.test('a PostgreSQL database without a log, or unreachable, is a clear error', async t => {
  const url = await withPostgres(t)
  const empty = await devicelog(['verify', '--database', url])
  t.equal(empty.code, 2)
  t.match(empty.stderr, /cannot read the log from PostgreSQL: this PostgreSQL database holds no devicelog log/)
  const nowhere = await devicelog(['export', '--database', url.replace(/port=\d+/, 'port=1')])
  t.equal(nowhere.code, 2)
  t.match(nowhere.stderr, /cannot read the log from PostgreSQL/)
})
