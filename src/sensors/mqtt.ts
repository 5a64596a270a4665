import type { z } from 'zod'
import { HeartbeatsMessage, LogMessagesMessage, MeasurementsMessage } from '../../events/sensors.ts'
import { readPayload, refuse, type DeviceKind } from '../broker/device-kind.ts'
import { decideSensor, initialSensorState, type SensorCommand } from './decider.ts'
import type { SensorQueries } from './projections.ts'

/** The three topics a sensor publishes to, each with its message schema and command. */
const channels = {
  heartbeats: {
    schema: HeartbeatsMessage,
    command: (id: string, m: z.infer<typeof HeartbeatsMessage>): SensorCommand => ({ type: 'RecordHeartbeats', sensor_identifier: id, heartbeats: m.heartbeats })
  },
  measurements: {
    schema: MeasurementsMessage,
    command: (id: string, m: z.infer<typeof MeasurementsMessage>): SensorCommand => ({ type: 'RecordMeasurements', sensor_identifier: id, measurements: m.measurements })
  },
  'log-messages': {
    schema: LogMessagesMessage,
    command: (id: string, m: z.infer<typeof LogMessagesMessage>): SensorCommand => ({ type: 'RecordLogMessages', sensor_identifier: id, log_messages: m.log_messages })
  }
} as const

export const configurationTopic = (sensorId: string): string => `configurations/${sensorId}`

/** How the broker treats a sensor: what it may publish and subscribe to, and what its messages mean. */
export function sensorDeviceKind (sensors: SensorQueries): DeviceKind {
  return {
    kind: 'sensor',

    interpretPublish (device, topic, payload) {
      const [name, sensorId, ...rest] = topic.split('/')
      const channel = Object.hasOwn(channels, name!) ? channels[name as keyof typeof channels] : undefined
      if (channel === undefined || sensorId === undefined || rest.length > 0) {
        return refuse('unknown_topic', `sensors publish only to heartbeats/, measurements/ and log-messages/<own id>`)
      }
      if (sensorId !== device.id) {
        return sensors.sensor(sensorId) === undefined
          ? refuse('unknown_sensor', `no sensor ${sensorId}`)
          : refuse('foreign_topic', `${topic} belongs to another sensor`)
      }
      const read = readPayload(payload, channel.schema)
      if (!read.ok) return read
      const command = channel.command(device.id, read.message as never)
      // Only heartbeats depend on the sensor's state (its unacknowledged revisions): the hot
      // path for measurements and logs does not read it.
      const stateless = command.type !== 'RecordHeartbeats'
      return {
        refused: false,
        streamId: device.streamId,
        stateless,
        decide () { return decideSensor(command, stateless ? initialSensorState() : sensors.sensor(device.id)?.state ?? initialSensorState()) }
      }
    },

    refuseSubscription (device, topic) {
      if (topic === configurationTopic(device.id)) return null
      return { reason: 'foreign_topic', detail: `sensors subscribe only to ${configurationTopic(device.id)}` }
    }
  }
}
