import { declareDeviceKind } from '../devices/kind.ts'

/** Home Assistant's MQTT account for one network: credentials of its own, and no place in the device list. */
export const homeAssistantKind = declareDeviceKind({
  kind: 'home_assistant',
  registration: {
    HomeAssistantAccountCreated: data => ({
      change: 'registered', id: data.account_identifier, username: data.username, name: 'Home Assistant', network: data.network_identifier, passwordSha256: data.mqtt_password_sha256
    })
  }
})

/** The account's own stream: its credentials, birth messages and commands. */
export const accountStream = (accountId: string) => `homeassistant-${accountId}`
