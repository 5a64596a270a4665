/**
 * Every timer and every "now" in the service reads this, so tests control time and nothing
 * depends on when it runs. Times are milliseconds since the Unix epoch.
 */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): Timer
  setInterval(fn: () => void, ms: number): Timer
}

export interface Timer { cancel(): void }

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout (fn, ms) {
    const handle = setTimeout(fn, ms)
    return { cancel: () => clearTimeout(handle) }
  },
  setInterval (fn, ms) {
    const handle = setInterval(fn, ms)
    return { cancel: () => clearInterval(handle) }
  }
}

/** A clock that moves only when told to: `advance(ms)` fires what falls due, in order. */
export class ManualClock implements Clock {
  private current: number
  private timers: Array<{ due: number, fn: () => void, every?: number, cancelled: boolean }> = []

  constructor (start = Date.UTC(2026, 0, 1)) { this.current = start }

  now (): number { return this.current }

  setTimeout (fn: () => void, ms: number): Timer {
    const timer = { due: this.current + Math.max(0, ms), fn, cancelled: false }
    this.timers.push(timer)
    return { cancel: () => { timer.cancelled = true } }
  }

  setInterval (fn: () => void, ms: number): Timer {
    const timer = { due: this.current + ms, fn, every: Math.max(1, ms), cancelled: false }
    this.timers.push(timer)
    return { cancel: () => { timer.cancelled = true } }
  }

  advance (ms: number): void {
    const until = this.current + ms
    for (;;) {
      this.timers = this.timers.filter(t => !t.cancelled)
      const next = this.timers.filter(t => t.due <= until).sort((a, b) => a.due - b.due)[0]
      if (next === undefined) break
      this.current = next.due
      if (next.every === undefined) next.cancelled = true
      else next.due += next.every
      next.fn()
    }
    this.current = until
  }
}

export const toUnixSeconds = (ms: number): number => ms / 1000
