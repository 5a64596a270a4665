import type { Clock } from '../clock.ts'

const WINDOW_MS = 60_000
/** How long the CONNACK of a failure past half the limit is held. */
export const FAILED_CONNACK_DELAY_MS = 1000

export interface FailedConnectsOptions {
  /** Failed CONNECTs from one address within a minute before the address is blocked. */
  maxPerMinute: number
  /** How long a blocked address's connections are closed at the socket. */
  blockMs: number
}

/** What to do with a failed CONNECT: how long to hold its CONNACK; `blockedUntil` once, when it blocks the address. */
export interface FailedConnect { delayMs: number, failures: number, blockedUntil?: number }

/**
 * Failed CONNECTs per source address, so that guessing costs the guesser: past half the limit
 * within a minute each failure's CONNACK is held a second; past the limit the address is closed
 * at the socket for a while. Only failures count: a device that authenticates is never held.
 */
export class FailedConnects {
  private readonly failures = new Map<string, number[]>()
  private readonly blocked = new Map<string, number>()

  constructor (private readonly clock: Clock, private readonly options: FailedConnectsOptions) {}

  fail (address: string): FailedConnect {
    const now = this.clock.now()
    const times = (this.failures.get(address) ?? []).filter(at => at > now - WINDOW_MS)
    times.push(now)
    this.failures.set(address, times)
    const failures = times.length
    const delayMs = failures > this.options.maxPerMinute / 2 ? FAILED_CONNACK_DELAY_MS : 0
    if (failures <= this.options.maxPerMinute || this.isBlocked(address)) return { delayMs, failures }
    const blockedUntil = now + this.options.blockMs
    this.blocked.set(address, blockedUntil)
    this.failures.delete(address)
    return { delayMs, failures, blockedUntil }
  }

  /** Whether connections from this address are closed at the socket now. */
  isBlocked (address: string): boolean {
    const until = this.blocked.get(address)
    if (until === undefined) return false
    if (until > this.clock.now()) return true
    this.blocked.delete(address)
    return false
  }

  /** Forgets addresses that stopped failing, so a wide scan does not grow memory forever. */
  sweep (): void {
    const now = this.clock.now()
    for (const [address, times] of this.failures) if (times.at(-1)! <= now - WINDOW_MS) this.failures.delete(address)
    for (const address of this.blocked.keys()) this.isBlocked(address)
  }
}
