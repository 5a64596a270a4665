import type { Clock } from '../clock.ts'
import type { DomainEvent, EventOf, devices } from '../../events/index.ts'

export type RefusalKind = EventOf<'RefusalsSummarized'>['data']['refusal']

/** A refusal as the ledger tells them apart: two with the same key are identical (a connection's password is not part of it). */
export interface RefusalKey {
  streamId: string
  refusal: RefusalKind
  /** The client id (messages, subscriptions) or the address (connections). */
  source: string
  username: string | null
  reason: devices.RejectionReason
  topic: string | null
  detail: string
  /** What was refused, for a message: its payload's CRC-32 (a device repeating itself, not varying). */
  payload?: number
}

interface Entry {
  key: RefusalKey
  /** Null when this entry stands for every refusal past the budget (topics and details vary). */
  precise: boolean
  count: number
  firstAt: number
  lastAt: number
  topics: Set<string>
}

export const SUMMARY_WINDOW_MS = 60_000
/** Distinct refusals recorded in full per device (or per address) and window; the rest are counted. */
export const FULL_RECORDS_PER_WINDOW = 30
/** Distinct topics a summary names. */
const SUMMARY_TOPICS = 10

/**
 * Abuse costs the abuser, not the log. Within a window, a refusal identical to one on record is
 * only counted, and so is every refusal of a device (or an address) past FULL_RECORDS_PER_WINDOW
 * distinct ones; the window ends with one summary per refusal counted. So a flood of any size
 * adds a bounded number of events a minute, and a device's first mistakes are recorded in full.
 */
export class RefusalLedger {
  private readonly entries = new Map<string, Entry>()
  private readonly budgets = new Map<string, number>()

  constructor (private readonly clock: Clock) {}

  private static id (key: RefusalKey, precise: boolean): string {
    const { streamId, refusal, source, username, reason, topic, detail, payload } = key
    return JSON.stringify(precise ? [streamId, refusal, source, username, reason, topic, detail, payload] : [streamId, refusal, source, username, reason])
  }

  /** Whose budget a refusal spends: the device's for its messages, the address's for connections. */
  private static budgetOf (key: RefusalKey): string {
    return key.refusal === 'ConnectionRefused' ? `address ${key.source}` : `stream ${key.streamId}`
  }

  /** Inside a unit of work (only reads): true when this refusal is only to be counted. */
  isRepeat (key: RefusalKey): boolean {
    return this.entries.has(RefusalLedger.id(key, true)) || (this.budgets.get(RefusalLedger.budgetOf(key)) ?? 0) >= FULL_RECORDS_PER_WINDOW
  }

  /**
   * Outside a unit of work: true when this refusal is to be recorded in full; from then on the
   * ones identical to it are repeats, also while its record is being committed. `forget` it if
   * that commit fails.
   */
  claim (key: RefusalKey): boolean {
    if (this.isRepeat(key)) return false
    this.recorded(key)
    return true
  }

  /** After its commit (a refusal decided in a unit of work): the ones identical to it are repeats. */
  recorded (key: RefusalKey): void {
    const id = RefusalLedger.id(key, true)
    if (this.entries.has(id)) return
    this.entries.set(id, { key, precise: true, count: 0, firstAt: 0, lastAt: 0, topics: new Set() })
    const budget = RefusalLedger.budgetOf(key)
    this.budgets.set(budget, (this.budgets.get(budget) ?? 0) + 1)
  }

  /** Its record could not be committed: the next one identical to it is recorded in full. */
  forget (key: RefusalKey): void {
    if (!this.entries.delete(RefusalLedger.id(key, true))) return
    const budget = RefusalLedger.budgetOf(key)
    this.budgets.set(budget, (this.budgets.get(budget) ?? 1) - 1)
  }

  /** A refusal not recorded, counted into the window's summary of the one it repeats (or of the budget's overflow). */
  counted (key: RefusalKey): void {
    const now = this.clock.now()
    const precise = this.entries.has(RefusalLedger.id(key, true))
    const id = RefusalLedger.id(key, precise)
    let entry = this.entries.get(id)
    if (entry === undefined) this.entries.set(id, entry = { key, precise, count: 0, firstAt: 0, lastAt: 0, topics: new Set() })
    if (entry.count === 0) entry.firstAt = now
    entry.count++
    entry.lastAt = now
    if (key.topic !== null && entry.topics.size < SUMMARY_TOPICS) entry.topics.add(key.topic)
  }

  /**
   * Ends the window: one summary per refusal that was counted. An identical flood goes on into
   * the next window as repeats (one summary a minute); a refusal that was not repeated is
   * forgotten, and budgets start again. The caller appends the summaries.
   */
  closeWindow (): Array<{ streamId: string, event: DomainEvent }> {
    const summaries: Array<{ streamId: string, event: DomainEvent }> = []
    for (const [id, entry] of this.entries) {
      if (entry.count === 0) {
        this.entries.delete(id)
        continue
      }
      const { streamId, refusal, source, username, reason, detail } = entry.key
      summaries.push({
        streamId,
        event: {
          type: 'RefusalsSummarized',
          data: {
            refusal, source, username, reason,
            detail: entry.precise ? detail : null,
            count: entry.count,
            topics: [...entry.topics],
            first_at: new Date(entry.firstAt).toISOString(),
            last_at: new Date(entry.lastAt).toISOString()
          }
        }
      })
      if (entry.precise) {
        entry.count = 0
        entry.topics.clear()
      } else {
        this.entries.delete(id)
      }
    }
    this.budgets.clear()
    return summaries
  }
}

/** The connections of a blocked address, closed at the socket: counted against its SourceBlocked. */
export const blockedKey = (address: string): RefusalKey =>
  ({ streamId: 'broker', refusal: 'ConnectionRefused', source: address, username: null, reason: 'source_blocked', topic: null, detail: 'the address is blocked' })
