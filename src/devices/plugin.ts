import fp from 'fastify-plugin'
import { deviceQueries, type DeviceQueries } from './projections.ts'

declare module 'fastify' {
  interface FastifyInstance {
    devices: DeviceQueries
  }
}

/** What every kind of device shares: credentials, refusals, redelivery detection. */
export default fp(async function devicesPlugin (app) {
  app.decorate('devices', deviceQueries(app.store.db))
}, { name: 'devices', dependencies: ['store'] })
