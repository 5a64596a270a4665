import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

export type Db = Database.Database

export type OpenMode =
  /** The one writer (the store's worker thread): creates the schema, WAL with synchronous=FULL. */
  | 'writer'
  /** A read connection beside the writer (the service's queries): WAL lets it read while the writer commits. */
  | 'reader'
  /** A file nobody else has open (a CLI reading a copy or a stopped service's log). */
  | 'readonly'
  /** A fresh file that nobody reads until it is complete (replay --out): no journal on disk, no fsync. */
  | 'bulk'

/**
 * Durability: WAL with synchronous=FULL fsyncs the WAL on every COMMIT, so a committed
 * transaction survives power loss. With NORMAL, WAL mode may lose the last commits on power
 * loss, which would break "acknowledged means durable". Group commit makes FULL cheap.
 */
export function openDatabase (path: string, mode: OpenMode = 'writer'): Db {
  const writes = mode === 'writer' || mode === 'bulk'
  if (path !== ':memory:' && writes) mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { readonly: !writes, fileMustExist: !writes })
  // Before the journal mode: once a new file is in WAL mode its page size is fixed, and a
  // page_size set after that is silently ignored.
  if (writes) db.pragma('page_size = 4096')
  if (mode === 'writer') {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    // A checkpoint runs inside the COMMIT that crosses this many WAL pages, and every unit of that
    // group waits for it: at ~4 MB it costs a few ms, not the 20-40 ms of 4,000 pages (16 MB).
    // Under load, that took publish-to-SSE p99 from about 41 ms to 28 (README, "Durability settings").
    db.pragma('wal_autocheckpoint = 1000')
  } else if (mode === 'bulk') {
    // Not OFF: better-sqlite3 opens connections in SQLite's defensive mode, which refuses OFF and
    // silently keeps DELETE. MEMORY keeps the rollback journal off the disk all the same.
    db.pragma('journal_mode = MEMORY')
    db.pragma('synchronous = OFF')
    db.pragma('locking_mode = EXCLUSIVE')
    // Small: a bulk build writes each page once, and a cache beyond the working set of the
    // B-trees being built only costs fresh memory (a malloc and page faults for every page).
    // Replaying 800,000 events took 4.7 s with 256 MB, 3.4 s with 8 MB.
    db.pragma('cache_size = -8192')
    db.pragma('mmap_size = 268435456')
  }
  db.pragma('busy_timeout = 5000')
  if (mode !== 'bulk') db.pragma('cache_size = -65536')
  if (mode === 'writer') migrateFirstLayout(db)
  if (writes) db.exec(EVENT_LOG_DDL)
  return db
}

/** Stream and type names to their ids, each stored once; a rolled-back group forgets its new ones. */
export class NameIds {
  private readonly ids = new Map<string, number>()
  private readonly added: string[] = []
  private readonly select
  private readonly insert

  constructor (db: Db, table: 'streams' | 'event_types') {
    this.select = db.prepare(`SELECT id FROM ${table} WHERE name = ?`).pluck()
    this.insert = db.prepare(`INSERT INTO ${table} (name) VALUES (?)`)
  }

  id (name: string): number {
    let id = this.ids.get(name)
    if (id === undefined) {
      id = this.select.get(name) as number | undefined
      if (id === undefined) {
        id = Number(this.insert.run(name).lastInsertRowid)
        this.added.push(name)
      }
      this.ids.set(name, id)
    }
    return id
  }

  committed (): void { this.added.length = 0 }
  rolledBack (): void {
    for (const name of this.added) this.ids.delete(name)
    this.added.length = 0
  }
}

/** Stream and type names by id, read at once (the CLI's walks over the whole log). */
export function namesById (db: Db): { streams: string[], types: string[] } {
  const streams: string[] = []
  const types: string[] = []
  for (const [id, name] of db.prepare('SELECT id, name FROM streams').raw().all() as Array<[number, string]>) streams[id] = name
  for (const [id, name] of db.prepare('SELECT id, name FROM event_types').raw().all() as Array<[number, string]>) types[id] = name
  return { streams, types }
}

/**
 * Logs written before 2026-12 kept names, ISO times and hex hashes in every row. They are moved
 * into the lean layout once, row for row: the hashed text is the same, so the chain still
 * verifies; every projection is rebuilt from the log afterwards.
 */
function migrateFirstLayout (db: Db): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('events')").pluck().all() as string[]
  if (!columns.includes('stream_id')) return
  db.transaction(() => {
    db.exec(`DROP TRIGGER IF EXISTS events_are_append_only_update; DROP TRIGGER IF EXISTS events_are_append_only_delete;
      ALTER TABLE events RENAME TO first_layout_events; DROP TABLE IF EXISTS mqtt_inbox; DELETE FROM projection_versions`)
    db.exec(EVENT_LOG_DDL)
    const streams = new NameIds(db, 'streams')
    const types = new NameIds(db, 'event_types')
    const insert = db.prepare(`INSERT INTO events (position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    type FirstLayoutRow = [number, string, number, string, number, string, string, string, string]
    const page = db.prepare('SELECT * FROM first_layout_events WHERE position > ? ORDER BY position LIMIT 5000').raw()
    for (let rows = page.all(0) as FirstLayoutRow[]; rows.length > 0; rows = page.all(rows.at(-1)![0]) as FirstLayoutRow[]) {
      for (const [position, stream, version, type, schemaVersion, recordedAt, data, metadata, hash] of rows) {
        insert.run(position, streams.id(stream), version, types.id(type), schemaVersion, Date.parse(recordedAt), data, metadata, Buffer.from(hash, 'hex'))
      }
    }
    db.exec('DROP TABLE first_layout_events')
  }).immediate()
}

/**
 * The log, stored lean: stream names and event types are small integers (each name is stored
 * once), the time is milliseconds since the epoch, the hash 32 raw bytes. `event_rows` shows
 * it as one readable table (names, ISO times, hex hashes) for queries and for people with sqlite3.
 */
export const EVENT_LOG_DDL = `
CREATE TABLE IF NOT EXISTS streams (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS event_types (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS events (
  position       INTEGER PRIMARY KEY,
  stream         INTEGER NOT NULL,
  stream_version INTEGER NOT NULL,
  type           INTEGER NOT NULL,
  schema_version INTEGER NOT NULL,
  recorded_at    INTEGER NOT NULL,
  data           TEXT    NOT NULL,
  metadata       TEXT    NOT NULL,
  hash           BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream, stream_version);
-- A device's state as of a moment reads only its stream's events of the types it folds, and the
-- latest of a few others (src/devices/state-as-of.ts): one seek each, not a walk of the stream.
CREATE INDEX IF NOT EXISTS events_by_stream_type ON events (stream, type, position);
-- Append-only: a past row can be neither changed nor removed through SQL by mistake.
-- Anyone who drops these triggers to edit history is caught by \`devicelog verify\`.
CREATE TRIGGER IF NOT EXISTS events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE VIEW IF NOT EXISTS event_rows AS
  SELECT e.position, s.name AS stream_id, e.stream_version, t.name AS type, e.schema_version,
    e.recorded_at, e.data, e.metadata, e.hash
  FROM events e JOIN streams s ON s.id = e.stream JOIN event_types t ON t.id = e.type;
CREATE TABLE IF NOT EXISTS projection_versions (
  name    TEXT PRIMARY KEY,
  version INTEGER NOT NULL
) STRICT;
`
