// Leases in PostgreSQL (src/store/postgres/leases.ts): with several nodes, one owns each timer;
// when it dies, another takes the lease once it has expired, and not before.
import pg from 'pg'
import t from 'tap'
import { ManualClock } from '../src/clock.ts'
import { Leases } from '../src/store/postgres/leases.ts'
import { withPostgres } from './helpers/postgres.ts'

const TERM_MS = 30_000

t.test('one node holds a lease until it dies; the other takes it over once it has expired, and not before', async t => {
  const url = await withPostgres(t)
  const clock = new ManualClock()
  const a = await Leases.open({ url, owner: 'node-a', clock, termMs: TERM_MS })
  const b = await Leases.open({ url, owner: 'node-b', clock, termMs: TERM_MS })
  t.teardown(() => b.close())

  t.equal(await a.acquire('zone-1'), true, 'node A takes a free lease')
  t.equal(await b.acquire('zone-1'), false, 'node B cannot take it')
  t.equal(await a.acquire('zone-1'), true, 'node A taking it again keeps it')
  t.equal(await a.ownerOf('zone-1'), 'node-a')
  t.ok(a.holds('zone-1') && !b.holds('zone-1'))

  // A renews every third of the term: past the first term, A still holds it.
  for (let step = 0; step < 4; step++) {
    clock.advance(TERM_MS / 3)
    await a.whenRenewed()
  }
  t.equal(await b.acquire('zone-1'), false, 'kept by its renewals past its first term')
  t.ok(a.holds('zone-1'))

  // A dies: its lease stays until it expires.
  await a.close()
  t.equal(await b.acquire('zone-1'), false, 'a dead node\'s lease is not taken before it expires')
  clock.advance(TERM_MS)
  t.equal(await b.ownerOf('zone-1'), undefined, 'expired, nobody holds it')
  t.notOk(a.holds('zone-1'), "the dead node's own view has run out too")
  t.equal(await b.acquire('zone-1'), true, 'node B takes it over')
  t.equal(await b.ownerOf('zone-1'), 'node-b')
})

t.test('a node whose lease was taken while it could not renew learns it lost it; a release frees it at once', async t => {
  const url = await withPostgres(t)
  const clock = new ManualClock()
  const lost: string[] = []
  const a = await Leases.open({ url, owner: 'node-a', clock, termMs: TERM_MS, onLost: name => lost.push(name) })
  const b = await Leases.open({ url, owner: 'node-b', clock, termMs: TERM_MS })
  t.teardown(() => Promise.all([a.close(), b.close()]))

  await a.acquire('callbacks')
  await a.acquire('zone-2')
  // As if A's renewals had not reached the database in time and B had taken one lease meanwhile.
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query("UPDATE leases SET owner = 'node-b' WHERE name = 'zone-2'")
  await admin.end()
  await a.renew()
  t.same(lost, ['zone-2'], 'told which lease it lost')
  t.notOk(a.holds('zone-2'))
  t.ok(a.holds('callbacks'), 'the other one renewed')

  await a.release('callbacks')
  t.notOk(a.holds('callbacks'))
  t.equal(await b.acquire('callbacks'), true, 'a released lease is free at once')
})
