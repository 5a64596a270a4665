// The log's contract, one suite run against both implementations: the SQLite store the service
// runs on (src/store/event-store.ts) and the PostgreSQL log several nodes share
// (src/store/postgres/log.ts). Then what only several nodes can show: two logs on one database.
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import type { DomainEvent } from '../events/index.ts'
import { ManualClock } from '../src/clock.ts'
import { InvalidEvent, StreamVersionConflict } from '../src/errors.ts'
import { EventStore, type AppendOptions, type CommitListener, type EventFilter } from '../src/store/event-store.ts'
import { PostgresLog } from '../src/store/postgres/log.ts'
import type { RecordedEvent } from '../src/store/recorded-event.ts'
import { verifyChain, type VerifyResult } from '../src/store/verify.ts'
import { withPostgres } from './helpers/postgres.ts'
import { tempDir } from './helpers/service.ts'

/** What every implementation of the log promises, as this suite uses it. */
interface Log {
  append(streamId: string, events: readonly DomainEvent[], options: AppendOptions): Promise<RecordedEvent[]>
  read(filter?: EventFilter): Promise<RecordedEvent[]>
  subscribe(listener: CommitListener): () => void
  verify(): Promise<VerifyResult>
  close(): Promise<void>
}

const metadata = { actor: 'system' }
const network = (name: string): DomainEvent => ({
  type: 'NetworkCreated',
  data: { network_identifier: '0a71a8d8-40c6-4086-a64e-58e38350cb53', network_name: name, created_by: 'a8323361-3c22-4f07-8c14-74bb7e8ec3a2' }
})

/** One PostgreSQL cluster for the file; each log gets a database of its own. */
let cluster: Promise<string> | undefined
let databases = 0
async function freshDatabase (): Promise<string> {
  cluster ??= withPostgres(t)
  const url = await cluster
  const name = `contract_${++databases}`
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  // postgres://user@/database?host=...: the database is the path before the query.
  return url.replace(/\/[^/?]+(\?|$)/, `/${name}$1`)
}

/** Each implementation opens a log on `where` (a file, a database), new or existing. */
const implementations: Record<string, { where(t: Test): Promise<string>, open(where: string, clock: ManualClock): Promise<Log> }> = {
  sqlite: {
    where: async t => join(tempDir(t), 'log.db'),
    open: async (path, clock) => {
      const store = await EventStore.open({ path, projections: { module: new URL('./helpers/names-projection.ts', import.meta.url), export: 'none' }, clock })
      return {
        append: (streamId, events, options) => store.append(streamId, events, options),
        read: async filter => store.read(filter),
        subscribe: listener => store.subscribe(listener),
        verify: async () => verifyChain(store.db),
        close: () => store.close()
      }
    }
  },
  postgres: {
    where: () => freshDatabase(),
    open: (url, clock) => PostgresLog.open({ url, clock })
  }
}

for (const [name, implementation] of Object.entries(implementations)) {
  const openLog = async (t: Test, where?: string, clock = new ManualClock()) => {
    const log = await implementation.open(where ?? await implementation.where(t), clock)
    t.teardown(() => log.close())
    return log
  }

  t.test(`${name}: appends get consecutive positions, stream versions and one hash chain; reads filter them`, async t => {
    const log = await openLog(t)
    const first = await log.append('network-a', [network('a'), network('b')], { expectedVersion: 'no_stream', metadata })
    const second = await log.append('network-b', [network('c')], { metadata })
    t.same(first.map(e => [e.position, e.stream_version]), [[1, 0], [2, 1]])
    t.same(second.map(e => [e.position, e.stream_version]), [[3, 0]])
    t.same((await log.read({ stream: 'network-a' })).map(e => e.position), [1, 2], 'by stream')
    t.same((await log.read({ after: 1, limit: 1 })).map(e => e.position), [2], 'after, limit')
    t.same((await log.read({ type: 'NetworkCreated', before: 3 })).map(e => e.position), [1, 2], 'by type, before')
    const [read] = await log.read({ after: 2 })
    t.match(read, { type: 'NetworkCreated', stream_id: 'network-b', data: { network_name: 'c' }, metadata, hash: second[0]!.hash }, 'read back as appended, with its hash')
    t.match(await log.verify(), { ok: true, count: 3, head: second[0]!.hash })
  })

  t.test(`${name}: a wrong expected version is a conflict and writes nothing`, async t => {
    const log = await openLog(t)
    await log.append('network-a', [network('a')], { expectedVersion: 'no_stream', metadata })
    await t.rejects(log.append('network-a', [network('b')], { expectedVersion: 'no_stream', metadata }), StreamVersionConflict)
    await t.rejects(log.append('network-a', [network('b')], { expectedVersion: 5, metadata }), { statusCode: 409, message: /expected version 5, found 0/ })
    await log.append('network-a', [network('b')], { expectedVersion: 0, metadata })
    t.same((await log.read()).map(e => e.stream_version), [0, 1])
  })

  t.test(`${name}: an event that does not match its schema is refused`, async t => {
    const log = await openLog(t)
    const bad = { type: 'NetworkCreated', data: { network_name: 'no ids' } } as unknown as DomainEvent
    await t.rejects(log.append('network-a', [bad], { metadata }), InvalidEvent)
    t.same(await log.read(), [])
  })

  t.test(`${name}: many appends at once: no gaps, each stream in order, every listener told each event once and in order`, async t => {
    const log = await openLog(t)
    const told: number[] = []
    log.subscribe(events => { for (const event of events) told.push(event.position) })
    const appends = Array.from({ length: 200 }, (_, i) => log.append(`network-${i % 20}`, [network(`n${i}`)], { metadata }))
    const positions = (await Promise.all(appends)).flat().map(e => e.position).sort((a, b) => a - b)
    t.same(positions, Array.from({ length: 200 }, (_, i) => i + 1), 'positions 1..200')
    for (let s = 0; s < 20; s++) {
      t.same((await log.read({ stream: `network-${s}` })).map(e => e.stream_version), Array.from({ length: 10 }, (_, v) => v), `network-${s}: versions 0..9`)
    }
    t.same(told, positions, 'told in position order, once each')
    t.match(await log.verify(), { ok: true, count: 200 })
  })

  t.test(`${name}: a unit whose expected version does not hold is refused alone; the others of its group commit`, async t => {
    const log = await openLog(t)
    await log.append('network-a', [network('a')], { metadata })
    const results = await Promise.allSettled([
      log.append('network-b', [network('b')], { metadata }),
      log.append('network-a', [network('stale')], { expectedVersion: 'no_stream', metadata }),
      log.append('network-c', [network('c')], { expectedVersion: 'no_stream', metadata })
    ])
    t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
    t.same((await log.read()).map(e => (e.data as { network_name: string }).network_name), ['a', 'b', 'c'])
    t.match(await log.verify(), { ok: true, count: 3 })
  })

  t.test(`${name}: a reopened log continues the chain, at the injected clock`, async t => {
    const where = await implementation.where(t)
    const clock = new ManualClock(Date.parse('2026-03-01T10:00:00.000Z'))
    const before = await implementation.open(where, clock)
    await before.append('network-a', [network('a')], { metadata })
    await before.close()
    clock.advance(60_000)
    const after = await openLog(t, where, clock)
    const [event] = await after.append('network-a', [network('b')], { expectedVersion: 0, metadata })
    t.match(event, { position: 2, stream_version: 1, recorded_at: '2026-03-01T10:01:00.000Z' })
    t.same((await after.read()).map(e => e.recorded_at), ['2026-03-01T10:00:00.000Z', '2026-03-01T10:01:00.000Z'])
    t.match(await after.verify(), { ok: true, count: 2 })
  })
}

t.test('postgres, two nodes on one database: one gap-free chain, and each node is told what the other committed, in order', async t => {
  const url = await freshDatabase()
  const clock = new ManualClock()
  const [a, b] = await Promise.all([PostgresLog.open({ url, clock }), PostgresLog.open({ url, clock })])
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const toldA: number[] = []
  const toldB: number[] = []
  a.subscribe(events => { for (const event of events) toldA.push(event.position) })
  b.subscribe(events => { for (const event of events) toldB.push(event.position) })
  const appends = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).append(`network-${i % 10}`, [network(`n${i}`)], { metadata }))
  const positions = (await Promise.all(appends)).flat().map(e => e.position).sort((x, y) => x - y)
  t.same(positions, Array.from({ length: 100 }, (_, i) => i + 1), 'positions 1..100 across both nodes')
  // Each node learns the other's commits by NOTIFY: wait until both have been told all of them.
  await new Promise<void>(resolve => {
    const check = () => { if (toldA.length === 100 && toldB.length === 100) resolve() }
    a.subscribe(check)
    b.subscribe(check)
    check()
  })
  t.same(toldA, positions, 'node A: every event of both nodes, in order, once')
  t.same(toldB, positions, 'node B: the same')
  t.match(await a.verify(), { ok: true, count: 100 })
  const expected = await a.append('network-0', [network('after')], { expectedVersion: 9, metadata })
  t.equal(expected[0]!.stream_version, 10, "node A's expected version counts node B's appends")
  await t.rejects(b.append('network-0', [network('stale')], { expectedVersion: 9, metadata }), StreamVersionConflict, "node B's stale decision is refused")
})
