import type { DeviceStateDeclaration } from '../devices/state-as-of.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveCharger, initialChargerState, type ChargerEvent, type ChargerState } from './decider.ts'

/** A charger as of a moment: its status (the live projection's evolve) and its last state of charge. */
export const chargerState: DeviceStateDeclaration<{ decider: ChargerState, soc: number | null }> = {
  kind: 'charger',
  folds: ['ChargerRegistered', 'ChargerRemoved', 'ChargingStatusChanged'],
  latest: ['StateOfChargeReported'],
  initial: () => ({ decider: initialChargerState(), soc: null }),
  evolve: (fold, event: RecordedEvent) => ({
    decider: evolveCharger(fold.decider, event as ChargerEvent & RecordedEvent),
    soc: event.type === 'StateOfChargeReported' ? event.data.soc : fold.soc
  }),
  view ({ decider, soc }) {
    if (decider.status !== 'registered') return null
    return { widget_id: decider.widget_id, status: decider.charging_status, soc }
  }
}
