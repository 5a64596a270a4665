import type { Clock, Timer } from '../clock.ts'

/**
 * At most one push per key every `ms`. An update offered sooner is held back, the latest one
 * winning, and pushed when the interval ends; an urgent one is pushed at once and replaces what
 * was held. A dashboard is spared ten pushes a second, yet always ends up with the last word.
 */
export class LatestEvery<T> {
  private readonly lastPush = new Map<string, number>()
  private readonly held = new Map<string, { value: T, timer: Timer }>()

  constructor (
    private readonly clock: Clock,
    private readonly ms: number,
    private readonly push: (key: string, value: T) => void
  ) {}

  offer (key: string, value: T, urgent: boolean): void {
    const wait = (this.lastPush.get(key) ?? -Infinity) + this.ms - this.clock.now()
    const held = this.held.get(key)
    if (!urgent && wait > 0) {
      const timer = held?.timer ?? this.clock.setTimeout(() => {
        const latest = this.held.get(key)
        this.held.delete(key)
        if (latest !== undefined) this.offer(key, latest.value, true)
      }, wait)
      this.held.set(key, { value, timer })
      return
    }
    held?.timer.cancel()
    this.held.delete(key)
    this.lastPush.set(key, this.clock.now())
    this.push(key, value)
  }

  /** Drops what is kept for the keys `matches` selects (their audience is gone). */
  forget (matches: (key: string) => boolean): void {
    for (const [key, held] of this.held) if (matches(key)) { held.timer.cancel(); this.held.delete(key) }
    for (const key of this.lastPush.keys()) if (matches(key)) this.lastPush.delete(key)
  }

  clear (): void {
    this.forget(() => true)
  }
}
