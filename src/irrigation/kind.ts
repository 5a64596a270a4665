import { declareDeviceKind } from '../devices/kind.ts'

/** An irrigation zone: its valve controller connects with the zone's identifier. */
export const zoneKind = declareDeviceKind({
  kind: 'zone',
  registration: {
    ZoneRegistered: data => ({ change: 'registered', id: data.zone_identifier, username: data.zone_identifier, name: data.zone_name, network: data.network_identifier, passwordSha256: data.mqtt_password_sha256 })
  }
})
