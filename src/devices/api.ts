import type { FastifyInstance } from 'fastify'
import { createDeviceLive } from './live.ts'
import { createNetworkPresence } from './network-presence.ts'
import deviceRoutes from './routes.ts'
import deviceStateRoutes from './state-routes.ts'

/** `/api/v1/devices`: every device, whatever its kind, with presence and live channels. */
export default async function devicesApi (app: FastifyInstance) {
  const registry = app.deviceRegistry
  const live = createDeviceLive(app.store, app.clock, app.deviceChannels, { registry, devices: app.devices })
  const presence = createNetworkPresence(app.store, app.clock, registry, app.devices)
  app.addHook('preClose', async () => { live.close(); presence.close() })
  await app.register(deviceRoutes, { live, presence })
  await app.register(deviceStateRoutes, { registry })
}
