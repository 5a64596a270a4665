import type { FastifyInstance } from 'fastify'
import { createTicker } from '../live/websocket.ts'
import { zoneHomeAssistant } from './home-assistant.ts'
import { zoneKind } from './kind.ts'
import { createZoneLive } from './live.ts'
import { zoneDeviceKind } from './mqtt.ts'
import { zoneQueries } from './projections.ts'
import irrigationRoutes from './routes.ts'
import { createZoneControl } from './zone-control.ts'
import { zoneState } from './state.ts'
import { zoneTopics } from './topics.ts'

export { zonesProjection } from './projections.ts'

export interface IrrigationOptions {
  defaultZone: string | undefined
  rootIsPublic: boolean
}

/** Irrigation zones: valve controllers on the broker, the mode rules and timers, the clock over WebSocket. */
export default async function irrigation (app: FastifyInstance, { defaultZone, rootIsPublic }: IrrigationOptions) {
  const zones = zoneQueries(app.store.db)
  const control = createZoneControl({ store: app.store, broker: app.broker, clock: app.clock, zones, log: app.log })
  const ticker = createTicker(app.clock, 1000)
  const live = createZoneLive(ticker, control, zones)
  app.timers.own('zone timers', control.start)
  app.deviceKinds.declare(zoneKind, {
    mqtt: zoneDeviceKind(zones),
    state: zoneState,
    topics: zoneTopics,
    homeAssistant: zoneHomeAssistant({ zones, control, clock: app.clock })
  })
  app.addHook('preClose', async () => {
    live.close()
    ticker.close()
    control.close()
  })
  await app.register(irrigationRoutes, { zones, control, live, defaultZone, rootIsPublic })
}
