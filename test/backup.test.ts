import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { verifyChainInParallel } from '../src/store/verify.ts'
import { devicelog } from './helpers/process.ts'
import { connectSensor, createSensor, http, publish, startService, tempDir } from './helpers/service.ts'

// `devicelog backup` end to end: the real service ingesting over MQTT, the CLI as its own
// process, the copy verified and started on.

const T0 = 1767225600 // 2026-01-01T00:00:00Z, Unix seconds
const reading = (i: number) => ({ measurements: [{ revision: 0, timestamp: T0 + i, value: { i } }] })

t.test('a backup taken while a sensor publishes is a verified prefix of the log, and the service starts on it', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  const topic = `measurements/${sensor.sensorId}`
  const acknowledgedBefore = 20
  for (let i = 0; i < acknowledgedBefore; i++) await publish(client, topic, reading(i))
  const before = service.app.store.headPosition

  // Ingest goes on, one QoS 1 message after the other, for as long as the backup runs.
  let acks = acknowledgedBefore
  let ingesting = true
  const ingest = (async () => {
    while (ingesting) {
      const i = acks
      await publish(client, topic, reading(i))
      acks = i + 1
    }
  })()
  const dir = tempDir(t)
  const out = join(dir, 'backup.db')
  const acksAtStart = acks
  const backup = await devicelog(['backup', '--database', service.databasePath, '--out', out])
  const acksDuring = acks - acksAtStart
  ingesting = false
  await ingest
  const after = service.app.store.headPosition

  t.equal(backup.code, 0, backup.stderr)
  const reported = /^backup: (\d+) events, head ([0-9a-f]{64}), (\d+) bytes, chain OK -> (.+)\n$/.exec(backup.stdout)
  t.ok(reported, backup.stdout)
  const [, events, head, bytes, file] = reported!
  const count = Number(events)
  t.ok(acksDuring > 0, `PUBACKs arrived while the backup ran (${acksDuring})`)
  t.ok(before <= count && count <= after, `${before} <= ${count} <= ${after}`)
  t.equal(file, out)
  t.equal(Number(bytes), statSync(out).size)
  t.same(readdirSync(dir), ['backup.db'], 'one file: no -wal or -shm beside it')
  const liveHash = service.app.store.db.prepare('SELECT lower(hex(hash)) FROM events WHERE position = ?').pluck().get(count)
  t.equal(head, liveHash, 'the copy ends where the live log was at that position')

  t.same(await verifyChainInParallel(out), { ok: true, count, head }, 'the copy verifies on its own')

  // Restore: the service on the copy serves what was acknowledged before the backup, and goes on.
  const restored = await startService(t, { env: { DATABASE_PATH: out } })
  const hashAt = (position: number) => restored.app.store.db.prepare('SELECT lower(hex(hash)) FROM events WHERE position = ?').pluck().get(position)
  t.equal(hashAt(count), head, 'the restored log goes on from the copy')
  const measurementsFrom = (timestamp: number) =>
    http(restored, 'GET', `/sensors/${sensor.sensorId}/measurements?creation_timestamp=${timestamp}`, { token: sensor.token })
  const served = await measurementsFrom(T0 - 1)
  t.equal(served.status, 200)
  t.same(served.body.slice(0, acknowledgedBefore), Array.from({ length: acknowledgedBefore }, (_, i) => ({
    revision: 0, creation_timestamp: T0 + i, measurement: { i }
  })))
  const again = await connectSensor(t, restored, sensor)
  await publish(again, topic, reading(1_000_000))
  t.same((await measurementsFrom(T0 + 999_999)).body, [{ revision: 0, creation_timestamp: T0 + 1_000_000, measurement: { i: 1_000_000 } }])
})

t.test('backup refuses an existing --out, a missing database and a missing --out', async t => {
  const service = await startService(t)
  const dir = tempDir(t)
  const existing = join(dir, 'existing.db')
  writeFileSync(existing, 'keep me')
  const [over, missing, noOut] = await Promise.all([
    devicelog(['backup', '--database', service.databasePath, '--out', existing]),
    devicelog(['backup', '--database', join(dir, 'nope.db'), '--out', join(dir, 'copy.db')]),
    devicelog(['backup'], { DATABASE_PATH: service.databasePath })
  ])
  t.equal(over.code, 2)
  t.match(over.stderr, /existing\.db exists: backup writes a new file/)
  t.equal(readFileSync(existing, 'utf8'), 'keep me')
  t.equal(missing.code, 2)
  t.match(missing.stderr, /no database at .*nope\.db/)
  t.equal(noOut.code, 2)
  t.match(noOut.stderr, /backup needs --out/)
  t.same(readdirSync(dir), ['existing.db'], 'nothing written')
})

t.test('a copy whose chain does not verify is removed, and backup fails', async t => {
  const service = await startService(t)
  const sensor = await createSensor(service)
  const client = await connectSensor(t, service, sensor)
  for (let i = 0; i < 5; i++) await publish(client, `measurements/${sensor.sensorId}`, reading(i))
  await client.endAsync()
  await service.close()
  const db = new Database(service.databasePath)
  db.exec('DROP TRIGGER events_are_append_only_update')
  const position = db.prepare(`SELECT position FROM event_rows WHERE type = 'MeasurementsRecorded' ORDER BY position LIMIT 1 OFFSET 2`).pluck().get() as number
  db.prepare(`UPDATE events SET data = replace(data, '"i":2', '"i":20') WHERE position = ?`).run(position)
  db.close()
  const dir = tempDir(t)
  const out = join(dir, 'copy.db')
  const broken = await devicelog(['backup', '--database', service.databasePath, '--out', out])
  t.equal(broken.code, 1)
  t.equal(broken.stdout, `BROKEN at position ${position}: hash does not match the row and its predecessor; ${out} removed\n`)
  t.same(readdirSync(dir), [], 'no copy left behind')
})
