import type { FastifyInstance } from 'fastify'
import { startCallbackDelivery } from './callbacks.ts'
import { socketDeviceKind } from './mqtt.ts'
import { createPlugControl } from './plug-control.ts'
import { socketQueries } from './projections.ts'
import socketRoutes from './routes.ts'
import { startSocketTimers } from './timers.ts'

export { socketsProjection } from './projections.ts'

export interface SocketsOptions {
  replyTimeoutMs: number
  defaultTopic: string | undefined
}

/** Smart sockets: Tasmota plugs on the broker, the instances that share them, their timers and callbacks. */
export default async function sockets (app: FastifyInstance, { replyTimeoutMs, defaultTopic }: SocketsOptions) {
  const queries = socketQueries(app.store.db)
  const control = createPlugControl({ store: app.store, broker: app.broker, clock: app.clock, sockets: queries, replyTimeoutMs, log: app.log })
  // When a plug subscribes to its commands, ask for its general status (name, power, firmware).
  app.broker.registerKind(socketDeviceKind(queries, socketId => {
    control.query(socketId, 'STATUS', '0').catch(error => app.log.warn({ err: error }, 'could not ask a plug for its status'))
  }))
  const stopTimers = startSocketTimers({ store: app.store, clock: app.clock, sockets: queries, control, log: app.log })
  const stopCallbacks = startCallbackDelivery({ store: app.store, clock: app.clock, sockets: queries, control, log: app.log })
  app.addHook('preClose', async () => {
    stopTimers()
    stopCallbacks()
    control.close()
  })
  await app.register(socketRoutes, { sockets: queries, control, defaultTopic })
}
