import type { Clock } from '../clock.ts'

const WINDOW_MS = 60_000

/**
 * The refusal policy's count, for one connection of a device (MQTT or WebSocket): a refusal
 * never costs the connection, only more than `max` of them within a minute do.
 */
export class RefusalWindow {
  private times: number[] = []

  constructor (private readonly clock: Clock, readonly max: number) {}

  /** Counts one refusal; true when that makes too many, and the connection is to be cut off. */
  add (): boolean {
    const now = this.clock.now()
    this.times = this.times.filter(at => at > now - WINDOW_MS)
    this.times.push(now)
    return this.times.length > this.max
  }

  get detail (): string { return `more than ${this.max} refusals in a minute` }
}
