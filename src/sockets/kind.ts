import { declareDeviceKind } from '../devices/kind.ts'

/** A Tasmota plug: its MQTT user is its topic (MqttUser holds 32 characters, a UUID 36). */
export const socketKind = declareDeviceKind({
  kind: 'socket',
  registration: {
    SocketRegistered: data => ({ change: 'registered', id: data.socket_identifier, username: data.topic, name: data.socket_name, network: data.network_identifier, passwordSha256: data.mqtt_password_sha256 })
  }
})
