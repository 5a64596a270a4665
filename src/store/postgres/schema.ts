// The log's table in PostgreSQL and the names every node shares, without the client itself (loaded only where it is used).
import type pg from 'pg'

/** The one lock every node takes to append ('devl'). */
export const APPEND_LOCK = 0x6465766c
export const CHANNEL = 'devicelog_commits'

const DDL = `
  CREATE TABLE IF NOT EXISTS events (
    position bigint PRIMARY KEY,
    stream text NOT NULL,
    stream_version integer NOT NULL,
    type text NOT NULL,
    schema_version integer NOT NULL,
    recorded_at bigint NOT NULL,
    data text NOT NULL,
    metadata text NOT NULL,
    hash bytea NOT NULL,
    UNIQUE (stream, stream_version)
  );
  CREATE INDEX IF NOT EXISTS events_by_type ON events (type, position);`

/** Creates the log's table when it is not there; two nodes starting at once are ordered by the append lock. */
export async function openPostgresSchema (client: pg.Client): Promise<void> {
  await client.query('BEGIN')
  await client.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK])
  await client.query(DDL)
  await client.query('COMMIT')
}

