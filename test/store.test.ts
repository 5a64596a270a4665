import { join } from 'node:path'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import type { DomainEvent } from '../events/index.ts'
import { ManualClock } from '../src/clock.ts'
import { InvalidEvent, StreamVersionConflict } from '../src/errors.ts'
import { openDatabase } from '../src/store/database.ts'
import { EventStore } from '../src/store/event-store.ts'
import type { Projection } from '../src/store/projection.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { verifyChain, verifyChainInSteps } from '../src/store/verify.ts'
import { tempDir } from './helpers/service.ts'

const metadata = { actor: 'system', correlation_id: 'test' }
const network = (name: string): DomainEvent => ({
  type: 'NetworkCreated',
  data: { network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', network_name: name, created_by: 'a8323361-3c22-4f07-8c14-74bb7e8ec3a2' }
})

/** A projection that counts network names, to watch folds and rebuilds. */
const namesProjection = (version: number): Projection => ({
  name: 'test_names',
  version,
  handles: ['NetworkCreated'],
  tables: ['test_names'],
  ddl: 'CREATE TABLE IF NOT EXISTS test_names (name TEXT PRIMARY KEY, seen INTEGER NOT NULL, version INTEGER NOT NULL)',
  prepare (db) {
    const upsert = db.prepare(`INSERT INTO test_names (name, seen, version) VALUES (?, 1, ${version})
      ON CONFLICT (name) DO UPDATE SET seen = seen + 1`)
    return (event: RecordedEvent) => { if (event.type === 'NetworkCreated') upsert.run(event.data.network_name) }
  }
})

function openStore (t: Test, path: string, projections: Projection[] = [namesProjection(1)]) {
  const clock = new ManualClock()
  const store = new EventStore(openDatabase(path), projections, clock)
  t.teardown(() => store.close())
  return store
}

t.test('appends get consecutive positions and stream versions, and a hash chain', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = openStore(t, path)
  const first = await store.append('network-a', [network('a'), network('b')], { expectedVersion: 'no_stream', metadata })
  const second = await store.append('network-b', [network('c')], { metadata })
  t.same(first.map(e => [e.position, e.stream_version]), [[1, 0], [2, 1]])
  t.same(second.map(e => [e.position, e.stream_version]), [[3, 0]])
  t.same(store.read({ stream: 'network-a' }).map(e => e.position), [1, 2])
  t.same(store.read({ after: 1, limit: 1 }).map(e => e.position), [2])
  t.same(store.read({ type: 'NetworkCreated', before: 3 }).map(e => e.position), [1, 2])
  t.match(verifyChain(store.db), { ok: true, count: 3 })
  t.same(store.db.prepare('SELECT name, seen FROM test_names ORDER BY name').all(), [
    { name: 'a', seen: 1 }, { name: 'b', seen: 1 }, { name: 'c', seen: 1 }
  ], 'projections are folded in the same transaction')
})

t.test('an acknowledged append is committed: another connection sees it at once', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = openStore(t, path)
  const reader = new Database(path, { readonly: true })
  t.teardown(() => reader.close())
  const [event] = await store.append('network-a', [network('a')], { metadata })
  t.equal(reader.prepare('SELECT count(*) FROM events WHERE position = ?').pluck().get(event!.position), 1)
})

t.test('a wrong expected version is a conflict and writes nothing', async t => {
  const store = openStore(t, join(tempDir(t), 'log.db'))
  await store.append('network-a', [network('a')], { expectedVersion: 'no_stream', metadata })
  await t.rejects(store.append('network-a', [network('b')], { expectedVersion: 'no_stream', metadata }), StreamVersionConflict)
  await t.rejects(store.append('network-a', [network('b')], { expectedVersion: 5, metadata }), { statusCode: 409, message: /expected version 5, found 0/ })
  await store.append('network-a', [network('b')], { expectedVersion: 0, metadata })
  t.equal(store.read().length, 2)
})

t.test('units queued together commit in one group; one that fails is rolled back alone', async t => {
  const store = openStore(t, join(tempDir(t), 'log.db'))
  const groups: number[][] = []
  store.subscribe(events => groups.push(events.map(e => e.position)))
  const results = await Promise.allSettled([
    store.append('network-a', [network('a')], { metadata }),
    store.transact(tx => {
      tx.append('network-b', [network('b')], { metadata })
      throw new Error('the decider said no')
    }),
    store.append('network-c', [network('c')], { metadata })
  ])
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.same(groups, [[1, 2]], 'one commit, positions without a gap')
  t.same(store.read().map(e => e.stream_id), ['network-a', 'network-c'])
  t.same(store.db.prepare('SELECT name FROM test_names ORDER BY name').pluck().all(), ['a', 'c'], 'the failed unit left no projection row')
  t.match(verifyChain(store.db), { ok: true, count: 2 })
})

t.test('an event that does not match its schema is refused', async t => {
  const store = openStore(t, join(tempDir(t), 'log.db'))
  const bad = { type: 'NetworkCreated', data: { network_name: 'no id' } } as unknown as DomainEvent
  await t.rejects(store.append('network-a', [bad], { metadata }), InvalidEvent)
  t.equal(store.read().length, 0)
})

t.test('past rows cannot be changed or removed through SQL', async t => {
  const store = openStore(t, join(tempDir(t), 'log.db'))
  await store.append('network-a', [network('a')], { metadata })
  t.throws(() => store.db.prepare("UPDATE events SET data = '{}'").run(), /append-only/)
  t.throws(() => store.db.prepare('DELETE FROM events').run(), /append-only/)
})

t.test('verify finds the first edited or removed row', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = openStore(t, path)
  for (const name of ['a', 'b', 'c', 'd']) await store.append('network-a', [network(name)], { metadata })
  store.close()
  const db = new Database(path)
  t.teardown(() => db.close())
  db.exec('DROP TRIGGER events_are_append_only_update; DROP TRIGGER events_are_append_only_delete')
  db.prepare("UPDATE events SET data = replace(data, '\"c\"', '\"z\"') WHERE position = 3").run()
  t.match(verifyChain(db), { ok: false, position: 3 })
  db.prepare('DELETE FROM events WHERE position = 2').run()
  t.match(verifyChain(db), { ok: false, position: 2, reason: /missing/ })
})

t.test("verify walks a long log in steps, and the service's walk yields between them", async t => {
  const path = join(tempDir(t), 'log.db')
  const store = openStore(t, path)
  // 12,000 events: more than two steps of 5,000.
  for (let i = 0; i < 12; i++) await store.append('network-a', Array.from({ length: 1000 }, (_, j) => network(`n${i}-${j}`)), { metadata })
  const progress: number[] = []
  const walked = verifyChain(store.db, position => progress.push(position))
  t.match(walked, { ok: true, count: 12_000 })
  t.same(progress, [5000, 10_000], 'progress after each full step')
  const walking = verifyChainInSteps(store.db)
  let otherWorkRan = false
  setImmediate(() => { otherWorkRan = true })
  const stepped = await walking
  t.ok(otherWorkRan, 'other work ran while the service walked the chain')
  t.same(stepped, walked, 'the same result in steps')
  store.close()

  const db = new Database(path)
  t.teardown(() => db.close())
  db.exec('DROP TRIGGER events_are_append_only_update')
  db.prepare("UPDATE events SET data = replace(data, 'n10-500', 'forged') WHERE position = 10501").run()
  t.match(await verifyChainInSteps(db), { ok: false, position: 10_501 }, 'an edit in the third step is found')
})

t.test('a reopened log continues the chain; a changed projection is rebuilt from the log', async t => {
  const path = join(tempDir(t), 'log.db')
  const first = new EventStore(openDatabase(path), [namesProjection(1)], new ManualClock())
  await first.append('network-a', [network('a'), network('a')], { metadata })
  first.close()
  const second = openStore(t, path, [namesProjection(2)])
  t.same(second.db.prepare('SELECT name, seen, version FROM test_names').all(), [{ name: 'a', seen: 2, version: 2 }])
  await second.append('network-a', [network('b')], { expectedVersion: 1, metadata })
  t.same(second.read().map(e => e.position), [1, 2, 3])
  t.match(verifyChain(second.db), { ok: true, count: 3 })
})

t.test('events are recorded at the injected clock', async t => {
  const clock = new ManualClock(Date.UTC(2030, 4, 6, 7, 8, 9))
  const store = new EventStore(openDatabase(join(tempDir(t), 'log.db')), [], clock)
  t.teardown(() => store.close())
  const [event] = await store.append('network-a', [network('a')], { metadata })
  t.equal(event!.recorded_at, '2030-05-06T07:08:09.000Z')
})

t.test('a closed store refuses new work but commits what was queued', async t => {
  const store = new EventStore(openDatabase(join(tempDir(t), 'log.db')), [], new ManualClock())
  const queued = store.append('network-a', [network('a')], { metadata })
  store.close()
  const [event] = await queued
  t.equal(event!.position, 1)
  await t.rejects(store.append('network-a', [network('b')], { metadata }), /closed/)
})
