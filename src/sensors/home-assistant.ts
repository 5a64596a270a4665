import type { Db } from '../store/database.ts'
import type { SensorQueries } from './projections.ts'
import { componentKey, type ComponentSpec, type HomeAssistantDeclaration, type StateValue } from '../home-assistant/declaration.ts'

/**
 * Where a field's name makes them clear, Home Assistant's device class, unit and state class
 * (each combination one that homeassistant/components/sensor/const.py allows); else none.
 */
const KNOWN_FIELDS: Record<string, { device_class: string, unit_of_measurement: string, state_class: string }> = {
  temperature: { device_class: 'temperature', unit_of_measurement: '°C', state_class: 'measurement' },
  humidity: { device_class: 'humidity', unit_of_measurement: '%', state_class: 'measurement' },
  pressure: { device_class: 'pressure', unit_of_measurement: 'hPa', state_class: 'measurement' },
  illuminance: { device_class: 'illuminance', unit_of_measurement: 'lx', state_class: 'measurement' },
  co2: { device_class: 'carbon_dioxide', unit_of_measurement: 'ppm', state_class: 'measurement' },
  pm25: { device_class: 'pm25', unit_of_measurement: 'μg/m³', state_class: 'measurement' },
  voltage: { device_class: 'voltage', unit_of_measurement: 'V', state_class: 'measurement' },
  current: { device_class: 'current', unit_of_measurement: 'A', state_class: 'measurement' },
  power: { device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement' },
  energy: { device_class: 'energy', unit_of_measurement: 'kWh', state_class: 'total_increasing' },
  battery: { device_class: 'battery', unit_of_measurement: '%', state_class: 'measurement' },
  moisture: { device_class: 'moisture', unit_of_measurement: '%', state_class: 'measurement' }
}
const ALIASES: Record<string, string> = { temp: 'temperature', lux: 'illuminance', pm2_5: 'pm25' }

const SEVERITY_KEY = 'log_severity'
export const SEVERITIES = ['debug', 'info', 'warning', 'error']

/** `headPosition`: the log's committed head, which says whether what was read is still the latest. */
export function sensorHomeAssistant (db: Db, sensors: SensorQueries, headPosition: () => number): HomeAssistantDeclaration {
  const severity = db.prepare('SELECT severity FROM log_messages WHERE sensor_id = ? ORDER BY creation_timestamp DESC, position DESC LIMIT 1').pluck()
  const keyOf = (field: string) => {
    const key = componentKey(field)
    return key === SEVERITY_KEY ? componentKey(`measured ${field}`) : key
  }
  /**
   * Each numeric field of the sensor's newest measurements (a page, by its own timestamp), with
   * its newest value: read from the log when Home Assistant needs it, so ingest pays nothing.
   */
  // A commit's config and state of a sensor both read it: once, for the same head.
  let last: { sensorId: string, head: number, fields: Array<{ field: string, value: number }> } | undefined
  const latest = (sensorId: string): Array<{ field: string, value: number }> => {
    const head = headPosition()
    if (last?.sensorId === sensorId && last.head === head) return last.fields
    const values = new Map<string, number>()
    for (const { measurement } of sensors.measurements(sensorId, undefined, 'previous').reverse()) {
      for (const [field, value] of Object.entries(measurement)) {
        if (typeof value === 'number' && Number.isFinite(value) && !values.has(field)) values.set(field, value)
      }
    }
    const fields = [...values].map(([field, value]) => ({ field, value })).sort((a, b) => a.field < b.field ? -1 : 1)
    last = { sensorId, head, fields }
    return fields
  }
  return {
    kind: 'sensor',
    model: 'Sensor',
    configTypes: ['SensorRegistered', 'SensorConfigurationRevised', 'MeasurementsRecorded'],
    stateTypes: ['MeasurementsRecorded', 'LogMessagesRecorded'],
    components (sensorId) {
      const components: Record<string, ComponentSpec> = {}
      for (const { field } of latest(sensorId)) {
        const known = KNOWN_FIELDS[ALIASES[field.toLowerCase()] ?? field.toLowerCase()]
        components[keyOf(field)] = { platform: 'sensor', name: field, options: { ...known } }
      }
      components[SEVERITY_KEY] = { platform: 'sensor', name: 'Last log severity', options: { device_class: 'enum', options: SEVERITIES } }
      return components
    },
    state (sensorId) {
      const state: Record<string, StateValue> = {}
      for (const { field, value } of latest(sensorId)) state[keyOf(field)] = value
      state[SEVERITY_KEY] = (severity.get(sensorId) as string | undefined) ?? null
      return state
    }
  }
}
