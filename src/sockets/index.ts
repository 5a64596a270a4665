import type { FastifyInstance } from 'fastify'
import { startCallbackDelivery } from './callbacks.ts'
import { socketHomeAssistant } from './home-assistant.ts'
import { socketKind } from './kind.ts'
import { socketDeviceKind } from './mqtt.ts'
import { createPlugControl } from './plug-control.ts'
import { socketQueries } from './projections.ts'
import socketRoutes from './routes.ts'
import { startSocketTimers } from './timers.ts'
import { socketState } from './state.ts'
import { socketTopics } from './topics.ts'

export { socketsProjection } from './projections.ts'

export interface SocketsOptions {
  replyTimeoutMs: number
  /** SOCKET_RESEND_SECONDS, in ms. */
  resendMs: number
  defaultTopic: string | undefined
}

/** Smart sockets: Tasmota plugs on the broker, the instances that share them, their timers and callbacks. */
export default async function sockets (app: FastifyInstance, { replyTimeoutMs, resendMs, defaultTopic }: SocketsOptions) {
  const queries = socketQueries(app.store.db)
  const control = createPlugControl({
    store: app.store,
    broker: app.broker,
    clock: app.clock,
    sockets: queries,
    replyTimeoutMs,
    resendMs,
    connected: socketId => app.devices.presence(`socket-${socketId}`).online,
    log: app.log
  })
  app.deviceKinds.declare(socketKind, {
    // When a plug subscribes to its commands: first what it should be, if it has not confirmed it
    // (a command published while it was away is lost), then ask for its general status.
    mqtt: socketDeviceKind(queries, socketId => {
      control.resendDesired(socketId, 'reconnected')
        .then(() => control.query(socketId, 'STATUS', '0'))
        .catch(error => app.log.warn({ err: error }, 'could not bring a plug up to date'))
    }),
    state: socketState,
    topics: socketTopics,
    homeAssistant: socketHomeAssistant({ sockets: queries, control, tasmota: app.homeAssistant.tasmota })
  })
  // Instance stops, waits, energy polls, callback retries and resends run on the node that runs the timers.
  app.timers.own('socket timers', () => startSocketTimers({ store: app.store, clock: app.clock, sockets: queries, control, log: app.log }))
  app.timers.own('socket callbacks', () => startCallbackDelivery({ store: app.store, clock: app.clock, sockets: queries, control, log: app.log }))
  app.timers.own('plug resends', control.startResends)
  app.addHook('preClose', async () => control.close())
  await app.register(socketRoutes, { sockets: queries, control, defaultTopic })
}
