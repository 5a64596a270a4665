import type { FastifyInstance } from 'fastify'
import { chargerDeviceKind } from './mqtt.ts'
import { chargerQueries } from './projections.ts'
import chargerRoutes from './routes.ts'
import chargerSockets from './websockets.ts'

export { chargersProjection } from './projections.ts'

export interface ChargersOptions {
  /** CHARGER_MAX_RATE: readings a second a charger may send; the excess is refused and recorded. */
  maxRate: number
}

/** Wallbox chargers and their widgets: the pairs, the chargers' WebSocket and MQTT, the widgets' light. */
export default async function chargers (app: FastifyInstance, { maxRate }: ChargersOptions) {
  const queries = chargerQueries(app.store.db)
  const minIntervalMs = 1000 / maxRate
  app.broker.registerKind(chargerDeviceKind(queries, minIntervalMs))
  await app.register(chargerRoutes, { chargers: queries })
  await app.register(chargerSockets, { chargers: queries, minIntervalMs })
}
