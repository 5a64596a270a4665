import { hash } from 'node:crypto'

// The hash chain on its own (no schemas), so that verify's threads start fast.

export const GENESIS_HASH = '0'.repeat(64)

/**
 * Chains a row to its predecessor: any edit or removal of a past row changes every later hash.
 * The hashed text is the row as the first versions of the log stored it (names, ISO time),
 * so the chain does not depend on how rows are laid out on disk.
 */
export function chainText (previousHash: string, position: number, streamId: string, streamVersion: number, type: string,
  schemaVersion: number, recordedAt: string, data: string, metadata: string): string {
  return JSON.stringify([previousHash, position, streamId, streamVersion, type, schemaVersion, recordedAt, data, metadata])
}

export function chainHash (...row: Parameters<typeof chainText>): Buffer {
  return hash('sha256', chainText(...row), 'buffer') as unknown as Buffer
}

/** The same, as lowercase hex. */
export const chainHashHex = (...row: Parameters<typeof chainText>): string => hash('sha256', chainText(...row))

export const isoTime = (ms: number): string => new Date(ms).toISOString()
