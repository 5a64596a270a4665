import { declareDeviceKind } from '../devices/kind.ts'

/** A sensor: its MQTT username is its identifier; a configuration revision may rename or move it. */
export const sensorKind = declareDeviceKind({
  kind: 'sensor',
  registration: {
    SensorRegistered: data => ({ change: 'registered', id: data.sensor_identifier, username: data.sensor_identifier, name: data.sensor_name, network: data.network_identifier, passwordSha256: data.mqtt_password_sha256 }),
    SensorConfigurationRevised: data => ({ change: 'moved', id: data.sensor_identifier, username: data.sensor_identifier, name: data.sensor_name, network: data.network_identifier })
  }
})
