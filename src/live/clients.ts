import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { WebSocket } from 'ws'

export type LiveTransport = 'websocket' | 'sse'

/**
 * Every WebSocket and server-sent event stream open now, by route, seen in one place for every
 * capability (none of them reports its own): a WebSocket as @fastify/websocket upgrades it, an
 * event stream as a GET answered by a hijacked reply that has sent its headers and not ended,
 * which is the only kind of open-ended answer this service gives over plain HTTP.
 * Register after @fastify/websocket (its onRequest sets `request.ws`) and before the routes.
 */
export function trackLiveClients (app: FastifyInstance) {
  const upgradeRoute = new WeakMap<IncomingMessage, string>()
  const websockets = new Map<string, number>()
  /** GET replies not yet closed; most close within milliseconds. */
  const replies = new Set<FastifyReply>()
  /** Routes that had an event stream once: reported at 0 after their last one closes, not dropped. */
  const streamRoutes = new Set<string>()

  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unknown'
    if (request.ws) {
      upgradeRoute.set(request.raw, route)
    } else if (request.method === 'GET') {
      replies.add(reply)
      reply.raw.once('close', () => replies.delete(reply))
    }
    done()
  })

  app.websocketServer.on('connection', (socket: WebSocket, raw: IncomingMessage) => {
    const route = upgradeRoute.get(raw) ?? 'unknown'
    websockets.set(route, (websockets.get(route) ?? 0) + 1)
    socket.once('close', () => websockets.set(route, websockets.get(route)! - 1))
  })

  return {
    /** Open clients by transport and route, counted now. */
    count (): Array<{ transport: LiveTransport, route: string, clients: number }> {
      const streams = new Map<string, number>()
      for (const route of streamRoutes) streams.set(route, 0)
      for (const reply of replies) {
        // `sent` before the end is a hijacked reply; headers out and no end is a stream.
        if (!reply.sent || !reply.raw.headersSent || reply.raw.writableEnded) continue
        const route = reply.request.routeOptions.url ?? 'unknown'
        streamRoutes.add(route)
        streams.set(route, (streams.get(route) ?? 0) + 1)
      }
      return [
        ...[...websockets].map(([route, clients]) => ({ transport: 'websocket' as const, route, clients })),
        ...[...streams].map(([route, clients]) => ({ transport: 'sse' as const, route, clients }))
      ]
    }
  }
}
export type LiveClients = ReturnType<typeof trackLiveClients>
