import type { Db } from './database.ts'
import { chainHash, GENESIS_HASH, type EventRow } from './recorded-event.ts'

export type VerifyResult =
  | { ok: true, count: number, head: string }
  | { ok: false, position: number, reason: string }

/** Walk the hash chain from the first event; report the first row that does not hold. */
export function verifyChain (db: Db, onProgress: (position: number) => void = () => {}): VerifyResult {
  let previousHash = GENESIS_HASH
  let expectedPosition = 1
  let count = 0
  for (const value of db.prepare('SELECT * FROM events ORDER BY position').iterate()) {
    const row = value as EventRow
    if (row.position !== expectedPosition) {
      return { ok: false, position: expectedPosition, reason: `position ${expectedPosition} is missing` }
    }
    if (chainHash(previousHash, row) !== row.hash) {
      return { ok: false, position: row.position, reason: 'hash does not match the row and its predecessor' }
    }
    previousHash = row.hash
    expectedPosition += 1
    count += 1
    if (count % 10_000 === 0) onProgress(row.position)
  }
  return { ok: true, count, head: previousHash }
}
