// The log's table in PostgreSQL and the names every node shares, without the client itself (loaded only where it is used).
import type pg from 'pg'
import type { EventRow } from '../recorded-event.ts'

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
  CREATE INDEX IF NOT EXISTS events_by_type ON events (type, position);
  CREATE TABLE IF NOT EXISTS leases (name text PRIMARY KEY, owner text NOT NULL, expires_at bigint NOT NULL);`

/** Creates the log's and the leases' tables when they are not there; nodes starting at once are ordered by the append lock (CREATE ... IF NOT EXISTS alone races). */
export async function openPostgresSchema (client: pg.Client): Promise<void> {
  await client.query('BEGIN')
  await client.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK])
  await client.query(DDL)
  await client.query('COMMIT')
}


/** A row as the client reads it (bigints as text) and as the log's EventRow. */
export type PostgresRow = Omit<EventRow, 'position' | 'recorded_at'> & { position: string, recorded_at: string }
export const toEventRow = (row: PostgresRow): EventRow => ({ ...row, position: Number(row.position), recorded_at: Number(row.recorded_at) })

/** The columns of an EventRow, in the order INSERT_EVENTS takes them. */
export const EVENT_COLUMNS = 'position, stream AS stream_id, stream_version, type, schema_version, recorded_at, data, metadata, hash'

/** Inserts a group's rows in one statement; `columns` holds, for each of the nine columns, every row's value. */
export async function insertEvents (client: pg.Client, columns: unknown[][]): Promise<void> {
  await client.query(`INSERT INTO events (position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::integer[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])`, columns)
}
