import type { FastifyInstance } from 'fastify'
import { registryQueries } from '../devices/registry.ts'
import { chargerHomeAssistant } from './home-assistant.ts'
import { chargerKind } from './kind.ts'
import { chargerDeviceKind } from './mqtt.ts'
import { chargerQueries } from './projections.ts'
import chargerRoutes from './routes.ts'
import chargerSockets from './websockets.ts'
import { chargerState } from './state.ts'
import { chargerTopics } from './topics.ts'
import { chargerChannels } from './channels.ts'

export { chargersProjection } from './projections.ts'

export interface ChargersOptions {
  /** CHARGER_MAX_RATE: readings a second a charger may send; the excess is refused and recorded. */
  maxRate: number
  /** MQTT_MAX_REFUSALS_PER_MINUTE: the refusal policy holds on the chargers' WebSocket too. */
  maxRefusalsPerMinute: number
}

/** Wallbox chargers and their widgets: the pairs, the chargers' WebSocket and MQTT, the widgets' light. */
export default async function chargers (app: FastifyInstance, { maxRate, maxRefusalsPerMinute }: ChargersOptions) {
  const queries = chargerQueries(app.store.db)
  const minIntervalMs = 1000 / maxRate
  app.deviceKinds.declare(chargerKind, {
    mqtt: chargerDeviceKind(queries, minIntervalMs),
    state: chargerState,
    channels: chargerChannels,
    topics: chargerTopics,
    homeAssistant: chargerHomeAssistant(queries)
  })
  // A removed pair's MQTT sessions end with it: its password no longer opens anything.
  const unsubscribe = app.store.subscribe(events => {
    for (const event of events) if (event.type === 'ChargerRemoved') app.broker.disconnectDevice(event.stream_id)
  })
  app.addHook('preClose', async () => unsubscribe())
  await app.register(chargerRoutes, { chargers: queries, registry: registryQueries(app.store.db) })
  await app.register(chargerSockets, { chargers: queries, minIntervalMs, maxRefusalsPerMinute })
}
