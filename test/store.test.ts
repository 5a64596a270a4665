import { join } from 'node:path'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { eventDefinitions, type DomainEvent } from '../events/index.ts'
import { ManualClock } from '../src/clock.ts'
import { InvalidEvent, StreamVersionConflict } from '../src/errors.ts'
import { openDatabase, type Db } from '../src/store/database.ts'
import { EventStore } from '../src/store/event-store.ts'
import { chainHash, decodeData, encodeData, GENESIS_HASH } from '../src/store/recorded-event.ts'
import { threadExecArgv } from '../src/store/thread-bundle.ts'
import { verifyChain, verifyChainInParallel, verifyChainInSteps } from '../src/store/verify.ts'
import { tempDir } from './helpers/service.ts'

const metadata = { actor: 'system', correlation_id: 'test' }
const network = (name: string): DomainEvent => ({
  type: 'NetworkCreated',
  data: { network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', network_name: name, created_by: 'a8323361-3c22-4f07-8c14-74bb7e8ec3a2' }
})

const projections = (name: 'names1' | 'names2' | 'none' | 'takenNames') => ({ module: new URL('./helpers/names-projection.ts', import.meta.url), export: name })

async function openStore (t: Test, path: string, which: 'names1' | 'names2' | 'none' = 'names1', clock = new ManualClock()) {
  const store = await EventStore.open({ path, projections: projections(which), clock })
  t.teardown(() => store.close())
  return store
}

t.test('appends get consecutive positions and stream versions, and a hash chain', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = await openStore(t, path)
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
  const store = await openStore(t, path)
  const reader = new Database(path, { readonly: true })
  t.teardown(() => reader.close())
  const [event] = await store.append('network-a', [network('a')], { metadata })
  t.equal(reader.prepare('SELECT count(*) FROM events WHERE position = ?').pluck().get(event!.position), 1)
})

t.test('a wrong expected version is a conflict and writes nothing', async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
  await store.append('network-a', [network('a')], { expectedVersion: 'no_stream', metadata })
  await t.rejects(store.append('network-a', [network('b')], { expectedVersion: 'no_stream', metadata }), StreamVersionConflict)
  await t.rejects(store.append('network-a', [network('b')], { expectedVersion: 5, metadata }), { statusCode: 409, message: /expected version 5, found 0/ })
  await store.append('network-a', [network('b')], { expectedVersion: 0, metadata })
  t.equal(store.read().length, 2)
})

t.test('units queued together commit in one group; one that fails is rolled back alone', async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
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

t.test('a unit whose appends a projection refuses on the writer thread fails alone; the rest commit', async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
  const results = await Promise.allSettled([
    store.append('network-a', [network('a')], { metadata }),
    store.append('network-b', [network('forbidden')], { metadata }),
    store.append('network-c', [network('c')], { metadata })
  ])
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.match((results[1] as PromiseRejectedResult).reason, { message: /refuses this name/ })
  t.same(store.read().map(e => [e.position, e.stream_id]), [[1, 'network-a'], [2, 'network-c']], 'no gap where it was')
  t.match(verifyChain(store.db), { ok: true, count: 2 })
})

t.test('a unit that decided on a stream an earlier unit of its group changed runs again after that commit', async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
  await store.append('network-a', [network('a')], { metadata })
  const runs: number[] = []
  // Each unit decides from the committed version it reads, as a decider reads its state.
  const decideOnCommitted = () => store.transact(tx => {
    const version = tx.streamVersion('network-a')
    runs.push(version)
    return tx.append('network-a', [network(`after-${version}`)], {metadata})
  })
  const independent = () => store.append('network-a', [network('report')], { metadata, expectedVersion: 'any' })
  const [first, second, report] = await Promise.all([decideOnCommitted(), decideOnCommitted(), independent()])
  t.equal(first[0]!.stream_version, 1)
  t.equal(report[0]!.stream_version, 2, "an independent append shares the first unit's group")
  t.equal(second[0]!.stream_version, 3, 'the second unit ran again, on the state the first committed')
  t.same(runs, [0, 1, 2], 'it ran twice: once behind the first unit in its group, once after that commit')
  t.same(store.read({ stream: 'network-a' }).map(e => (e.data as { network_name: string }).network_name), ['a', 'after-0', 'report', 'after-2'])
})

t.test('a group handed over behind one that fails is staged again after it: nothing lost, no gap, the chain intact', async t => {
  // Room for the whole first group, so that it keeps the writer busy while the next is handed over.
  const store = await EventStore.open({ path: join(tempDir(t), 'log.db'), projections: projections('names1'), clock: new ManualClock(), maxGroup: 10_000 })
  t.teardown(() => store.close())
  const committed: number[][] = []
  store.subscribe(events => committed.push(events.map(e => e.position)))
  const ahead = Array.from({ length: 3000 }, (_, i) => store.append(`network-${i}`, [network(`n${i}`)], { metadata }))
  // The last row of the first group: the writer refuses it after inserting the 3,000 before it.
  const refused = store.append('network-x', [network('forbidden')], { metadata })
  await new Promise(resolve => setImmediate(resolve))
  // Staged while the first group is with the writer, on positions that follow it.
  const behind = Array.from({ length: 5 }, (_, i) => store.append(`behind-${i}`, [network(`b${i}`)], { metadata }))
  const results = await Promise.allSettled([...ahead, refused, ...behind])
  t.same(results.filter(r => r.status === 'rejected').length, 1, 'only the refused unit fails')
  await t.rejects(refused, { message: /refuses this name/ })
  const events = store.read()
  t.same(events.map(e => e.position), Array.from({ length: 3005 }, (_, i) => i + 1), 'every other unit committed, without a gap')
  t.same(events.slice(-5).map(e => e.stream_id), ['behind-0', 'behind-1', 'behind-2', 'behind-3', 'behind-4'], 'the units behind come after those ahead, in their order')
  t.same((await Promise.all(behind)).map(([event]) => event!.position), [3001, 3002, 3003, 3004, 3005], 'each resolves with its position as committed')
  t.same(committed.flat(), events.map(e => e.position), 'listeners are told each position once, in order')
  t.match(verifyChain(store.db), { ok: true, count: 3005 })
})

t.test('a unit alone in a group staged behind another, refused for what that one committed, decides again on it', async t => {
  // Room for the whole first group, so that it keeps the writer busy while the next is handed over.
  const store = await EventStore.open({ path: join(tempDir(t), 'log.db'), projections: projections('takenNames'), clock: new ManualClock(), maxGroup: 10_000 })
  t.teardown(() => store.close())
  const decisions: string[] = []
  // As a registration decides: from what is committed, the name is free (append) or taken (a 409).
  const register = (stream: string) => store.transact(tx => {
    const taken = store.db.prepare('SELECT 1 FROM test_taken_names WHERE name = ?').get('same') !== undefined
    decisions.push(`${stream}: ${taken ? 'taken' : 'free'}`)
    if (!taken) tx.append(stream, [network('same')], { metadata })
    return taken ? 'taken' : 'registered'
  })
  const ahead = Array.from({ length: 3000 }, (_, i) => store.append(`network-${i}`, [network(`n${i}`)], { metadata }))
  const first = register('network-first')
  await new Promise(resolve => setImmediate(resolve))
  // Staged alone while the first group is with the writer: it cannot see the name taken yet.
  const second = register('network-second')
  t.same(await Promise.all([first, second]), ['registered', 'taken'], 'the second learns the name is taken, not a constraint error')
  t.same(decisions, ['network-first: free', 'network-second: free', 'network-second: taken'], 'it ran once behind the first group, once after it')
  await Promise.all(ahead)
  t.same(store.read({ stream: 'network-second' }), [], 'nothing of it was appended')
  t.match(verifyChain(store.db), { ok: true, count: 3001 })
})

t.test('an event that does not match its schema is refused', async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
  const bad = { type: 'NetworkCreated', data: { network_name: 'no id' } } as unknown as DomainEvent
  await t.rejects(store.append('network-a', [bad], { metadata }), InvalidEvent)
  t.equal(store.read().length, 0)
})

t.test('past rows cannot be changed or removed through SQL', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = await openStore(t, path)
  await store.append('network-a', [network('a')], { metadata })
  t.throws(() => store.db.prepare("UPDATE events SET data = '{}'").run(), /readonly/, "the service's own connection only reads")
  const db = new Database(path)
  t.teardown(() => db.close())
  t.throws(() => db.prepare("UPDATE events SET data = '{}'").run(), /append-only/)
  t.throws(() => db.prepare('DELETE FROM events').run(), /append-only/)
})

t.test('verify finds the first edited or removed row', async t => {
  const path = join(tempDir(t), 'log.db')
  const store = await openStore(t, path)
  for (const name of ['a', 'b', 'c', 'd']) await store.append('network-a', [network(name)], { metadata })
  await store.close()
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
  const store = await openStore(t, path)
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
  t.same(await verifyChainInParallel(path), walked, 'the same result from a thread per core')
  await store.close()

  const db = new Database(path)
  t.teardown(() => db.close())
  db.exec('DROP TRIGGER events_are_append_only_update')
  db.prepare("UPDATE events SET data = replace(data, 'n10-500', 'forged') WHERE position = 10501").run()
  t.match(await verifyChainInSteps(db), { ok: false, position: 10_501 }, 'an edit in the third step is found')
  t.match(await verifyChainInParallel(path), { ok: false, position: 10_501 }, 'and by the threads')
})

t.test('a reopened log continues the chain; a changed projection is rebuilt from the log', async t => {
  const path = join(tempDir(t), 'log.db')
  const first = await EventStore.open({ path, projections: projections('names1'), clock: new ManualClock() })
  await first.append('network-a', [network('a'), network('a')], { metadata })
  await first.close()
  const second = await openStore(t, path, 'names2')
  t.same(second.db.prepare('SELECT name, seen, version FROM test_names').all(), [{ name: 'a', seen: 2, version: 2 }])
  // The stream's version as the reopened log read it at start: a stale expectation is refused.
  await t.rejects(second.append('network-a', [network('b')], { expectedVersion: 0, metadata }), /version/i, 'a stale expected version is refused')
  await second.append('network-a', [network('b')], { expectedVersion: 1, metadata })
  t.same(second.read().map(e => e.position), [1, 2, 3])
  const [third] = await second.append('network-a', [network('c')], { expectedVersion: 'any', metadata })
  t.equal(third!.stream_version, 3, 'and an append that expects any version takes the next one')
  t.match(verifyChain(second.db), { ok: true, count: 4 })
})

t.test('each mode of connection gets the settings it states, none silently refused by SQLite', async t => {
  const dir = tempDir(t)
  const setting = (db: Db, name: string) => db.pragma(name, { simple: true })
  const writer = openDatabase(join(dir, 'log.db'), 'writer')
  t.teardown(() => writer.close())
  t.same([setting(writer, 'journal_mode'), setting(writer, 'synchronous'), setting(writer, 'page_size'), setting(writer, 'wal_autocheckpoint')],
    ['wal', 2, 4096, 1000], 'the log: WAL, fsync at every commit (FULL), 4 KB pages, checkpoints of at most 1,000 pages')
  const bulk = openDatabase(join(dir, 'replayed.db'), 'bulk')
  t.teardown(() => bulk.close())
  t.same([setting(bulk, 'journal_mode'), setting(bulk, 'synchronous'), setting(bulk, 'page_size'), setting(bulk, 'locking_mode')],
    ['memory', 0, 4096, 'exclusive'], 'a bulk build: no journal on disk, no fsync, 4 KB pages, nobody else reading')
})

t.test("the store's threads start without the process's module loaders, and with its other flags", async t => {
  // This file runs under tap's loaders and tsx's (--import): a thread given them starts each one's loader thread.
  t.ok(process.execArgv.some(flag => flag.startsWith('--import')), 'the test process has loaders to leave out')
  t.same(threadExecArgv(), process.execArgv.filter(flag => !flag.startsWith('--import')))
  t.same(threadExecArgv(['--import', 'tsx', '--cpu-prof', '-r', './hook.cjs', '--max-old-space-size=100']), ['--cpu-prof', '--max-old-space-size=100'], 'a loader named in the next argument goes with it')
  t.same(threadExecArgv(['--loader=a.mjs', '--experimental-loader', 'b.mjs', '--require=c.cjs', '--enable-source-maps']), ['--enable-source-maps'])
})

t.test('events are recorded at the injected clock', async t => {
  const clock = new ManualClock(Date.UTC(2030, 4, 6, 7, 8, 9))
  const store = await openStore(t, join(tempDir(t), 'log.db'), 'none', clock)
  const [event] = await store.append('network-a', [network('a')], { metadata })
  t.equal(event!.recorded_at, '2030-05-06T07:08:09.000Z')
})

t.test('a closed store refuses new work but commits what was queued', async t => {
  const store = await EventStore.open({ path: join(tempDir(t), 'log.db'), projections: projections('none'), clock: new ManualClock() })
  const queued = store.append('network-a', [network('a')], { metadata })
  const closed = store.close()
  const [event] = await queued
  t.equal(event!.position, 1)
  await t.rejects(store.append('network-a', [network('b')], { metadata }), /closed/)
  await closed
})

t.test('a log in the first layout (names, ISO times, hex hashes in every row) is moved to the lean one at start, its chain intact', async t => {
  const path = join(tempDir(t), 'log.db')
  const legacy = new Database(path)
  legacy.exec(`CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL,
      type TEXT NOT NULL, schema_version INTEGER NOT NULL, recorded_at TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL,
      hash TEXT NOT NULL, UNIQUE (stream_id, stream_version)) STRICT;
    CREATE TABLE projection_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT;
    CREATE TABLE mqtt_inbox (client_id TEXT);
    INSERT INTO projection_versions VALUES ('test_names', 1)`)
  let previous = GENESIS_HASH
  for (const [position, name] of [[1, 'a'], [2, 'b']] as const) {
    const row = [position, 'network-a', position - 1, 'NetworkCreated', 1, '2026-01-01T00:00:0' + position + '.000Z',
      JSON.stringify(network(name).data), JSON.stringify({ actor: 'system', correlation_id: 'c' })] as const
    previous = chainHash(previous, ...row).toString('hex')
    legacy.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(...row, previous)
  }
  legacy.close()
  const store = await openStore(t, path)
  t.same(store.read().map(e => [e.position, e.stream_id, e.recorded_at, e.hash]),
    [[1, 'network-a', '2026-01-01T00:00:01.000Z', store.read()[0]!.hash], [2, 'network-a', '2026-01-01T00:00:02.000Z', previous]])
  t.same(store.db.prepare('SELECT name, seen FROM test_names ORDER BY name').all(), [{ name: 'a', seen: 1 }, { name: 'b', seen: 1 }], 'projections rebuilt')
  await store.append('network-a', [network('c')], { expectedVersion: 1, metadata })
  t.match(verifyChain(store.db), { ok: true, count: 3 }, 'the old rows and the new ones are one chain')
  t.equal(store.db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('first_layout_events', 'mqtt_inbox')").pluck().get(), 0)
})

t.test("a report's sensor id is stored once, in its stream's name, and given back on reading", async t => {
  const store = await openStore(t, join(tempDir(t), 'log.db'))
  const id = '6f1f9a0e-2b8e-4c55-9a57-5f0c8d1e2a3b'
  const data = { sensor_identifier: id, measurements: [{ revision: 0, timestamp: 1, value: { t: 1 } }] }
  await store.append(`sensor-${id}`, [{ type: 'MeasurementsRecorded', data }], { metadata })
  t.equal(store.db.prepare('SELECT data FROM events').pluck().get(), '{"measurements":[{"revision":0,"timestamp":1,"value":{"t":1}}]}')
  t.same(store.read()[0]!.data, data)
  // Under another stream the id is not the stream's: it stays in the data.
  await store.append('sensor-elsewhere', [{ type: 'MeasurementsRecorded', data }], { metadata })
  t.match(store.db.prepare('SELECT data FROM events WHERE position = 2').pluck().get(), /"sensor_identifier"/)
  t.same(store.read()[1]!.data, data)
  t.match(verifyChain(store.db), { ok: true, count: 2 })
})

t.test("a stream's id is left out of the stored data only where the data repeats it exactly", async t => {
  const stored = (streamId: string, data: object) => encodeData('MeasurementsRecorded', streamId, data)
  const measurements = [{ revision: 0, timestamp: 1, value: {} }]
  t.equal(stored('sensor-abc', { sensor_identifier: 'abc', measurements }), '{"measurements":[{"revision":0,"timestamp":1,"value":{}}]}')
  for (const [streamId, id] of [['sensor-abc', 'abcd'], ['sensor-abcd', 'abc'], ['sensor-a"b', 'a"b'], ['sensor-a\\b', 'a\\b'], ['sensor-abc', 'ab"']]) {
    const data = { sensor_identifier: id, measurements }
    t.equal(stored(streamId!, data), JSON.stringify(data), `${streamId} with ${JSON.stringify(id)}: kept`)
    t.same(decodeData('MeasurementsRecorded', eventDefinitions.MeasurementsRecorded.version, stored(streamId!, data), streamId!), data, 'and read back as it was')
  }
  // Not first: kept (the stored text is the data's own JSON).
  t.equal(stored('sensor-abc', { measurements, sensor_identifier: 'abc' }), JSON.stringify({ measurements, sensor_identifier: 'abc' }))
})
