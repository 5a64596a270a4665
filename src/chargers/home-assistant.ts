import { ChargingStatus } from '../../events/chargers.ts'
import type { HomeAssistantDeclaration } from '../home-assistant/declaration.ts'
import type { ChargerQueries } from './projections.ts'

/** A charger in Home Assistant: its state of charge (a battery, in %) and its charging status. */
export function chargerHomeAssistant (chargers: ChargerQueries): HomeAssistantDeclaration {
  return {
    kind: 'charger',
    model: 'EV charger',
    configTypes: ['ChargerRegistered', 'ChargerRemoved'],
    stateTypes: ['StateOfChargeReported', 'ChargingStatusChanged'],
    components: () => ({
      state_of_charge: { platform: 'sensor', name: 'State of charge', options: { device_class: 'battery', unit_of_measurement: '%', state_class: 'measurement' } },
      status: { platform: 'sensor', name: 'Charging status', options: { device_class: 'enum', options: ChargingStatus.options } }
    }),
    state (chargerId) {
      const charger = chargers.charger(chargerId)
      return { state_of_charge: charger?.last_soc ?? null, status: charger?.state.charging_status ?? null }
    }
  }
}
