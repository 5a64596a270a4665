import type { WebSocket } from 'ws'
import type { Clock, Timer } from '../clock.ts'

/**
 * A WebSocket client that lets this much pile up unsent is dropped: live views push small
 * messages often, and one stalled browser must not hold the service's memory.
 */
export const MAX_BUFFERED_BYTES = 256 * 1024

/** Sends, or drops the client if it cannot keep up. False when the message was not sent. */
export function sendBounded (socket: WebSocket, text: string): boolean {
  if (socket.readyState !== socket.OPEN) return false
  if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
    socket.terminate()
    return false
  }
  socket.send(text)
  return true
}

/**
 * One clock timer for every listener (not one per client): it runs while anyone listens and
 * hands each tick's time to all of them, so a broadcast is serialised once per tick.
 */
export function createTicker (clock: Clock, periodMs: number) {
  const listeners = new Set<(now: number) => void>()
  let timer: Timer | undefined
  return {
    add (listener: (now: number) => void): () => void {
      listeners.add(listener)
      timer ??= clock.setInterval(() => { const now = clock.now(); for (const l of listeners) l(now) }, periodMs)
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0) { timer?.cancel(); timer = undefined }
      }
    },
    get listeners () { return listeners.size },
    close () { timer?.cancel(); timer = undefined; listeners.clear() }
  }
}
export type Ticker = ReturnType<typeof createTicker>
