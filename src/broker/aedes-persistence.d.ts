// aedes-persistence types its in-memory class only through its main entry, which wraps it in
// callbacks; the class itself is what src/broker/retained.ts extends.
declare module 'aedes-persistence/asyncPersistence.js' {
  import type { PublishPacket } from 'aedes'
  import type { Readable } from 'node:stream'

  /** A publish as Aedes stores it (its own copy, with the broker's id and counter). */
  export class Packet {
    constructor (packet: Pick<PublishPacket, 'cmd' | 'topic' | 'payload' | 'qos' | 'retain'> & Partial<PublishPacket>, broker?: unknown)
    cmd: 'publish'
    topic: string
    payload: Buffer | string
    qos: 0 | 1 | 2
    retain: boolean
    dup: boolean
  }

  export default class MemoryPersistence {
    setup (broker: unknown): Promise<void>
    storeRetained (packet: Packet): Promise<void>
    createRetainedStream (pattern: string): Readable
    createRetainedStreamCombi (patterns: string[]): Readable
    outgoingEnqueue (sub: { clientId: string }, packet: Packet): Promise<void>
    outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: Packet): Promise<void>
  }
}
