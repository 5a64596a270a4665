import { closeSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { openDatabase } from './database.ts'
import { verifyChainInParallel, type VerifyResult } from './verify.ts'

export type BackupResult =
  | { ok: true, count: number, head: string, bytes: number }
  | Extract<VerifyResult, { ok: false }>

/** The largest step better-sqlite3 takes: every page of the log at once. */
const ALL_PAGES = 0x7fffffff

/**
 * A consistent copy of a log the service may be appending to, made with SQLite's online backup,
 * then its hash chain verified. The copy is a whole database (log and projections) the service
 * can start on. A copy that fails, or does not verify, is removed; an existing file is never
 * written over.
 */
export async function backupDatabase (source: string, out: string, onVerifyProgress?: (checked: number, total: number) => void): Promise<BackupResult> {
  mkdirSync(dirname(out), { recursive: true })
  // 'wx' claims the name atomically: a file that exists, or appears meanwhile, is refused (EEXIST).
  closeSync(openSync(out, 'wx'))
  try {
    const db = openDatabase(source, 'readonly')
    try {
      // One step for all pages: a step reads one WAL snapshot and never blocks the writer, but any commit between steps restarts the copy, so under continuous ingest only a single step ever finishes.
      await db.backup(out, { progress: () => ALL_PAGES })
    } finally {
      db.close()
    }
    asOneFile(out)
    const result = await verifyChainInParallel(out, onVerifyProgress)
    if (!result.ok) {
      remove(out)
      return result
    }
    return { ...result, bytes: statSync(out).size }
  } catch (error) {
    remove(out)
    throw error
  }
}

/**
 * The copy inherits WAL mode from the live log's header; in rollback mode it is one file that
 * moves and is read without -wal and -shm beside it. The service's writer turns WAL on again
 * when it opens it (none of openDatabase's modes only switches the journal, hence a bare connection).
 */
function asOneFile (path: string): void {
  const db = new Database(path, { fileMustExist: true })
  try {
    db.pragma('journal_mode = DELETE')
  } finally {
    db.close()
  }
}

function remove (path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true })
}
