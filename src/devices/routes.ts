import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { DeviceNotFound } from '../errors.ts'
import { Detail } from '../http/schemas.ts'
import type { DeviceLive } from './live.ts'
import type { NetworkPresence } from './network-presence.ts'
import type { RegisteredDevice } from './registry.ts'

const Errors = { 400: Detail, 401: Detail, 404: Detail }

export interface DeviceRoutesOptions {
  live: DeviceLive
  presence: NetworkPresence
}

/** Every device of every kind, its presence, and the per-device live channels. */
const deviceRoutes: FastifyPluginAsyncZod<DeviceRoutesOptions> = async function (app, { live, presence }) {
  app.addHook('onRequest', app.requireUser)
  const registry = app.deviceRegistry
  const { View, view } = app.deviceKinds
  const visible = (id: string, userId: string): RegisteredDevice => app.visibleTo(userId, registry.device(id), DeviceNotFound)

  app.get('/api/v1/devices', {
    schema: { querystring: z.object({ network: z.string().optional() }), response: { 200: z.array(View), ...Errors } }
  }, async request => {
    const { network } = request.query
    if (network === undefined) return registry.devicesOfUser(request.userId).map(view)
    app.requireMember(network, request.userId)
    return registry.devicesOf(network).map(view)
  })

  app.get('/api/v1/devices/:id', { schema: { params: z.object({ id: z.string() }), response: { 200: View, ...Errors } } },
    async request => view(visible(request.params.id, request.userId)))

  // Checked before the upgrade: a refusal is a plain HTTP 401 or 404.
  app.get('/api/v1/devices/:id/ws', {
    websocket: true,
    schema: {
      description: 'The live channels of one device. Send `{"type": "subscribe", "channels": [...]}`, `unsubscribe`, `ping`; ' +
        'receive `connected`, `pong`, `subscribed`/`unsubscribed`, `{"type": "error", "message"}`, and `{"type": <channel>, "data", "position"}`: ' +
        'the channel\'s snapshot on subscribe, then one message per relevant event as it commits. Channels: status, events, and those of the device\'s kind ' +
        '(measurements, logs, heartbeats, configuration; system-info, processes, network-interfaces, history, metrics; charging).',
      params: z.object({ id: z.string() }),
      response: Errors
    },
    preHandler: async request => { visible(request.params.id, request.userId) }
  }, (socket, request) => {
    live.join(visible(request.params.id, request.userId), socket)
  })

  app.get('/api/v1/networks/:network/presence', {
    websocket: true,
    schema: {
      description: 'Every device of a network on one socket: `{"type": "snapshot", "data": [{id, kind, online, last_seen, connected_since}]}` at connect, ' +
        'then `{"type": "status", data, position}` per change (a device\'s reports at most every 10 s).',
      params: z.object({ network: z.string() }),
      response: Errors
    },
    preHandler: async request => { app.requireMember(request.params.network, request.userId) }
  }, (socket, request) => {
    presence.join(request.params.network, socket)
  })
}

export default deviceRoutes
