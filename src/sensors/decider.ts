import type { JsonObject } from '../../events/define.ts'
import type { EventOf } from '../../events/index.ts'
import type { Heartbeat, LogMessage, Measurement } from '../../events/sensors.ts'
import { NetworkNotFound, SensorNameTaken, SensorNotFound } from '../errors.ts'

// A sensor's business rules: decide(command, state) -> events, evolve(state, event) -> state.
// Pure: the route or topic handler loads the state and the facts it needs, then appends.

export type SensorCommand =
  | { type: 'RegisterSensor', sensor_identifier: string, sensor_name: string, network_identifier: string, configuration: JsonObject, mqtt_password_sha256: string }
  | { type: 'ReviseConfiguration', sensor_identifier: string, sensor_name: string, network_identifier: string, configuration: JsonObject }
  | { type: 'RecordHeartbeats', sensor_identifier: string, heartbeats: Heartbeat[] }
  | { type: 'RecordMeasurements', sensor_identifier: string, measurements: Measurement[] }
  | { type: 'RecordLogMessages', sensor_identifier: string, log_messages: LogMessage[] }

export type SensorState =
  | { status: 'unregistered' }
  | { status: 'registered', network_identifier: string, sensor_name: string, revision: number, unacknowledged: number[] }

/** Facts from outside the sensor's own stream that a command needs. */
export interface SensorContext {
  /** Another sensor of the target network already has this name. */
  nameTaken: boolean
  /** The caller may use the target network. */
  networkAllowed: boolean
}

export type SensorEvent = EventOf<'SensorRegistered' | 'SensorConfigurationRevised' | 'HeartbeatsReceived' |
  'ConfigurationAcknowledged' | 'MeasurementsRecorded' | 'LogMessagesRecorded'>

export const initialSensorState = (): SensorState => ({ status: 'unregistered' })

const noContext: SensorContext = { nameTaken: false, networkAllowed: true }

export function decideSensor (command: SensorCommand, state: SensorState, context: SensorContext = noContext): SensorEvent[] {
  const id = command.sensor_identifier
  switch (command.type) {
    case 'RegisterSensor': {
      if (!context.networkAllowed) throw new NetworkNotFound()
      if (context.nameTaken) throw new SensorNameTaken()
      const { type: _, ...data } = command
      return [{ type: 'SensorRegistered', data }]
    }
    case 'ReviseConfiguration': {
      if (state.status !== 'registered') throw new SensorNotFound()
      if (!context.networkAllowed) throw new NetworkNotFound()
      if (context.nameTaken) throw new SensorNameTaken()
      return [{
        type: 'SensorConfigurationRevised',
        data: { sensor_identifier: id, revision: state.revision + 1, sensor_name: command.sensor_name, network_identifier: command.network_identifier, configuration: command.configuration }
      }]
    }
    case 'RecordHeartbeats': {
      // reference: the first heartbeat for a revision acknowledges it; later ones change nothing
      const pending = new Set(state.status === 'registered' ? state.unacknowledged : [])
      const acknowledgements: SensorEvent[] = []
      for (const heartbeat of command.heartbeats) {
        if (!pending.delete(heartbeat.revision)) continue
        acknowledgements.push({
          type: 'ConfigurationAcknowledged',
          data: { sensor_identifier: id, revision: heartbeat.revision, success: heartbeat.success, acknowledged_at: heartbeat.timestamp }
        })
      }
      return [{ type: 'HeartbeatsReceived', data: { sensor_identifier: id, heartbeats: command.heartbeats } }, ...acknowledgements]
    }
    case 'RecordMeasurements':
      return [{ type: 'MeasurementsRecorded', data: { sensor_identifier: id, measurements: command.measurements } }]
    case 'RecordLogMessages':
      return [{ type: 'LogMessagesRecorded', data: { sensor_identifier: id, log_messages: command.log_messages } }]
    default: {
      const unreachable: never = command
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}

export function evolveSensor (state: SensorState, event: SensorEvent): SensorState {
  switch (event.type) {
    case 'SensorRegistered':
      return { status: 'registered', network_identifier: event.data.network_identifier, sensor_name: event.data.sensor_name, revision: 0, unacknowledged: [0] }
    case 'SensorConfigurationRevised':
      if (state.status !== 'registered') return state
      return {
        ...state,
        network_identifier: event.data.network_identifier,
        sensor_name: event.data.sensor_name,
        revision: event.data.revision,
        unacknowledged: [...state.unacknowledged, event.data.revision]
      }
    case 'ConfigurationAcknowledged':
      if (state.status !== 'registered') return state
      return { ...state, unacknowledged: state.unacknowledged.filter(revision => revision !== event.data.revision) }
    case 'HeartbeatsReceived':
    case 'MeasurementsRecorded':
    case 'LogMessagesRecorded':
      return state
    default: {
      const unreachable: never = event
      return unreachable
    }
  }
}
