import type { EventOf } from '../../events/index.ts'
import type { ChargingStatus } from '../../events/chargers.ts'
import { ChargerNotFound, ChargerIdTaken, NetworkNotFound } from '../errors.ts'

// A charger and its widget. The widget's light follows the state of charge (the reference's
// thresholds); a charger that reports faster than the allowed rate has the excess refused.

export type ChargerCommand =
  | { type: 'RegisterCharger', charger_id: string, widget_id: string, network_identifier: string, token_sha256: string, mqtt_password_sha256: string }
  | { type: 'RemoveCharger' }
  | {
    type: 'ReportStateOfCharge', soc: number, via: 'websocket' | 'mqtt', at: number, min_interval_ms: number,
    /** Who sent it, for the rejection: MQTT client id or `ws:<connection>`, and the path or topic. */
    client_id: string, topic: string
  }

export type ChargerEvent = EventOf<'ChargerRegistered' | 'ChargerRemoved' | 'StateOfChargeReported' | 'ChargingStatusChanged' | 'MessageRejected'>

export type ChargerState =
  | { status: 'unregistered' }
  | { status: 'registered', charger_id: string, widget_id: string, charging_status: ChargingStatus | null, last_reading_at: number | null }

export interface ChargerContext { networkAllowed: boolean, idTaken: boolean }

export const initialChargerState = (): ChargerState => ({ status: 'unregistered' })

/** The reference's thresholds: 100 charged, 80 or more charging80, else charging. */
export const chargingStatusOf = (soc: number): ChargingStatus => soc >= 100 ? 'charged' : soc >= 80 ? 'charging80' : 'charging'

export function decideCharger (command: ChargerCommand, state: ChargerState, context: ChargerContext = { networkAllowed: true, idTaken: false }): ChargerEvent[] {
  if (command.type === 'RegisterCharger') {
    if (!context.networkAllowed) throw new NetworkNotFound()
    if (state.status === 'registered' || context.idTaken) throw new ChargerIdTaken()
    const { type: _, ...data } = command
    return [{ type: 'ChargerRegistered', data }]
  }
  if (state.status !== 'registered') throw new ChargerNotFound()
  const { charger_id, widget_id } = state
  switch (command.type) {
    case 'RemoveCharger':
      return [{ type: 'ChargerRemoved', data: { charger_id, widget_id } }]
    case 'ReportStateOfCharge': {
      if (state.last_reading_at !== null && command.at - state.last_reading_at < command.min_interval_ms) {
        const payload = JSON.stringify({ soc: command.soc })
        return [{
          type: 'MessageRejected',
          data: {
            topic: command.topic, client_id: command.client_id, username: charger_id, reason: 'rate_exceeded',
            detail: `at most one reading every ${command.min_interval_ms} ms (CHARGER_MAX_RATE)`, payload_excerpt: payload, payload_bytes: payload.length
          }
        }]
      }
      const status = chargingStatusOf(command.soc)
      const reported: ChargerEvent = { type: 'StateOfChargeReported', data: { charger_id, soc: command.soc, via: command.via } }
      return status === state.charging_status
        ? [reported]
        : [reported, { type: 'ChargingStatusChanged', data: { charger_id, widget_id, status } }]
    }
    default: {
      const unreachable: never = command
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}

export function evolveCharger (state: ChargerState, event: ChargerEvent & { recorded_at?: string }): ChargerState {
  switch (event.type) {
    case 'ChargerRegistered':
      return { status: 'registered', charger_id: event.data.charger_id, widget_id: event.data.widget_id, charging_status: null, last_reading_at: null }
    case 'ChargerRemoved':
      return initialChargerState()
    case 'StateOfChargeReported':
      // The time of a reading is when the log recorded it: a replay gives the same state.
      return state.status === 'registered' && event.recorded_at !== undefined ? { ...state, last_reading_at: Date.parse(event.recorded_at) } : state
    case 'ChargingStatusChanged':
      return state.status === 'registered' ? { ...state, charging_status: event.data.status } : state
    case 'MessageRejected':
      return state
    default: {
      const unreachable: never = event
      return unreachable
    }
  }
}
