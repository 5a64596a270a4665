import type { LiveChannel } from '../devices/live-channels.ts'
import type { SensorQueries } from './projections.ts'

/** A sensor's live channels on `/api/v1/devices/<id>/ws`. */
export const sensorChannels = (sensors: SensorQueries): LiveChannel[] => [
  {
    name: 'measurements',
    types: ['MeasurementsRecorded'],
    view: e => e.type === 'MeasurementsRecorded'
      ? e.data.measurements.map(m => ({ revision: m.revision, creation_timestamp: m.timestamp, measurement: m.value }))
      : undefined
  },
  {
    name: 'logs',
    types: ['LogMessagesRecorded'],
    view: e => e.type === 'LogMessagesRecorded'
      ? e.data.log_messages.map(l => ({ revision: l.revision, creation_timestamp: l.timestamp, severity: l.severity, subject: l.subject, details: l.details ?? null }))
      : undefined
  },
  { name: 'heartbeats', types: ['HeartbeatsReceived'], view: e => e.type === 'HeartbeatsReceived' ? e.data.heartbeats : undefined },
  {
    name: 'configuration',
    types: ['SensorRegistered', 'SensorConfigurationRevised', 'ConfigurationAcknowledged'],
    readsProjections: true,
    view: (_e, device) => {
      const sensor = sensors.sensor(device.device_id)
      const revision = sensor === undefined ? undefined : sensors.configuration(sensor.sensor_id, sensor.revision)
      if (revision === undefined) return null
      return {
        revision: revision.revision,
        configuration: JSON.parse(revision.configuration),
        revised_at: revision.revised_at,
        acknowledged: revision.acknowledged_at !== null,
        acknowledged_at: revision.acknowledged_at,
        success: revision.success === null ? null : revision.success === 1
      }
    }
  }
]
