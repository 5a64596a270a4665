// The WAL's thread: copies what the writer committed from the write-ahead log into the database
// file (SQLite's checkpoint), on a connection of its own, beside the writer, so that no commit
// waits for a checkpoint. Started by the writer thread, and asked by it every few commits; a
// PASSIVE checkpoint never blocks the writer. Plain JavaScript: it needs nothing of the service.
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'

const db = new Database(workerData.path, { fileMustExist: true })
db.pragma('busy_timeout = 5000')
db.pragma('synchronous = FULL')
parentPort.on('message', message => {
  if (message === 'close') {
    db.close()
    parentPort.close()
    return
  }
  // Busy, or the disk failing: the writer's own checkpoints, at a larger WAL, are the backstop.
  try { db.pragma('wal_checkpoint(PASSIVE)') } catch {}
})
