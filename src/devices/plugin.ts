import fp from 'fastify-plugin'
import { LiveChannels } from './live-channels.ts'
import { deviceQueries, type DeviceQueries } from './projections.ts'
import type { DeviceStateDeclaration } from './state-as-of.ts'

declare module 'fastify' {
  interface FastifyInstance {
    devices: DeviceQueries
    /** The live channels of `/api/v1/devices/<id>/ws`: the shared ones and those each capability declares. */
    deviceChannels: LiveChannels
    /** Each kind's fold of its own stream, declared by its capability (GET /api/v1/devices/<id>/state). */
    deviceStates: {
      declare(declaration: DeviceStateDeclaration): void
      of(kind: string): DeviceStateDeclaration | undefined
    }
  }
}

/** What every kind of device shares: credentials, refusals, redelivery detection, the state as of a moment. */
export default fp(async function devicesPlugin (app) {
  app.decorate('devices', deviceQueries(app.store.db))
  app.decorate('deviceChannels', new LiveChannels())
  const declarations = new Map<string, DeviceStateDeclaration>()
  app.decorate('deviceStates', {
    declare (declaration: DeviceStateDeclaration) { declarations.set(declaration.kind, declaration) },
    of: (kind: string) => declarations.get(kind)
  })
}, { name: 'devices', dependencies: ['store'] })
