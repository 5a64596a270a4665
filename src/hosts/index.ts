import type { FastifyInstance } from 'fastify'
import { hostHomeAssistant } from './home-assistant.ts'
import { hostKind } from './kind.ts'
import { hostDeviceKind } from './mqtt.ts'
import { hostState } from './state.ts'
import { hostTopics } from './topics.ts'
import { hostChannels } from './channels.ts'
import { hostQueries } from './projections.ts'
import hostRoutes from './routes.ts'

export { hostMetricsProjection } from './projections.ts'

/** Host agents: computers reporting system info, processes, interfaces and metrics over MQTT. */
export default async function hosts (app: FastifyInstance) {
  const queries = hostQueries(app.store.db)
  app.deviceKinds.declare(hostKind, {
    mqtt: hostDeviceKind(),
    state: hostState,
    channels: hostChannels(queries),
    topics: hostTopics,
    homeAssistant: hostHomeAssistant(queries)
  })
  await app.register(hostRoutes)
}
