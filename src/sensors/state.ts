import type { DeviceStateDeclaration } from '../devices/state-as-of.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveSensor, initialSensorState, type SensorEvent, type SensorState } from './decider.ts'

interface Revision { configuration: unknown, revised_at: string, acknowledged_at: number | null, success: boolean | null }
interface SensorFold {
  decider: SensorState
  revisions: Record<number, Revision>
  lastMeasurement: { revision: number, creation_timestamp: number, measurement: unknown } | null
}

/** A sensor as of a moment: the decider's state (the live projection's evolve), its configurations, its last measurement. */
export const sensorState: DeviceStateDeclaration<SensorFold> = {
  kind: 'sensor',
  folds: ['SensorRegistered', 'SensorConfigurationRevised', 'ConfigurationAcknowledged'],
  latest: ['MeasurementsRecorded'],
  initial: () => ({ decider: initialSensorState(), revisions: {}, lastMeasurement: null }),
  evolve (fold, recorded: RecordedEvent) {
    const event = recorded as SensorEvent & RecordedEvent
    const decider = evolveSensor(fold.decider, event)
    switch (event.type) {
      case 'SensorRegistered':
        return { ...fold, decider, revisions: { 0: { configuration: event.data.configuration, revised_at: event.recorded_at, acknowledged_at: null, success: null } } }
      case 'SensorConfigurationRevised':
        return { ...fold, decider, revisions: { ...fold.revisions, [event.data.revision]: { configuration: event.data.configuration, revised_at: event.recorded_at, acknowledged_at: null, success: null } } }
      case 'ConfigurationAcknowledged': {
        const revision = fold.revisions[event.data.revision]
        if (revision === undefined) return { ...fold, decider }
        return { ...fold, decider, revisions: { ...fold.revisions, [event.data.revision]: { ...revision, acknowledged_at: event.data.acknowledged_at, success: event.data.success } } }
      }
      case 'MeasurementsRecorded': {
        const last = event.data.measurements.at(-1)!
        return { ...fold, lastMeasurement: { revision: last.revision, creation_timestamp: last.timestamp, measurement: last.value } }
      }
      default:
        return { ...fold, decider }
    }
  },
  view ({ decider, revisions, lastMeasurement }) {
    if (decider.status !== 'registered') return null
    const current = revisions[decider.revision]
    return {
      sensor_name: decider.sensor_name,
      network_identifier: decider.network_identifier,
      revision: decider.revision,
      configuration: current?.configuration ?? null,
      revised_at: current?.revised_at ?? null,
      acknowledged_at: current?.acknowledged_at ?? null,
      success: current?.success ?? null,
      last_measurement: lastMeasurement
    }
  }
}
