import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

export type Db = Database.Database

/**
 * Durability: WAL with synchronous=FULL fsyncs the WAL on every COMMIT, so a committed
 * transaction survives power loss. With NORMAL, WAL mode may lose the last commits on power
 * loss, which would break "acknowledged means durable". Group commit makes FULL cheap.
 */
export function openDatabase (path: string, options: { readonly?: boolean } = {}): Db {
  if (path !== ':memory:' && !options.readonly) mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false })
  if (!options.readonly) {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
  }
  db.pragma('busy_timeout = 5000')
  db.pragma('cache_size = -65536')
  if (!options.readonly) db.exec(EVENT_LOG_DDL)
  return db
}

export const EVENT_LOG_DDL = `
CREATE TABLE IF NOT EXISTS events (
  position       INTEGER PRIMARY KEY,
  stream_id      TEXT    NOT NULL,
  stream_version INTEGER NOT NULL,
  type           TEXT    NOT NULL,
  schema_version INTEGER NOT NULL,
  recorded_at    TEXT    NOT NULL,
  data           TEXT    NOT NULL,
  metadata       TEXT    NOT NULL,
  hash           TEXT    NOT NULL,
  UNIQUE (stream_id, stream_version)
) STRICT;
-- Append-only: a past row can be neither changed nor removed through SQL by mistake.
-- Anyone who drops these triggers to edit history is caught by \`devicelog verify\`.
CREATE TRIGGER IF NOT EXISTS events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE IF NOT EXISTS projection_versions (
  name    TEXT PRIMARY KEY,
  version INTEGER NOT NULL
) STRICT;
`
