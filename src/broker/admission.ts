import type { Socket } from 'node:net'
import type { Clock, Timer } from '../clock.ts'

const ignore = () => {}

export interface AdmissionOptions {
  /** Connections between accept and CONNACK at once. */
  concurrent: number
  /** How long one may hold its place: one that never says CONNECT holds nobody up for longer. */
  holdMs: number
  clock: Clock
  /** Sets a connection up as an MQTT client (Aedes's handle). */
  handle: (socket: Socket) => void
  /** True closes the connection at once (an address blocked for failing authentication). */
  refuse: (socket: Socket) => boolean
}

export interface Admission {
  /** The net server's connection listener. */
  accept(socket: Socket): void
  /** The connection has its CONNACK (or failed authentication): its place goes to the next. */
  release(socket: Socket): void
  /** Accepted connections waiting for a place. */
  readonly waiting: number
}

/**
 * Accepted connections, handed to the broker so that at most `concurrent` of them are being set
 * up (accept to CONNACK) at once; the rest wait their turn, in order. After a power cut every
 * device connects at once, and Aedes sets each one up in steps that the event loop runs for all
 * of them together: unbounded, one such turn holds HTTP and every connected device for a second.
 */
export function admitConnections ({ concurrent, holdMs, clock, handle, refuse }: AdmissionOptions): Admission {
  const waiting: Array<Socket | undefined> = []
  let next = 0
  let settingUp = 0
  const places = new WeakMap<Socket, Timer>()

  function admit () {
    while (settingUp < concurrent && next < waiting.length) {
      const socket = waiting[next]!
      waiting[next++] = undefined
      socket.off('error', ignore)
      // One that hung up while it waited never became a client: nothing to record.
      if (socket.destroyed) continue
      settingUp++
      places.set(socket, clock.setTimeout(() => release(socket), holdMs))
      socket.once('close', () => release(socket))
      handle(socket)
    }
    if (next === waiting.length) {
      waiting.length = 0
      next = 0
    }
  }
  function release (socket: Socket) {
    const timer = places.get(socket)
    if (timer === undefined) return
    timer.cancel()
    places.delete(socket)
    settingUp--
    // In a later turn, so that the client that made room finishes its own first.
    setImmediate(admit)
  }

  return {
    accept (socket) {
      // Until the broker takes it, a reset must not go unhandled.
      socket.on('error', ignore)
      if (refuse(socket)) {
        socket.destroy()
        return
      }
      waiting.push(socket)
      admit()
    },
    release,
    get waiting () { return waiting.length - next }
  }
}
