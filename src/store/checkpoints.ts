import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { audit, type EventOf } from '../../events/index.ts'
import type { Db } from './database.ts'

// Signed checkpoints of the chain's head, and heads kept elsewhere: what proves that history
// was not rewritten, where the chain alone proves only that the file agrees with itself.

export const CHECKPOINT_STREAM = 'chain'

/** A head of the log: `<position>:<hash>`, as `devicelog verify` prints it and `--expect` takes it. */
export interface Head { position: number, hash: string }

export const headText = ({ position, hash }: Head): string => `${position}:${hash}`

export function parseHead (text: string): Head | undefined {
  const match = /^(\d+):([0-9a-fA-F]{64})$/.exec(text)
  return match === null ? undefined : { position: Number(match[1]), hash: match[2]!.toLowerCase() }
}

/** The service's signing key: a file beside the database, readable by its owner only. */
export const checkpointKeyPath = (databasePath: string): string => `${databasePath}.checkpoint-key.pem`

/** The key in `path` (PKCS #8 PEM), or undefined when there is none. */
export function readCheckpointKey (path: string): KeyObject | undefined {
  if (!existsSync(path)) return undefined
  const key = createPrivateKey(readFileSync(path))
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path} holds a ${key.asymmetricKeyType} key, not an Ed25519 one`)
  return key
}

/** The key in `path`; created (mode 0600, never over an existing file) at the first start. */
export function checkpointKey (path: string): KeyObject {
  const existing = readCheckpointKey(path)
  if (existing !== undefined) return existing
  const { privateKey } = generateKeyPairSync('ed25519')
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' })
  return privateKey
}

/** An Ed25519 public key as its raw 32 bytes, base64: how checkpoints, verify and the README show it. */
export function publicKeyText (key: KeyObject): string {
  const { x } = createPublicKey(key).export({ format: 'jwk' })
  return Buffer.from(x!, 'base64url').toString('base64')
}

function publicKeyOf (text: string): KeyObject | undefined {
  const raw = Buffer.from(text, 'base64')
  if (raw.length !== 32 || raw.toString('base64') !== text) return undefined
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** The checkpoint of `head`, signed at `signedAt` (ISO 8601). */
export function signCheckpoint (key: KeyObject, head: Head, signedAt: string): EventOf<'ChainCheckpoint'> {
  const signature = sign(null, Buffer.from(audit.checkpointMessage(head.position, head.hash, signedAt)), key).toString('base64')
  return { type: 'ChainCheckpoint', data: { position: head.position, hash: head.hash, signed_at: signedAt, public_key: publicKeyText(key), signature } }
}

/** The committed head the read connection sees (position 0: the log is empty). */
export function headOf (db: Db): Head {
  const row = db.prepare('SELECT position, lower(hex(hash)) AS hash FROM events ORDER BY position DESC LIMIT 1').get() as Head | undefined
  return row ?? { position: 0, hash: '0'.repeat(64) }
}

const hashAt = (db: Db, position: number): string | undefined =>
  db.prepare('SELECT lower(hex(hash)) FROM events WHERE position = ?').pluck().get(position) as string | undefined

export interface RecordedCheckpoint {
  /** Where the checkpoint itself is in the log. */
  at: number
  recordedAt: number
  data: unknown
}

/** The checkpoints in the log, oldest first (their stream's index: never a walk over the log). */
export function recordedCheckpoints (db: Db, upTo = Number.MAX_SAFE_INTEGER): RecordedCheckpoint[] {
  return db.prepare(`SELECT position AS at, recorded_at AS recordedAt, data FROM events
    WHERE stream = (SELECT id FROM streams WHERE name = ?) AND type = (SELECT id FROM event_types WHERE name = 'ChainCheckpoint') AND position <= ?
    ORDER BY stream_version`).all(CHECKPOINT_STREAM, upTo).map(row => {
    const { at, recordedAt, data } = row as { at: number, recordedAt: number, data: string }
    return { at, recordedAt, data: JSON.parse(data) as unknown }
  })
}

export interface CheckpointReport {
  /** How many checkpoints hold (all of them, unless `broken`). */
  holding: number
  /** The last one that holds. */
  last?: { at: number, head: string, signed_at: string }
  /** Every key that signed one, in the order they first did. */
  keys: string[]
  /** The first that does not hold: where it is in the log, and why. */
  broken?: { position: number, reason: string }
}

/**
 * Every checkpoint up to `upTo` (the verified part of the log), oldest first: its signature must
 * hold, under one of `trusted` when given (else under the key it names), and the chain must have
 * the hash it signed at the position it signed. The first that fails is the verdict.
 */
export function checkCheckpoints (db: Db, upTo: number, trusted: readonly string[] = []): CheckpointReport {
  const report: CheckpointReport = { holding: 0, keys: [] }
  for (const { at, data } of recordedCheckpoints(db, upTo)) {
    const fail = (reason: string) => { report.broken = { position: at, reason: `the checkpoint at position ${at} ${reason}` }; return report }
    const parsed = audit.ChainCheckpoint.schema.safeParse(data)
    if (!parsed.success) return fail('is not a checkpoint')
    const { position, hash, signed_at: signedAt, public_key: publicKey, signature } = parsed.data
    const head = headText({ position, hash })
    if (!report.keys.includes(publicKey)) report.keys.push(publicKey)
    if (position >= at) return fail(`signs head ${position}, which is not before it`)
    if (trusted.length > 0 && !trusted.includes(publicKey)) return fail(`is signed by another key (${publicKey}) than the one trusted (${trusted.join(', ')})`)
    const key = publicKeyOf(publicKey)
    if (key === undefined) return fail(`names no Ed25519 key (${publicKey})`)
    if (!verify(null, Buffer.from(audit.checkpointMessage(position, hash, signedAt)), key, Buffer.from(signature, 'base64'))) {
      return fail(`(head ${head}, signed at ${signedAt}): its signature does not hold: it was changed after it was signed`)
    }
    const actual = hashAt(db, position)
    if (actual !== hash) {
      return fail(`signed head ${head} at ${signedAt}, but the log's hash at position ${position} is ${actual ?? 'missing'}: history up to position ${position} was rewritten since`)
    }
    report.holding += 1
    report.last = { at, head, signed_at: signedAt }
  }
  return report
}

export type ExpectedHeadResult =
  | { ok: true }
  | { ok: false, position: number, reason: string }

/**
 * Whether the first `expected.position` events are exactly those that had that head. The chain
 * up to there must verify (the caller walked it: `verifiedCount` rows hold); then the hash at the
 * position decides, since each hash covers every event before it. A head says nothing of which
 * event differs: only that one at or before its position does.
 */
export function checkExpectedHead (db: Db, expected: Head, verifiedCount: number): ExpectedHeadResult {
  if (expected.position > verifiedCount) {
    return { ok: false, position: verifiedCount + 1, reason: `the log ends at position ${verifiedCount}, before the expected head ${headText(expected)}: events were removed` }
  }
  const actual = expected.position === 0 ? '0'.repeat(64) : hashAt(db, expected.position)
  if (actual === expected.hash) return { ok: true }
  return {
    ok: false,
    position: expected.position,
    reason: `the log's head at position ${expected.position} is ${actual}, not the expected ${expected.hash}: history up to it was rewritten (an event at or before position ${expected.position} differs)`
  }
}

/** The last checkpoint recorded: where it is, and when. */
export function lastCheckpoint (db: Db): { at: number, recordedAt: number } | undefined {
  return db.prepare(`SELECT position AS at, recorded_at AS recordedAt FROM events
    WHERE stream = (SELECT id FROM streams WHERE name = ?) ORDER BY stream_version DESC LIMIT 1`).get(CHECKPOINT_STREAM) as { at: number, recordedAt: number } | undefined
}
