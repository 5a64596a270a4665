import pg from 'pg'
import t from 'tap'
import { findPostgres, withPostgres } from './helpers/postgres.ts'

// No skip: CI installs PostgreSQL (.ci/run), so a missing server is a broken machine, not an optional test.
t.ok(findPostgres(), 'a PostgreSQL server is installed (/usr/lib/postgresql/<major>/bin or PG_BIN); on Debian: apt-get install postgresql')

t.test('a throwaway cluster on a unix socket only, reachable by node-postgres', { skip: findPostgres() === undefined ? 'no PostgreSQL server (failed above)' : false }, async t => {
  const url = await withPostgres(t)
  t.match(url, /^postgres:\/\/devicelog@\/devicelog\?host=%2F[^&]+&port=\d+$/, 'the url names the socket folder and port')

  const first = new pg.Client({ connectionString: url })
  const second = new pg.Client({ connectionString: url })
  await first.connect()
  try {
    await second.connect()
    try {
      const one = await first.query<{ one: number }>('SELECT 1 AS one')
      t.same(one.rows, [{ one: 1 }], 'SELECT 1 answers')

      const listen = await first.query<{ listen_addresses: string }>('SHOW listen_addresses')
      t.equal(listen.rows[0]?.listen_addresses, '', 'no TCP listener')

      const who = await first.query<{ user: string, db: string }>('SELECT current_user AS user, current_database() AS db')
      t.same(who.rows, [{ user: 'devicelog', db: 'devicelog' }], 'connected as devicelog to the devicelog database')

      const [a, b] = await Promise.all([
        first.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'),
        second.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      ])
      t.not(a.rows[0]?.pid, b.rows[0]?.pid, 'two clients at once, each with its own backend')
      const sessions = await second.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")
      t.equal(sessions.rows[0]?.n, 2, 'both sessions are open together')
    } finally {
      await second.end()
    }
  } finally {
    await first.end()
  }
})
