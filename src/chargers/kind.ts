import { declareDeviceKind } from '../devices/kind.ts'

/** An EV charger: named by its pair id; removing the pair withdraws its MQTT credentials. */
export const chargerKind = declareDeviceKind({
  kind: 'charger',
  registration: {
    ChargerRegistered: data => ({ change: 'registered', id: data.charger_id, username: data.charger_id, name: data.charger_id, network: data.network_identifier, passwordSha256: data.mqtt_password_sha256 }),
    ChargerRemoved: data => ({ change: 'removed', id: data.charger_id, username: data.charger_id })
  }
})
