import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { userMetadata } from '../accounts/authentication.ts'
import { newSecret, sha256 } from '../accounts/secrets.ts'
import { DeviceNotFound } from '../errors.ts'
import { decideHost } from '../hosts/decider.ts'
import { Detail } from '../http/schemas.ts'
import type { DeviceLive } from './live.ts'
import type { NetworkPresence } from './network-presence.ts'
import type { RegisteredDevice, RegistryQueries } from './registry.ts'

const Errors = { 400: Detail, 401: Detail, 404: Detail }
const Device = z.object({
  id: z.string(),
  kind: z.enum(['sensor', 'socket', 'zone', 'charger', 'host']),
  name: z.string(),
  network_identifier: z.string(),
  online: z.boolean(),
  last_seen: z.string().nullable(),
  connected_since: z.string().nullable()
})

export interface DeviceRoutesOptions {
  registry: RegistryQueries
  live: DeviceLive
  presence: NetworkPresence
}

/** Every device of every kind, its presence, host registration, and the per-device live channels. */
const deviceRoutes: FastifyPluginAsyncZod<DeviceRoutesOptions> = async function (app, { registry, live, presence }) {
  app.addHook('onRequest', app.requireUser)

  const view = (device: RegisteredDevice): z.infer<typeof Device> => {
    const presence = app.devices.presence(device.stream_id)
    return {
      id: device.device_id,
      kind: device.kind,
      name: device.name,
      network_identifier: device.network_id,
      online: presence.online,
      last_seen: registry.lastSeen(device.stream_id),
      connected_since: presence.online ? presence.since : null
    }
  }
  const visible = (id: string, userId: string): RegisteredDevice => {
    const device = registry.device(id)
    if (device === undefined || !app.accounts.isMember(device.network_id, userId)) throw new DeviceNotFound()
    return device
  }

  app.post('/api/v1/devices', {
    schema: {
      body: z.object({ name: z.string().min(1).max(200), kind: z.literal('host'), network_identifier: z.string() }),
      response: { 201: Device.extend({ mqtt: z.object({ username: z.string(), password: z.string() }) }), ...Errors }
    }
  }, async (request, reply) => {
    const { name, network_identifier } = request.body
    const id = randomUUID()
    const password = newSecret()
    await app.store.transact(tx => tx.append(`host-${id}`, decideHost(id,
      { type: 'RegisterHost', device_identifier: id, name, network_identifier, mqtt_password_sha256: sha256(password) },
      { networkAllowed: app.accounts.isMember(network_identifier, request.userId) }
    ), { expectedVersion: 'no_stream', metadata: userMetadata(request) }))
    return reply.code(201).send({ ...view(registry.device(id)!), mqtt: { username: id, password } })
  })

  app.get('/api/v1/devices', {
    schema: { querystring: z.object({ network: z.string().optional() }), response: { 200: z.array(Device), ...Errors } }
  }, async request => {
    const { network } = request.query
    if (network === undefined) return registry.devicesOfUser(request.userId).map(view)
    app.requireMember(network, request.userId)
    return registry.devicesOf(network).map(view)
  })

  app.get('/api/v1/devices/:id', { schema: { params: z.object({ id: z.string() }), response: { 200: Device, ...Errors } } },
    async request => view(visible(request.params.id, request.userId)))

  // Checked before the upgrade: a refusal is a plain HTTP 401 or 404.
  app.get('/api/v1/devices/:id/ws', {
    websocket: true,
    schema: { params: z.object({ id: z.string() }), response: Errors },
    preHandler: async request => { visible(request.params.id, request.userId) }
  }, (socket, request) => {
    live.join(visible(request.params.id, request.userId), socket)
  })

  app.get('/api/v1/networks/:network/presence', {
    websocket: true,
    schema: { params: z.object({ network: z.string() }), response: Errors },
    preHandler: async request => { app.requireMember(request.params.network, request.userId) }
  }, (socket, request) => {
    presence.join(request.params.network, socket)
  })
}

export default deviceRoutes
