import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `chain`. The service's own statements about its log.

/**
 * The head of the log (`position`, and `hash`, the chain's hash of the event at that position)
 * as the service saw it at `signed_at`, signed with the service's Ed25519 key. `public_key` is
 * that key's raw 32 bytes, base64; `signature` is the Ed25519 signature, base64, of
 * `checkpointMessage(position, hash, signed_at)`. Recorded every CHECKPOINT_INTERVAL_HOURS.
 */
export const ChainCheckpoint = defineEvent('ChainCheckpoint', 1, z.object({
  position: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  signed_at: z.iso.datetime(),
  public_key: z.string(),
  signature: z.string()
}))

/** What a checkpoint's signature signs: unambiguous, and named so that it signs nothing else. */
export const checkpointMessage = (position: number, hash: string, signedAt: string): string =>
  JSON.stringify(['devicelog ChainCheckpoint 1', position, hash, signedAt])
