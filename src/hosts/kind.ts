import { declareDeviceKind } from '../devices/kind.ts'

/** A host agent: registered through POST /api/v1/devices, it connects with its identifier. */
export const hostKind = declareDeviceKind({
  kind: 'host',
  registration: {
    HostRegistered: data => ({ change: 'registered', id: data.device_identifier, username: data.device_identifier, name: data.name, network: data.network_identifier, passwordSha256: data.mqtt_password_sha256 })
  }
})
