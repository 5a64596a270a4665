import type { FastifyInstance } from 'fastify'
import type { ConfigurationMessage } from '../../events/sensors.ts'
import activityStream from './activity-stream.ts'
import { sensorHomeAssistant } from './home-assistant.ts'
import { configurationTopic, sensorDeviceKind } from './mqtt.ts'
import { sensorQueries } from './projections.ts'
import sensorRoutes from './routes.ts'
import { sensorState } from './state.ts'
import { sensorTopics } from './topics.ts'
import { sensorChannels } from './channels.ts'
import { sensorKind } from './kind.ts'

export { sensorProjections } from './projections.ts'

export interface SensorsOptions { summaryIntervalSeconds: number }

/** The sensor network: its device kind on the broker, its HTTP routes, its live stream. */
export default async function sensors (app: FastifyInstance, options: SensorsOptions) {
  const queries = sensorQueries(app.store.db)
  app.deviceKinds.declare(sensorKind, {
    mqtt: sensorDeviceKind(queries),
    state: sensorState,
    channels: sensorChannels(queries),
    topics: sensorTopics,
    homeAssistant: sensorHomeAssistant(app.store.db, queries, () => app.store.headPosition)
  })

  // configurations/<id> is retained and QoS 1, so a sensor that connects later gets the latest:
  // the broker reads it when the sensor subscribes, so nothing is published again at start. It
  // reads it from memory (every sensor subscribes at once after a power cut): loaded from the
  // projection at start, then kept by the commits that register or revise a configuration, which
  // are also published to the sensors subscribed then.
  const configurations = new Map<string, string>(queries.latestConfigurations().map(latest =>
    [latest.sensor_id, `{"revision":${latest.revision},"configuration":${latest.configuration}}`] as const))
  app.broker.ownRetained({
    topics: configurationTopic('+'),
    qos: 1,
    one: sensorId => configurations.get(sensorId),
    all: () => configurations.entries()
  })
  const publishConfiguration = (sensorId: string, message: ConfigurationMessage, here: boolean) => {
    const payload = JSON.stringify(message)
    configurations.set(sensorId, payload)
    if (here) app.broker.publish({ topic: configurationTopic(sensorId), payload, qos: 1, retain: true })
      .catch(error => app.log.error({ err: error, sensorId }, 'could not publish a configuration'))
  }
  const unsubscribe = app.store.subscribe((events, { here }) => {
    for (const event of events) {
      if (event.type === 'SensorRegistered') {
        publishConfiguration(event.data.sensor_identifier, { revision: 0, configuration: event.data.configuration }, here)
      } else if (event.type === 'SensorConfigurationRevised') {
        publishConfiguration(event.data.sensor_identifier, { revision: event.data.revision, configuration: event.data.configuration }, here)
      }
    }
  })
  app.addHook('preClose', async () => unsubscribe())

  await app.register(sensorRoutes, { sensors: queries })
  await app.register(activityStream, { sensors: queries, summaryIntervalSeconds: options.summaryIntervalSeconds })
}
