import { StateOfChargeMessage } from '../../events/chargers.ts'
import { DeviceMessageRefused, readPayload, refuse, type DeviceKind } from '../broker/device-kind.ts'
import type { Transaction } from '../store/event-store.ts'
import { decideCharger } from './decider.ts'
import type { ChargerQueries } from './projections.ts'

export const stateOfChargeTopic = (chargerId: string): string => `chargers/${chargerId}/state-of-charge`

/** A charger on MQTT publishes `{"soc": n}` to its own `chargers/<id>/state-of-charge`, and subscribes to nothing. */
export function chargerDeviceKind (chargers: ChargerQueries, minIntervalMs: number): DeviceKind {
  return {
    kind: 'charger',
    interpretPublish (device, topic, payload) {
      if (topic !== stateOfChargeTopic(device.id)) {
        return refuse(topic.startsWith('chargers/') ? 'foreign_topic' : 'unknown_topic', `a charger publishes only to ${stateOfChargeTopic(device.id)}`)
      }
      if (chargers.charger(device.id) === undefined) return refuse('unknown_topic', 'this charger was removed')
      const read = readPayload(payload, StateOfChargeMessage, 'expected {"soc": 0..100}')
      if (!read.ok) return read
      const soc = read.message.soc
      return {
        refused: false,
        streamId: device.streamId,
        decide (tx: Transaction) {
          const charger = chargers.charger(device.id)
          if (charger === undefined) throw new DeviceMessageRefused('unknown_topic', 'this charger was removed')
          const events = decideCharger({
            type: 'ReportStateOfCharge', soc, via: 'mqtt', at: tx.now, min_interval_ms: minIntervalMs, client_id: device.clientId, topic
          }, charger.state)
          // A refusal the rules decided goes through the broker's one refusal path, like every
          // other: recorded from the real packet, delivered to nobody, counted toward the limit.
          const rejected = events.find(e => e.type === 'MessageRejected')
          if (rejected !== undefined) throw new DeviceMessageRefused(rejected.data.reason, rejected.data.detail)
          return events
        }
      }
    },
    refuseSubscription (device) {
      return { reason: 'unknown_topic', detail: `the service sends chargers nothing over MQTT; their widget is /widgets/<id>` }
    }
  }
}
