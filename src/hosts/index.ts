import type { FastifyInstance } from 'fastify'
import { hostHomeAssistant } from './home-assistant.ts'
import { hostDeviceKind } from './mqtt.ts'
import { hostState } from './state.ts'
import { hostTopics } from './topics.ts'
import { hostChannels } from './channels.ts'
import { hostQueries } from './projections.ts'
import hostRoutes from './routes.ts'

export { hostMetricsProjection } from './projections.ts'

/** Host agents: computers reporting system info, processes, interfaces and metrics over MQTT. */
export default async function hosts (app: FastifyInstance) {
  app.broker.registerKind(hostDeviceKind())
  app.deviceStates.declare(hostState)
  app.homeAssistant.declare(hostHomeAssistant(hostQueries(app.store.db)))
  app.mqttTopics.declare(hostTopics)
  app.deviceChannels.declare(...hostChannels(hostQueries(app.store.db)))
  await app.register(hostRoutes)
}
