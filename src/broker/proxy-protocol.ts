import { isIPv4, isIPv6, type Socket } from 'node:net'
import proxyAddr from '@fastify/proxy-addr'
import type { Clock } from '../clock.ts'

/**
 * A balancer in front (TRUST_PROXY): MQTT connections from it begin with a PROXY protocol header
 * (version 1, HAProxy's `send-proxy`) naming the device's own address, and MQTT over WebSocket
 * comes with X-Forwarded-For. The address is what the refusal policy counts and blocks: without
 * it, every device behind the balancer would share the balancer's, and one that failed its
 * password often enough would block them all.
 */

/** `PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\r\n`, or `PROXY UNKNOWN ...\r\n`: at most 107 bytes. */
const MAX_HEADER = 107
const HEADER = /^PROXY (?:(TCP4|TCP6) (\S+) (\S+) (0|[1-9]\d{0,4}) (0|[1-9]\d{0,4})|UNKNOWN(?: [^\r\n]*)?)$/
/** How long a connection from the balancer may take to send its header. */
const HEADER_TIMEOUT_MS = 5000

/** The device's own address, by socket (or HTTP request of MQTT over WebSocket), where a balancer named it. */
const named = new WeakMap<object, string>()

/** Where a connection comes from: the address the balancer named, else its TCP peer. */
export function peerAddress (socket: { remoteAddress?: string }): string | undefined {
  return named.get(socket) ?? socket.remoteAddress
}

/** The address a balancer named for a socket or request, if one did. */
export const namedAddress = (carrier: object): string | undefined => named.get(carrier)

/** Records the address a trusted proxy named for a socket or request (MQTT over WebSocket: Fastify's `request.ip`). */
export function nameAddress (carrier: object, address: string): void {
  named.set(carrier, address)
}

/** Whether an address is a trusted balancer's (TRUST_PROXY: addresses and CIDR ranges). */
export function trustedProxies (list: readonly string[]): (address: string | undefined) => boolean {
  if (list.length === 0) return () => false
  const trust = proxyAddr.compile([...list])
  return address => address !== undefined && trust(address, 0)
}

const SIGNATURE = Buffer.from('PROXY ')

/** Both addresses of the family the header names, both ports within range. */
function wellFormed ([, family, source, destination, sourcePort, destinationPort]: RegExpExecArray): boolean {
  const isFamily = family === 'TCP4' ? isIPv4 : isIPv6
  return isFamily(source!) && isFamily(destination!) && Number(sourcePort) <= 65535 && Number(destinationPort) <= 65535
}

/**
 * Reads the PROXY header a trusted balancer sends first, then hands the socket on with the rest
 * of its bytes unread. A connection from that address that starts with MQTT instead (a client on
 * the balancer's own machine, a balancer without `send-proxy`) is handed on as it is, under its
 * TCP peer's address. A header that is not valid, or not complete in time, closes the connection.
 */
export function readProxyHeader (socket: Socket, clock: Clock, then: (socket: Socket) => void): void {
  let buffered: Buffer = Buffer.alloc(0)
  // Until it is handed on, a reset must not go unhandled.
  const ignore = () => {}
  socket.on('error', ignore)
  const fail = () => {
    socket.off('data', onData)
    timer.cancel()
    socket.destroy()
  }
  const timer = clock.setTimeout(fail, HEADER_TIMEOUT_MS)
  const onData = (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    const signed = buffered.subarray(0, SIGNATURE.length)
    if (!signed.equals(SIGNATURE.subarray(0, signed.length))) return handOn(buffered)
    const end = buffered.indexOf('\r\n')
    if (end === -1) {
      if (buffered.length >= MAX_HEADER) fail()
      return
    }
    const match = end <= MAX_HEADER - 2 ? HEADER.exec(buffered.subarray(0, end).toString('latin1')) : null
    if (match === null || (match[1] !== undefined && !wellFormed(match))) return fail()
    // UNKNOWN: the balancer's own connection (a health check); its peer address stands.
    if (match[2] !== undefined) named.set(socket, match[2])
    handOn(buffered.subarray(end + 2))
  }
  const handOn = (unread: Buffer) => {
    socket.off('data', onData)
    socket.pause()
    timer.cancel()
    if (unread.length > 0) socket.unshift(unread)
    socket.off('error', ignore)
    then(socket)
  }
  socket.on('data', onData)
  socket.once('close', () => timer.cancel())
}
