import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import WebSocket from 'ws'
import type { Service, Teardown } from './service.ts'

/** A `ws` client and every JSON message it got, read in order with next(). */
export interface TrackedSocket {
  ws: WebSocket
  messages: any[]
  /** The next message not read yet (waits for it; fails if the socket closes first). */
  next(): Promise<any>
  /** Messages received but not read with next() yet. */
  unread(): any[]
  send(message: unknown): void
  /** Resolves with the close code and reason (the 'close' event). */
  closed: Promise<{ code: number, reason: string }>
}

/** Keeps every message of a socket from now on: no message is lost between awaits. */
export function track (ws: WebSocket): TrackedSocket {
  const messages: any[] = []
  let read = 0
  let wake: (() => void) | undefined
  ws.on('message', data => {
    messages.push(JSON.parse(String(data)))
    wake?.()
  })
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
      wake?.()
    })
  })
  return {
    ws,
    messages,
    closed,
    async next () {
      while (read >= messages.length) {
        if (ws.readyState === ws.CLOSED) throw new Error('the socket closed while a message was awaited')
        await new Promise<void>(resolve => { wake = resolve })
        wake = undefined
      }
      return messages[read++]
    },
    unread: () => messages.slice(read),
    send: message => ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }
}

/**
 * A TCP connection that asks for a WebSocket upgrade by hand (no client library reading for
 * it): the caller reads as much as it wants, then can stop reading to play a stalled client.
 */
export async function upgradeByHand (t: { teardown(fn: () => unknown): void }, serviceUrl: string, path: string): Promise<Socket> {
  const { port } = new URL(serviceUrl)
  const socket = netConnect(Number(port), '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  await once(socket, 'connect')
  socket.write([
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))
  return socket
}

/** ws://127.0.0.1:<port><path> of a service. */
export const wsUrl = (service: Service, path: string): string => service.url.replace(/^http/, 'ws') + path

export class RefusedUpgrade extends Error {
  constructor (readonly status: number) { super(`upgrade refused: ${status}`) }
}

/** Opens a WebSocket, tracked, and resolves once it is open (rejects with the HTTP status of a refused upgrade). */
export async function openWs (t: Teardown, service: Service, path: string, options: WebSocket.ClientOptions = {}): Promise<TrackedSocket> {
  const ws = new WebSocket(wsUrl(service, path), options)
  const client = track(ws)
  t.teardown(() => { if (ws.readyState !== ws.CLOSED) ws.terminate() })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_request, response) => { response.resume(); reject(new RefusedUpgrade(response.statusCode ?? 0)) })
    ws.once('error', reject)
  })
  return client
}

/** The HTTP status a refused WebSocket upgrade answered with (fails if the upgrade is accepted). */
export function upgradeStatus (service: Service, path: string): Promise<number> {
  const ws = new WebSocket(wsUrl(service, path))
  return new Promise<number>((resolve, reject) => {
    ws.once('open', () => { ws.terminate(); reject(new Error(`${path}: the upgrade was accepted`)) })
    ws.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      response.resume()
      ws.terminate()
    })
    ws.once('error', () => undefined)
  })
}
