import { ValveStateMessage } from '../../events/irrigation.ts'
import { readPayload, refuse, type DeviceKind } from '../broker/device-kind.ts'
import { decideZone } from './decider.ts'
import type { ZoneQueries } from './projections.ts'

/** Where the service commands the valve (QoS 1, retained) and where the controller reports. */
export const valveTopic = (zoneId: string): string => `zones/${zoneId}/valve`
export const stateTopic = (zoneId: string): string => `zones/${zoneId}/state`

/** A valve controller: it reads `zones/<own id>/valve` and reports `zones/<own id>/state`. */
export function zoneDeviceKind (zones: ZoneQueries): DeviceKind {
  return {
    kind: 'zone',

    interpretPublish (device, topic, payload) {
      if (topic === valveTopic(device.id)) return refuse('reserved_topic', `only the service commands the valve; report to ${stateTopic(device.id)}`)
      if (topic !== stateTopic(device.id)) {
        return topic.startsWith('zones/')
          ? refuse('foreign_topic', `a valve controller publishes only to ${stateTopic(device.id)}`)
          : refuse('unknown_topic', `a valve controller publishes only to ${stateTopic(device.id)}`)
      }
      const read = readPayload(payload, ValveStateMessage, 'expected {"open": true|false}')
      if (!read.ok) return read
      const open = read.message.open
      return {
        refused: false,
        streamId: device.streamId,
        decide () {
          const zone = zones.zone(device.id)
          return zone === undefined ? [] : decideZone({ type: 'ReportValve', open }, zone.state)
        }
      }
    },

    refuseSubscription (device, topic) {
      if (topic === valveTopic(device.id)) return null
      return { reason: 'foreign_topic', detail: `a valve controller subscribes only to ${valveTopic(device.id)}` }
    }
  }
}
