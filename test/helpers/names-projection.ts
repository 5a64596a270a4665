import type { Projection } from '../../src/store/projection.ts'
import type { RecordedEvent } from '../../src/store/recorded-event.ts'

// The store's tests fold this projection on the writer thread, which imports it from here
// (functions do not cross threads): `names1` and `names2` are its two versions.

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
    return (event: RecordedEvent) => {
      if (event.type !== 'NetworkCreated') return
      // A name the projection refuses, to see a unit fail on the writer thread.
      if (event.data.network_name === 'forbidden') throw new Error('the projection refuses this name')
      upsert.run(event.data.network_name)
    }
  }
})

/** Each network name once: a second NetworkCreated of a name breaks the table's key on the writer thread. */
const takenNamesProjection: Projection = {
  name: 'test_taken_names',
  version: 1,
  handles: ['NetworkCreated'],
  tables: ['test_taken_names'],
  ddl: 'CREATE TABLE IF NOT EXISTS test_taken_names (name TEXT PRIMARY KEY) STRICT',
  prepare (db) {
    const insert = db.prepare('INSERT INTO test_taken_names (name) VALUES (?)')
    return (event: RecordedEvent) => {
      if (event.type === 'NetworkCreated') insert.run(event.data.network_name)
    }
  }
}

export const names1 = [namesProjection(1)]
export const names2 = [namesProjection(2)]
export const none: Projection[] = []
export const takenNames = [takenNamesProjection]
