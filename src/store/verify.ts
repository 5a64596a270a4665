import type { Db } from './database.ts'
import { chainHash, GENESIS_HASH, type EventRow } from './recorded-event.ts'

export type VerifyResult =
  | { ok: true, count: number, head: string }
  | { ok: false, position: number, reason: string }

/** Rows read per step: the live service yields to the event loop between steps. */
const STEP = 5000

/** One step of the walk: the next rows, checked against the chain so far. */
function verifyStep (db: Db, state: { previousHash: string, position: number }): VerifyResult | 'more' {
  const rows = db.prepare('SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?').all(state.position, STEP) as EventRow[]
  for (const row of rows) {
    if (row.position !== state.position + 1) return { ok: false, position: state.position + 1, reason: `position ${state.position + 1} is missing` }
    if (chainHash(state.previousHash, row) !== row.hash) return { ok: false, position: row.position, reason: 'hash does not match the row and its predecessor' }
    state.previousHash = row.hash
    state.position = row.position
  }
  return rows.length === STEP ? 'more' : { ok: true, count: state.position, head: state.previousHash }
}

/** Walk the hash chain from the first event; report the first row that does not hold. */
export function verifyChain (db: Db, onProgress: (position: number) => void = () => {}): VerifyResult {
  const state = { previousHash: GENESIS_HASH, position: 0 }
  for (;;) {
    const result = verifyStep(db, state)
    if (result !== 'more') return result
    onProgress(state.position)
  }
}

/** The same walk for the running service: between steps, MQTT and HTTP go on. */
export async function verifyChainInSteps (db: Db): Promise<VerifyResult> {
  const state = { previousHash: GENESIS_HASH, position: 0 }
  for (;;) {
    const result = verifyStep(db, state)
    if (result !== 'more') return result
    await new Promise(resolve => setImmediate(resolve))
  }
}
